//! The dashboard projector through the local runner: the real `project` binary on the
//! events table's DynamoDB stream (moto's DynamoDB Streams API, polled by the runner's
//! event source mapping with its filter, partial batch responses, retries and on-failure
//! destination). Checked in the emulator: the dashboard table and the failure queue.

use application::event_store::{EventStreams, ExpectedVersion};
use application::ports::StoredEvent;
use aws_adapters::DynamoEventStore;
use chrono::Utc;
use devstack::{InvokeOutcome, Stack, inspect};
use e2e::*;
use serde_json::{Value, json};

fn stored(event_id: &str, event_type: &str, schema_version: u32, data: Value) -> StoredEvent {
    StoredEvent {
        event_id: event_id.into(),
        event_type: event_type.into(),
        schema_version,
        timestamp: Utc::now(),
        source: "test".into(),
        correlation_id: format!("corr-{event_id}"),
        causation_id: "test".into(),
        data,
    }
}

fn raised(alert: &str) -> StoredEvent {
    stored(
        &format!("raised-{alert}"),
        "AlertRaised",
        1,
        json!({
            "alertId": alert, "patientId": "p-9", "ruleId": "spo2-low", "alertType": "hypoxemia",
            "severity": "critical", "village": "Bondo", "description": "SpO2 85 %",
            "evidence": [], "detectedAt": Utc::now(),
        }),
    )
}

fn routed(alert: &str, schema_version: u32) -> StoredEvent {
    stored(
        &format!("routed-{alert}"),
        "AlertRouted",
        schema_version,
        json!({"alertId": alert, "patientId": "p-9", "workerId": "w-9", "notificationId": "n-9"}),
    )
}

/// One invocation of the projector: (event id, sequence number) of each record, and the
/// sequence numbers it reported as failed.
struct Batch {
    records: Vec<(String, String)>,
    failed: Vec<String>,
}

fn batches(stack: &Stack) -> Vec<Batch> {
    stack
        .invocations("ProjectFunction")
        .iter()
        .map(|invocation| {
            let failed = batch_item_failures("project", &invocation.outcome);
            let records = invocation.payload["Records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    (
                        r["dynamodb"]["NewImage"]["eventId"]["S"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        r["dynamodb"]["SequenceNumber"]
                            .as_str()
                            .unwrap()
                            .to_string(),
                    )
                })
                .collect();
            Batch { records, failed }
        })
        .collect()
}

