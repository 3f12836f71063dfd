//! End-to-end checks of devstack itself against moto, with shell-script stand-ins for the
//! function binaries (they speak the Runtime API with curl). They need moto at
//! `.local/moto` (`./dev setup`). The real binaries are exercised by `tests/pipeline.rs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::{InvokeOutcome, Stack, StackConfig};

/// A Runtime API client in bash: echoes the event back as `{"echo": event}`; misbehaves on
/// request when the event contains a marker.
const FAKE_FUNCTION: &str = r#"#!/usr/bin/env bash
API="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
HDRS=$(mktemp)
while true; do
  BODY=$(curl -sS -D "$HDRS" "$API/invocation/next") || exit 1
  ID=$(grep -i '^lambda-runtime-aws-request-id:' "$HDRS" | tr -d '\r' | awk '{print $2}')
  case "$BODY" in
    *crash-me*) echo "crashing as asked" >&2; exit 3;;
    *sleep-me*) sleep 60;;
    *fail-me*) curl -sS -X POST "$API/invocation/$ID/error" \
        -d '{"errorType":"Boom","errorMessage":"asked to fail"}' >/dev/null; continue;;
  esac
  printf '{"echo":%s}' "$BODY" | curl -sS -X POST "$API/invocation/$ID/response" \
      -H 'content-type: application/json' --data-binary @- >/dev/null
