//! The ecosystem's own tools against the local stack (issue 16): `aws lambda` (the AWS CLI
//! pinned in .local/aws-cli, scripts/setup-aws-cli.sh) and `cargo lambda invoke` (pinned in
//! .local/infra-tools) send every sample event of events/samples/ to the function it is
//! for through devstack's Lambda API and get the handler's response; `devstack trace`
//! prints an alert's hops; `devstack replay`'s library replays a failed batch.
//!
//! One stack for the whole binary's checks (one test function, in order).

use std::path::{Path, PathBuf};
use std::process::Command;

use devstack::{Stack, inspect};
use e2e::*;
use serde_json::{Value, json};

/// Each sample event and the function that receives it on AWS.
const SAMPLES: &[(&str, &str)] = &[
    ("apigw-post-readings.json", "IngestFunction"),
    ("apigw-post-readings-spec-shape.json", "IngestFunction"),
    ("kinesis-readings.json", "DetectFunction"),
    ("sqs-alert-raised.json", "RouteFunction"),
    ("sqs-alert-resolved.json", "RouteFunction"),
    ("sqs-notification-requested.json", "NotifyFunction"),
    ("sqs-inbound-sms.json", "EmergencyCoordinatorFunction"),
    ("dynamodb-events-stream.json", "ProjectFunction"),
];

fn tool(relative: &str, setup: &str) -> PathBuf {
    let path = workspace_root().join(relative);
    assert!(
        path.exists(),
        "{} is missing: run {setup} (./dev test does)",
        path.display()
    );
    path
}