async fn view(stack: &Stack, alert: &str) -> Option<Value> {
    dashboard_item(stack, &format!("alert#{alert}")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_stream_record_stops_its_batch_is_retried_then_given_up() {
    let stack = start_stack("projector").await;
    let store = DynamoEventStore::new(
        stack.sdk_config(),
        stack.resource("EventsTable").unwrap().ref_value.clone(),
    );
    // x1 raised; then x1 routed in a schema version newer than the projector knows; then
    // x2 raised. One batch (the mapping's batching window is 1 s).
    for (stream, event) in [
        ("alert-x1", raised("x1")),
        ("alert-x1", routed("x1", 2)),
        ("alert-x2", raised("x2")),
    ] {
        store
            .append(stream, ExpectedVersion::Any, &[event])
            .await
            .unwrap();
    }
    stack.wait_idle(DRAIN).await.unwrap();

    let batches = batches(&stack);
    // The event filter let through only the 3 event inserts: no counter, no dedupe items.
    assert!(
        batches
            .iter()
            .flat_map(|b| &b.records)
            .all(|(id, _)| !id.is_empty()),
        "only event items reach the function"
    );
    let first = &batches[0];
    let ids: Vec<&str> = first.records.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["raised-x1", "routed-x1", "raised-x2"]);
    let newer_seq = first.records[1].1.clone();
    // Stop at the first failure: reported by its sequence number, nothing after it ran.
    assert_eq!(first.failed, std::slice::from_ref(&newer_seq));
    // Retried from the failed record, MaximumRetryAttempts (5) times, then given up.
    assert_eq!(batches.len(), 6, "1 attempt + 5 retries");
    for retry in &batches[1..] {
        assert_eq!(retry.records[0].1, newer_seq);
        assert_eq!(retry.failed, std::slice::from_ref(&newer_seq));
    }
    let failures = inspect::peek_queue(&stack, "ProjectFailureQueue")
        .await
        .unwrap();
    assert_eq!(failures.len(), 1);
    let info: Value = serde_json::from_str(&failures[0]).unwrap();
    assert_eq!(
        info["requestContext"]["condition"],
        "RetryAttemptsExhausted"
    );
    assert_eq!(info["DDBStreamBatchInfo"]["startSequenceNumber"], newer_seq);
    assert_eq!(info["DDBStreamBatchInfo"]["batchSize"], 2);

    // x1's view has the raise only; x2's raise was given up with the rest of the batch.
    let x1 = view(&stack, "x1").await.expect("x1 view");
    assert_eq!(x1["status"], "raised");
    assert_eq!(x1["view"]["applied"]["alert-x1"], 1);
    assert!(view(&stack, "x2").await.is_none());

    // The next event of x2 finds the gap and catches the view up from the store.
    store
        .append("alert-x2", ExpectedVersion::Exact(1), &[routed("x2", 1)])
        .await
        .unwrap();
    stack.wait_idle(DRAIN).await.unwrap();
    let x2 = view(&stack, "x2").await.expect("x2 view");
    assert_eq!(x2["status"], "routed");
    assert_eq!(
        x2["view"]["severity"], "critical",
        "the raise came from the store"
    );
    assert_eq!(x2["view"]["applied"]["alert-x2"], 2);
    assert_eq!(x2["board"], "open");

    // A repeated append (its transaction is cancelled: the event id is already stored)
    // leaves the stream flowing: the next event is projected.
    store
        .append("alert-x2", ExpectedVersion::Any, &[routed("x2", 1)])
        .await
        .unwrap();
    store
        .append("alert-x3", ExpectedVersion::NoStream, &[raised("x3")])
        .await
        .unwrap();
    stack.wait_idle(DRAIN).await.unwrap();
    let x3 = view(&stack, "x3").await.expect("x3 view");
    assert_eq!(x3["status"], "raised");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_the_store_rebuilds_an_emptied_dashboard() {
    let stack = start_stack("projector_replay").await;
    inspect::seed_directory(
        &stack,
        &[
            entry("p-3", "w-3", "+254700000103"),
            entry("p-4", "w-4", "+254700000104"),
            entry("p-5", "w-5", "+254700000105"),
        ],
    )
    .await
    .unwrap();
    let readings = json!([
        reading("p-3", "spo2", 84.0, 1),
        reading("p-4", "spo2", 83.0, 1),
        reading("p-5", "spo2", 82.0, 1),
    ]);
    let (status, _) = post(&stack, &readings, None).await;
    assert_eq!(status, 202);
    stack.wait_idle(DRAIN).await.unwrap();
    let stats_before = inspect::scan(&stack, "VillageStatsTable").await.unwrap();
    let views_of = |items: Vec<Value>| {
        let mut views: Vec<Value> = items.into_iter().map(|i| i["view"].clone()).collect();
        views.sort_by_key(|v| v.to_string());
        views
    };
    let before = views_of(inspect::scan(&stack, "DashboardTable").await.unwrap());
    assert!(!before.is_empty());

    // Lose the dashboard, then replay the store onto it.
    let table = stack.resource("DashboardTable").unwrap().ref_value.clone();
    let dynamodb = aws_sdk_dynamodb::Client::new(stack.sdk_config());
    for item in inspect::scan(&stack, "DashboardTable").await.unwrap() {
        dynamodb
            .delete_item()
            .table_name(&table)
            .key(
                "viewId",
                aws_sdk_dynamodb::types::AttributeValue::S(
                    item["viewId"].as_str().unwrap().to_string(),
                ),
            )
            .send()
            .await
            .unwrap();
    }
    assert!(
        inspect::scan(&stack, "DashboardTable")
            .await
            .unwrap()
            .is_empty()
    );
    // The store has no global position (issue 15): a rebuild is one pass of read_all,
    // here in invocations of 4 events, each resuming from the checkpoint the last answered.
    let mut request = json!({"maxEvents": 4});
    let (mut invocations, mut projected) = (0, 0);
    loop {
        let outcome = stack
            .invoke("ProjectFunction", json!({ "rebuild": request }))
            .await
            .unwrap();
        let InvokeOutcome::Ok(answer) = outcome else {
            panic!("rebuild failed: {outcome:?}");
        };
        invocations += 1;
        projected += answer["projected"].as_u64().unwrap();
        if answer["done"] == true {
            break;
        }
        assert_eq!(answer["read"], 4, "{answer}");
        request = json!({"after": answer["next"], "maxEvents": 4});
        assert!(invocations < 100, "the pass ends");
    }
    assert!(invocations > 2, "the pass was resumed from checkpoints");
    assert!(
        projected >= 9,
        "three alerts' events projected: {projected}"
    );
    let after = views_of(inspect::scan(&stack, "DashboardTable").await.unwrap());
    assert_eq!(after, before, "the rebuilt views equal the live ones");
    // Village statistics count each event once: the replay changed none.
    let stats_after = inspect::scan(&stack, "VillageStatsTable").await.unwrap();
    assert_eq!(stats_after, stats_before);

    // The former request shape (afterPosition 0 = from the start) still works; another
    // position of the former global counter is refused with a clear error.
    let outcome = stack
        .invoke("ProjectFunction", json!({"rebuild": {"afterPosition": 0}}))
        .await
        .unwrap();
    let InvokeOutcome::Ok(answer) = outcome else {
        panic!("rebuild failed: {outcome:?}");
    };
    assert_eq!(
        (&answer["done"], &answer["projected"]),
        (&json!(true), &json!(0))
    );
    let outcome = stack
        .invoke("ProjectFunction", json!({"rebuild": {"afterPosition": 42}}))
        .await
        .unwrap();
    let InvokeOutcome::FunctionError { error_message, .. } = outcome else {
        panic!("a stale position was accepted: {outcome:?}");
    };
    assert!(error_message.contains("checkpoint"), "{error_message}");

    // A bad request gets a clear error.
    let outcome = stack
        .invoke(
            "ProjectFunction",
            json!({"rebuild": {"afterPosition": "zero"}}),
        )
        .await
        .unwrap();
    let InvokeOutcome::FunctionError { error_message, .. } = outcome else {
        panic!("a bad request was accepted: {outcome:?}");
    };
    assert!(
        error_message.contains("invalid rebuild request"),
        "{error_message}"
    );
}
