//! Helpers for the end-to-end tests: a fresh local stack per test, HTTP posting, fixtures.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};

#[path = "support/openapi.rs"]
pub mod openapi;
use devstack::{Stack, StackConfig, TokenSpec};
pub use openapi::{assert_documented, validate_response};
use serde_json::{Value, json};

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// Starts emulator + functions for one test; function logs go to target/e2e-logs/<test>/.
///
/// The backend is moto (one server per test) unless `AWS_ENDPOINT_URL` (or its alias
/// `DEVSTACK_ENDPOINT`) names a running
/// emulator such as LocalStack. Tests then share it, so each gets its own stack name (the
/// prefix of every resource name) with a random suffix: parallel tests and reruns never see
/// each other's queues, streams or tables.
pub async fn start_stack(test: &str) -> Stack {
    start_stack_with(test, &[]).await
}

/// Like [`start_stack`], with template parameter overrides.
pub async fn start_stack_with(test: &str, parameters: &[(&str, &str)]) -> Stack {
    start_stack_configured(test, |config| {
        for (name, value) in parameters {
            config
                .parameter_overrides
                .insert(name.to_string(), value.to_string());
        }
    })
    .await
}

/// Like [`start_stack`], with extra environment variables for one function.
pub async fn start_stack_with_env(test: &str, function: &str, env: &[(&str, &str)]) -> Stack {
    start_stack_configured(test, |config| {
        config.function_environment.insert(
            function.to_string(),
            env.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
    })
    .await
}

/// Like [`start_stack`], after `configure` has adjusted the configuration.
pub async fn start_stack_configured(test: &str, configure: impl FnOnce(&mut StackConfig)) -> Stack {
    let root = workspace_root();
    let mut config = StackConfig::for_workspace(&root);
    if config.endpoint.is_some() {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        config.stack_name = format!("t{}-{}", &suffix[..6], test.replace('_', "-"));
    }
    configure(&mut config);
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let logs = target.join("e2e-logs").join(test);
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&logs).expect("creating the log folder");
    config.function_log_dir = Some(logs);
    config.sqs_retry_delay = Some(Duration::from_millis(200));
    match Stack::start(config).await {
        Ok(stack) => stack,
        Err(err) => panic!("starting the local stack failed: {err:#}"),
    }
}