done
"#;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A config using the fake functions, or None when moto is not installed.
fn fake_config(name: &str) -> (StackConfig, PathBuf) {
    let mut config = StackConfig::for_workspace(&workspace_root());
    assert!(
        config.moto_server_bin.exists(),
        "moto not installed at {}: run ./dev setup (./dev test does it)",
        config.moto_server_bin.display()
    );
    let dir = std::env::temp_dir().join(format!("devstack-smoke-{name}-{}", std::process::id()));
    let bin_dir = dir.join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    for binary in [
        "ingest",
        "detect",
        "route",
        "notify",
        "emergency",
        "project",
        "query",
        "directory",
    ] {
        let path = bin_dir.join(binary);
        std::fs::write(&path, FAKE_FUNCTION).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    config.bin_dir = bin_dir;
    config.endpoint = None;
    config.function_log_dir = Some(dir.join("logs"));
    (config, dir)
}

async fn queue_messages(stack: &Stack, logical_id: &str) -> Vec<String> {
    let sqs = aws_sdk_sqs::Client::new(stack.sdk_config());
    let url = stack.resource(logical_id).unwrap().ref_value.clone();
    let mut bodies = Vec::new();
    for _ in 0..3 {
        let out = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        bodies.extend(
            out.messages()
                .iter()
                .filter_map(|m| m.body().map(str::to_string)),
        );
        if !bodies.is_empty() {
            break;
        }
    }
    bodies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stack_runs_functions_pollers_and_http_api_against_moto() {
    let (config, dir) = fake_config("pipeline");
    let stack = Stack::start(config).await.expect("stack starts");

    // Resources and their Ref values.
    let queue = stack.resource("RouteQueue").unwrap();
    assert!(queue.ref_value.starts_with("http://"), "{queue:?}");
    assert!(
        queue
            .arn
            .as_deref()
            .unwrap()
            .starts_with("arn:aws:sqs:us-east-1:")
    );
    let stream = stack.resource("ReadingsStream").unwrap();
    assert_eq!(stream.ref_value, "vitals-local-ReadingsStream");
    assert!(
        stack
            .resource("Nope")
            .unwrap_err()
            .to_string()
            .contains("Nope")
    );
    let template = crate::template::Template::load(&stack.config().template).unwrap();
    // Every resource except the conditional ones (optional subscriptions, off by default).
    let unconditional = template
        .resources
        .iter()
        .filter(|r| r.condition.is_none())
        .count();
    assert!(unconditional < template.resources.len());
    assert_eq!(stack.resources().count(), unconditional);
    assert!(stack.resource("OpsEmailSubscription").is_err());

    // HTTP API.
    let http = reqwest::Client::new();
    let bearer = stack
        .bearer(&crate::TokenSpec::operator("op-1"))
        .expect("a token");
    let response = http
        .post(format!("{}/readings?x=1", stack.api_url()))
        .header("authorization", &bearer)
        .header("content-type", "application/json")
        .body(r#"{"patientId":"p1"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["echo"]["routeKey"], "POST /readings");
    assert_eq!(body["echo"]["body"], r#"{"patientId":"p1"}"#);
    assert_eq!(body["echo"]["queryStringParameters"]["x"], "1");
    let jwt = &body["echo"]["requestContext"]["authorizer"]["jwt"];
    assert_eq!(jwt["claims"]["username"], "op-1", "{jwt}");
    assert_eq!(jwt["claims"]["cognito:groups"], "[operator]");
    let response = http
        .get(format!("{}/readings", stack.api_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let big = vec![b'a'; 10 * 1024 * 1024 + 1];
    let response = http
        .post(format!("{}/readings", stack.api_url()))
        .header("authorization", &bearer)
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(stack.invocations("IngestFunction").len(), 1);
    assert_eq!(stack.invocations("IngestFunction")[0].source, "api");

    // Direct invokes: errors, crashes and recovery.
    let outcome = stack
        .invoke("RouteFunction", json!({"hello": 1}))
        .await
        .unwrap();
    assert_eq!(outcome, InvokeOutcome::Ok(json!({"echo": {"hello": 1}})));
    let outcome = stack
        .invoke("RouteFunction", json!("fail-me"))
        .await
        .unwrap();
    assert!(
        matches!(outcome, InvokeOutcome::FunctionError { ref error_type, .. } if error_type == "Boom"),
        "{outcome:?}"
    );
    let outcome = stack
        .invoke("RouteFunction", json!("crash-me"))
        .await
        .unwrap();
    assert!(matches!(outcome, InvokeOutcome::Crashed(_)), "{outcome:?}");
    let outcome = stack.invoke("RouteFunction", json!(2)).await.unwrap();
    assert_eq!(outcome, InvokeOutcome::Ok(json!({"echo": 2})));
    assert!(stack.invoke("NoSuchFunction", json!(1)).await.is_err());

    // Kinesis: good records are delivered; a poison record is bisected out, retried and sent
    // to the OnFailure queue.
    let kinesis = aws_sdk_kinesis::Client::new(stack.sdk_config());
    for key in ["p1", "p2", "fail-me", "p3"] {
        kinesis
            .put_record()
            .stream_name(&stream.ref_value)
            .partition_key(key)
            .data(aws_sdk_kinesis::primitives::Blob::new(format!(
                "reading of {key}"
            )))
            .send()
            .await
            .unwrap();
    }
    stack
        .wait_idle(Duration::from_secs(60))
        .await
        .expect("idle after kinesis");
    let detect = stack.invocations("DetectFunction");
    let delivered: Vec<String> = detect
        .iter()
        .filter(|r| r.outcome.is_ok())
        .flat_map(|r| r.payload["Records"].as_array().cloned().unwrap_or_default())
        .map(|r| r["kinesis"]["partitionKey"].as_str().unwrap().to_string())
        .collect();
    for key in ["p1", "p2", "p3"] {
        assert!(
            delivered.contains(&key.to_string()),
            "{key} not delivered: {delivered:?}"
        );
    }
    assert!(detect.iter().all(|r| r.source == "kinesis:ReadingsStream"));
    let failures = queue_messages(&stack, "DetectFailureQueue").await;
    assert_eq!(failures.len(), 1, "{failures:?}");
    let failure: Value = serde_json::from_str(&failures[0]).unwrap();
    assert_eq!(
        failure["requestContext"]["condition"],
        "RetryAttemptsExhausted"
    );
    assert_eq!(failure["requestContext"]["approximateInvokeCount"], 4);
    assert_eq!(failure["KinesisBatchInfo"]["batchSize"], 1);

    // SQS: a good message is consumed; a failing one is redriven to the DLQ by moto after
    // maxReceiveCount receives.
    let sqs = aws_sdk_sqs::Client::new(stack.sdk_config());
    for body in ["all good", "fail-me"] {
        sqs.send_message()
            .queue_url(&queue.ref_value)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    stack
        .wait_idle(Duration::from_secs(60))
        .await
        .expect("idle after sqs");
    let route = stack.invocations("RouteFunction");
    assert!(
        route
            .iter()
            .any(|r| r.source == "sqs:RouteQueue" && r.outcome.is_ok())
    );
    let dlq = queue_messages(&stack, "RouteDLQ").await;
    assert_eq!(dlq, vec!["fail-me".to_string()]);

    stack.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_that_hangs_times_out_and_is_restarted() {
    let (config, dir) = fake_config("timeout");
    let stack = Stack::start(config).await.expect("stack starts");
    let outcome = stack
        .invoke("NotifyFunction", json!("sleep-me"))
        .await
        .unwrap();
    assert_eq!(outcome, InvokeOutcome::Timeout);
    let journal = stack.invocations("NotifyFunction");
    assert!(
        journal[0].duration >= Duration::from_secs(10),
        "{:?}",
        journal[0].duration
    );
    let outcome = stack.invoke("NotifyFunction", json!(1)).await.unwrap();
    assert_eq!(outcome, InvokeOutcome::Ok(json!({"echo": 1})));
    stack.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn missing_moto_or_binaries_fail_clearly() {
    let mut config = StackConfig::for_workspace(&workspace_root());
    config.bin_dir = PathBuf::from("/nonexistent/bin");
    let err = Stack::start(config.clone()).await.unwrap_err();
    assert!(
        format!("{err:#}").contains("run cargo build --workspace"),
        "{err:#}"
    );
    let (mut config, dir) = fake_config("nomoto");
    config.moto_server_bin = PathBuf::from("/nonexistent/moto_server");
    let err = Stack::start(config).await.unwrap_err();
    assert!(format!("{err:#}").contains("run ./dev setup"), "{err:#}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_fire_every_interval_and_on_demand() {
    let (mut config, dir) = fake_config("schedule");
    config.schedule_interval = Some(Duration::from_millis(300));
    let stack = Stack::start(config).await.expect("stack starts");
    assert_eq!(
        stack.schedules(),
        vec![(
            "SweepFunction".to_string(),
            "Sweep".to_string(),
            Some(Duration::from_millis(300))
        )]
    );

    // Ticks: the scheduled-event document, recorded with the schedule as source.
    let started = std::time::Instant::now();
    while stack.invocations("SweepFunction").len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the schedule did not fire twice"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ticks = stack.invocations("SweepFunction");
    for tick in &ticks[..2] {
        assert_eq!(tick.source, "schedule:Sweep");
        assert_eq!(tick.payload["detail-type"], "Scheduled Event");
        assert_eq!(tick.payload["source"], "aws.events");
        assert_eq!(
            tick.payload["resources"][0],
            format!(
                "arn:aws:events:us-east-1:{}:rule/vitals-local-SweepFunctionSweep",
                tick.payload["account"].as_str().unwrap()
            )
        );
        assert_eq!(
            tick.outcome,
            InvokeOutcome::Ok(json!({ "echo": tick.payload }))
        );
    }
    assert_ne!(ticks[0].payload["id"], ticks[1].payload["id"]);

    // On demand, with the same payload shape.
    let outcome = stack.run_schedule("SweepFunction").await.unwrap();
    let InvokeOutcome::Ok(response) = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(response["echo"]["detail-type"], "Scheduled Event");
    assert!(stack.run_schedule("DetectFunction").await.is_err());
    assert!(stack.run_schedule("NoSuchFunction").await.is_err());

    // Idle between ticks: wait_idle does not wait for the next one.
    stack
        .wait_idle(Duration::from_secs(30))
        .await
        .expect("idle between ticks");
    stack.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