fn aws(stack: &Stack, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(tool(".local/aws-cli/bin/aws", "scripts/setup-aws-cli.sh"))
        .args(args)
        .args(["--endpoint-url", &stack.lambda_url(), "--output", "json"])
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("running aws");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn cargo_lambda_invoke(stack: &Stack, function: &str, data_file: &Path) -> Value {
    let port = stack
        .lambda_url()
        .rsplit(':')
        .next()
        .unwrap_or("")
        .to_string();
    let out = Command::new(tool(
        ".local/infra-tools/bin/cargo-lambda",
        "scripts/setup-infra-tools.sh",
    ))
    .args(["lambda", "invoke", "--invoke-address", "127.0.0.1"])
    .args([
        "--invoke-port",
        &port,
        "--output-format",
        "json",
        "--data-file",
    ])
    .arg(data_file)
    .arg(function)
    .output()
    .expect("running cargo lambda");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cargo lambda invoke {function} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{function}: {e}: {stdout}"))
}

/// What a handler answers: an API Gateway response, or a batch response.
fn assert_handler_response(function: &str, response: &Value) {
    if function == "IngestFunction" {
        assert!(response["statusCode"].is_u64(), "{function}: {response}");
        assert!(response["body"].is_string(), "{function}: {response}");
    } else {
        assert!(
            response["batchItemFailures"].is_array(),
            "{function}: {response}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_tools_invoke_the_local_functions_and_trace_an_alert() {
    let stack = start_stack("tooling").await;
    inspect::seed_directory(&stack, &[entry("p-1", "w-1", "+254700000101")])
        .await
        .unwrap();
    let samples = workspace_root().join("events/samples");
    let out_dir = tempfile_dir("tooling");

    // ListFunctions / GetFunction.
    let (ok, listed, err) = aws(&stack, &["lambda", "list-functions"]);
    assert!(ok, "{err}");
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let names = listed["Functions"].as_array().unwrap();
    assert_eq!(names.len(), stack.function_specs().count(), "{listed}");
    let (ok, got, err) = aws(
        &stack,
        &["lambda", "get-function", "--function-name", "ingest"],
    );
    assert!(ok, "{err}");
    let got: Value = serde_json::from_str(&got).unwrap();
    assert_eq!(
        got["Tags"]["devstack:logical-id"], "IngestFunction",
        "{got}"
    );
    let name = got["Configuration"]["FunctionName"].as_str().unwrap();
    assert!(
        got["Configuration"]["FunctionArn"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":function:{name}")),
        "{got}"
    );

    // Every sample, with both tools.
    for (sample, function) in SAMPLES {
        let file = samples.join(sample);
        let out = out_dir.join(format!("{sample}.out"));
        let payload = format!("fileb://{}", file.display());
        let (ok, meta, err) = aws(
            &stack,
            &[
                "lambda",
                "invoke",
                "--function-name",
                function,
                "--payload",
                &payload,
                out.to_str().unwrap(),
            ],
        );
        assert!(ok, "aws lambda invoke {function} {sample}: {err}");
        let meta: Value = serde_json::from_str(&meta).unwrap();
        assert_eq!(meta["StatusCode"], 200, "{sample}: {meta}");
        assert!(meta.get("FunctionError").is_none(), "{sample}: {meta}");
        let response: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        assert_handler_response(function, &response);

        let response = cargo_lambda_invoke(&stack, function, &file);
        assert_handler_response(function, &response);
    }
    // Each went through the Lambda API: two invocations per sample, recorded as such.
    for (sample, function) in SAMPLES {
        let through_api = stack
            .invocations(function)
            .into_iter()
            .filter(|r| r.source == devstack::lambda_api::INVOKE_SOURCE)
            .count();
        assert!(through_api >= 2, "{function} ({sample}): {through_api}");
    }

    // A function error is Lambda's: 200, FunctionError Unhandled, the error as the payload.
    let out = out_dir.join("bad.out");
    let (ok, meta, err) = aws(
        &stack,
        &[
            "lambda",
            "invoke",
            "--function-name",
            "DetectFunction",
            "--payload",
            "{\"not\":\"a kinesis event\"}",
            out.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    let meta: Value = serde_json::from_str(&meta).unwrap();
    assert_eq!(meta["FunctionError"], "Unhandled", "{meta}");
    // An unknown function is Lambda's 404.
    let (ok, _, err) = aws(
        &stack,
        &[
            "lambda",
            "invoke",
            "--function-name",
            "NoSuchFunction",
            out.to_str().unwrap(),
        ],
    );
    assert!(!ok && err.contains("ResourceNotFoundException"), "{err}");

    // The projector rebuild, one line.
    let (ok, meta, err) = aws(
        &stack,
        &[
            "lambda",
            "invoke",
            "--function-name",
            "ProjectFunction",
            "--payload",
            "{\"rebuild\":{\"maxEvents\":5000}}",
            out.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    assert!(!meta.contains("FunctionError"), "{meta}");
    let rebuilt: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert!(rebuilt.is_object(), "{rebuilt}");

    // An alert's hops, from the POST to the SMS, printed by `devstack trace`.
    let (status, _) = post(
        &stack,
        &json!([reading("p-1", "spo2", 85.0, 1)]),
        Some("corr-trace-1"),
    )
    .await;
    assert_eq!(status, 202);
    stack
        .wait_idle(std::time::Duration::from_secs(60))
        .await
        .unwrap();
    let notified = inspect::scan(&stack, "OutboxTable").await.unwrap();
    assert!(
        notified
            .iter()
            .any(|n| n.to_string().contains("corr-trace-1")),
        "{notified:?}"
    );
    let out = Command::new(workspace_root().join("target/debug/devstack"))
        .args([
            "trace",
            "corr-trace-1",
            "--lambda-endpoint",
            &stack.lambda_url(),
        ])
        .output()
        .expect("running devstack trace");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("correlation id corr-trace-1: "),
        "{text}"
    );
    let position = |function: &str| {
        lines
            .iter()
            .position(|l| l.contains(function))
            .unwrap_or_else(|| panic!("no {function} hop in:\n{text}"))
    };
    // In the order the alert travelled.
    assert!(
        position("IngestFunction") < position("DetectFunction"),
        "{text}"
    );
    assert!(
        position("DetectFunction") < position("RouteFunction"),
        "{text}"
    );
    assert!(
        position("RouteFunction") < position("NotifyFunction"),
        "{text}"
    );
    let hops = stack.trace("corr-trace-1");
    assert!(hops.iter().all(|h| h.outcome == "ok"), "{hops:?}");
    stack.shutdown().await.unwrap();
}

fn tempfile_dir(name: &str) -> PathBuf {
    let dir = workspace_root()
        .join("target/e2e-logs")
        .join(name)
        .join("out");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