/// The JSON lines a function wrote to its log (non-JSON lines are skipped).
pub fn function_log(stack: &Stack, function: &str) -> Vec<Value> {
    let Some(dir) = &stack.config().function_log_dir else {
        return Vec::new();
    };
    let text = std::fs::read_to_string(dir.join(format!("{function}.log"))).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The item identifiers a batch function reported in `batchItemFailures` (it must have
/// answered; a function error or crash fails the test).
pub fn batch_item_failures(function: &str, outcome: &devstack::InvokeOutcome) -> Vec<String> {
    let devstack::InvokeOutcome::Ok(response) = outcome else {
        panic!("{function} did not return a response: {outcome:?}");
    };
    response["batchItemFailures"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|f| f["itemIdentifier"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The dashboard table's item of a view (`alert#<id>`, `emergency#<id>`), if there is one.
pub async fn dashboard_item(stack: &Stack, view_id: &str) -> Option<Value> {
    devstack::inspect::scan(stack, "DashboardTable")
        .await
        .expect("scanning the dashboard table")
        .into_iter()
        .find(|item| item["viewId"] == view_id)
}

/// How long a test waits for the pipeline to drain.
pub const DRAIN: Duration = Duration::from_secs(90);

/// A patient's directory entry (`Patient {p}` of Bondo, `Worker {w}`): the testkit fixture.
pub use testkit::fixtures::directory_entry as entry;

/// A reading JSON as a device sends it, `minutes_ago` minutes before now.
pub fn reading(patient_id: &str, vital: &str, value: f64, minutes_ago: i64) -> Value {
    let unit = match vital {
        "heart_rate" => "bpm",
        "spo2" => "%",
        "temperature" => "celsius",
        _ => "mmHg",
    };
    let at = Utc::now() - chrono::Duration::minutes(minutes_ago);
    json!({
        "patientId": patient_id,
        "type": vital,
        "value": value,
        "unit": unit,
        "timestamp": at.to_rfc3339_opts(SecondsFormat::Secs, true),
        "deviceId": format!("dev-{patient_id}"),
    })
}

/// A Kinesis record's data as `ingest` writes it: a `ReadingRecorded` envelope of a low SpO2
/// reading (85 %) of `patient_id` a minute ago, event id `evt-{patient}`, correlation id
/// `corr-{patient}`. For tests that put records on the stream directly.
pub fn low_spo2_record(patient_id: &str) -> String {
    let r = reading(patient_id, "spo2", 85.0, 1);
    json!({
        "eventId": format!("evt-{patient_id}"),
        "eventType": "ReadingRecorded",
        "version": 1,
        "timestamp": r["timestamp"],
        "source": "test",
        "correlationId": format!("corr-{patient_id}"),
        "causationId": "test",
        "data": r,
    })
    .to_string()
}

/// `Authorization` header value of a token of the stack's local issuer.
pub fn bearer(stack: &Stack, spec: &TokenSpec) -> String {
    match stack.bearer(spec) {
        Ok(bearer) => bearer,
        Err(err) => panic!("minting a token: {err:#}"),
    }
}

/// The token the helpers send to `POST /readings` by default: an operator's (may post
/// readings for any patient; docs/security.md).
pub fn operator_bearer(stack: &Stack) -> String {
    bearer(stack, &TokenSpec::operator("op-e2e"))
}

/// The token the helpers send to the emergency and acknowledgement routes by default: the
/// district supervisor's (s-01).
pub fn supervisor_bearer(stack: &Stack) -> String {
    bearer(stack, &TokenSpec::supervisor("s-01"))
}

/// POSTs a raw body to `/readings` with an operator's token; returns the status and the
/// JSON body.
pub async fn post_raw(stack: &Stack, body: String, correlation_id: Option<&str>) -> (u16, Value) {
    let authorization = operator_bearer(stack);
    post_raw_as(stack, Some(&authorization), body, correlation_id).await
}

/// POSTs a raw body to `/readings` with this `Authorization` header (None: without one).
pub async fn post_raw_as(
    stack: &Stack,
    authorization: Option<&str>,
    body: String,
    correlation_id: Option<&str>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut request = client
        .post(format!("{}/readings", stack.api_url()))
        .header("content-type", "application/json")
        .body(body);
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    if let Some(id) = correlation_id {
        request = request.header("x-correlation-id", id);
    }
    let response = request.send().await.expect("POST /readings");
    let status = response.status().as_u16();
    let text = response.text().await.expect("reading the response body");
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    assert_documented("POST", "/readings", status, &json);
    (status, json)
}

/// POSTs readings with the token of `spec` (e.g. a health worker's or a device's).
pub async fn post_as(
    stack: &Stack,
    spec: &TokenSpec,
    body: &Value,
    correlation_id: Option<&str>,
) -> (u16, Value) {
    let authorization = bearer(stack, spec);
    post_raw_as(
        stack,
        Some(&authorization),
        body.to_string(),
        correlation_id,
    )
    .await
}

pub async fn post(stack: &Stack, body: &Value, correlation_id: Option<&str>) -> (u16, Value) {
    post_raw(stack, body.to_string(), correlation_id).await
}

/// (phone, text) of every SMS the emulator received, sorted (moto only: its model data).
pub async fn sms_messages(stack: &Stack) -> Vec<(String, String)> {
    let url = format!("{}/moto-api/data.json", stack.endpoint_url());
    let data: Value = reqwest::get(&url)
        .await
        .and_then(|r| r.error_for_status())
        .expect("reading moto's model data (SMS need moto)")
        .json()
        .await
        .expect("moto's model data is JSON");
    let mut sms: Vec<(String, String)> = data["sns"]["SMS"]
        .as_array()
        .map(|messages| {
            messages
                .iter()
                .map(|m| {
                    (
                        m["phone_number"].as_str().unwrap_or_default().to_string(),
                        m["message"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    sms.sort();
    sms
}

/// One request to the local HTTP API (`GET`, `PUT`, `DELETE`, or `POST` for any other
/// method) with this `Authorization` header value (None: without one), an optional
/// `Idempotency-Key` and an optional JSON body; returns the status and the JSON body (a
/// string if it is not JSON). The response is validated against infra/openapi.yaml.
pub async fn api_request(
    stack: &Stack,
    authorization: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&Value>,
    idempotency_key: Option<&str>,
) -> (u16, Value) {
    let mut headers = Vec::new();
    if let Some(key) = idempotency_key {
        headers.push(("idempotency-key", key.to_string()));
    }
    let (status, _, body) = api_call(stack, authorization, method, path, body, &headers).await;
    (status, body)
}

/// A response of [`api_call`]: its headers (lower-case names).
pub type Headers = std::collections::BTreeMap<String, String>;

/// [`api_request`] with any extra request headers (e.g. `if-none-match`), answering the
/// response headers too. The response is validated against infra/openapi.yaml.
pub async fn api_call(
    stack: &Stack,
    authorization: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&Value>,
    headers: &[(&str, String)],
) -> (u16, Headers, Value) {
    let client = reqwest::Client::new();
    let url = format!("{}{path}", stack.api_url());
    let mut request = match method {
        "GET" => client.get(url),
        "PUT" => client.put(url),
        "DELETE" => client.delete(url),
        _ => client.post(url),
    };
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.expect("HTTP request");
    let status = response.status().as_u16();
    let headers: Headers = response
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let text = response.text().await.unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    let method = if matches!(method, "GET" | "PUT" | "DELETE") {
        method
    } else {
        "POST"
    };
    assert_documented(method, path, status, &json);
    (status, headers, json)
}

/// A patient's detection state, whichever layout the stack keeps it in
/// (`DetectStateLayout`, docs/detection.md "State per shard"): the per-patient item of
/// `PatientStateTable`, or the patient's entry in its shard's snapshot (as fresh as the
/// snapshot's last write), both shaped as the per-patient item: `patientId`, `version`,
/// `state` and `dueAt`. `None` when neither holds the patient. (Read through the adapters:
/// `inspect::scan` does not decode the buckets' binary attribute.)
pub async fn patient_state(stack: &Stack, patient_id: &str) -> Option<Value> {
    use application::ports::PatientStateStore;
    let table = stack
        .resource("PatientStateTable")
        .expect("the state table")
        .ref_value
        .clone();
    let config = stack.sdk_config();
    let item = aws_adapters::DynamoStateStore::new(config, table.clone())
        .load(patient_id)
        .await
        .expect("reading the patient's item");
    let found = if item.version > 0 {
        item
    } else {
        application::shard_state::ShardedStates {
            store: aws_adapters::DynamoShardStore::new(config, table),
        }
        .load(patient_id)
        .await
        .expect("reading the shard snapshots")
    };
    (found.version > 0).then(|| {
        json!({
            "patientId": patient_id,
            "version": found.version,
            "dueAt": found.value.due_at,
            "state": found.value,
        })
    })
}

/// When each shard's snapshot header asks the sweep to come (epoch ms; `None`: never),
/// by shard id (detection state per shard, the default layout).
pub async fn shard_headers_due(stack: &Stack) -> Vec<(String, Option<i64>)> {
    use application::shard_state::ShardStateStore;
    let table = stack
        .resource("PatientStateTable")
        .expect("the state table")
        .ref_value
        .clone();
    let store = aws_adapters::DynamoShardStore::new(stack.sdk_config(), table);
    let mut due = Vec::new();
    for shard in store.shards().await.expect("listing the shards") {
        if let Some(meta) = store.load_meta(&shard).await.expect("reading a header") {
            due.push((shard, meta.due_at));
        }
    }
    due
}

/// Waits (at most `timeout`) until [`patient_state`] holds a state for which `done` is
/// true, and returns it; panics with the last state seen otherwise.
pub async fn wait_for_state(
    stack: &Stack,
    patient_id: &str,
    timeout: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let started = std::time::Instant::now();
    loop {
        let state = patient_state(stack, patient_id).await;
        if let Some(state) = state.as_ref().filter(|s| done(s)) {
            return state.clone();
        }
        assert!(
            started.elapsed() < timeout,
            "{patient_id}'s state never got there: {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
