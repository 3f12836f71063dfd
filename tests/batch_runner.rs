//! Partial batch responses of real handlers, through the local runner: the `route` binary is
//! invoked via the emulated Lambda Runtime API with SQS batches, and its guarded side
//! effects are checked in the emulator (tables, the notify pipeline).

use application::event_store::{EventStreams, ExpectedVersion};
use application::ports::StoredEvent;
use aws_adapters::DynamoEventStore;
use devstack::{InvokeOutcome, inspect};
use domain::envelope::Envelope;
use domain::events::{AlertRaised, alert_stream};
use e2e::*;
use serde_json::{Value, json};
use testkit::fixtures;

/// p's critical alert as detect publishes it.
fn alert(patient: &str) -> Envelope<AlertRaised> {
    let alert = fixtures::alert_raised(patient);
    fixtures::from_detect(format!("evt-{patient}"), format!("corr-{patient}"), alert)
}

fn sqs_event(messages: &[(&str, String)]) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|(id, body)| {
            json!({
                "messageId": id,
                "receiptHandle": format!("rh-{id}"),
                "body": body,
                "attributes": {},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    json!({ "Records": records })
}

fn failures(outcome: &InvokeOutcome) -> Vec<String> {
    batch_item_failures("route", outcome)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_reports_partial_batch_failures_and_runs_a_repeat_once() {
    let stack = start_stack("batch_runner").await;
    inspect::seed_directory(&stack, &[entry("p-1", "w-1", "+254700000201")])
        .await
        .unwrap();
    // As detect leaves it: the alert stored at version 1 of its stream.
    let store = DynamoEventStore::new(
        stack.sdk_config(),
        stack.resource("EventsTable").unwrap().ref_value.clone(),
    );
    let good = alert("p-1");
    store
        .append(
            &alert_stream(&good.data.alert_id),
            ExpectedVersion::NoStream,
            &[StoredEvent::from_envelope(&good).unwrap()],
        )
        .await
        .unwrap();
    let good_body = serde_json::to_string(&good).unwrap();

    // A standard SQS batch: a good alert, garbage, an alert for a patient nobody looks after.
    let batch = sqs_event(&[
        ("m-good", good_body.clone()),
        ("m-garbage", "{not json".to_string()),
        (
            "m-unknown",
            serde_json::to_string(&alert("p-unknown")).unwrap(),
        ),
    ]);
    let outcome = stack.invoke("RouteFunction", batch).await.unwrap();
    assert_eq!(failures(&outcome), ["m-garbage", "m-unknown"]);

    // Every record failing is reported as such.
    let all_bad = sqs_event(&[("b-1", "[]".into()), ("b-2", "{}".into())]);
    let outcome = stack.invoke("RouteFunction", all_bad).await.unwrap();
    assert_eq!(failures(&outcome), ["b-1", "b-2"]);

    // The good alert is delivered again (at-least-once): the guard returns the stored result.
    let outcome = stack
        .invoke("RouteFunction", sqs_event(&[("m-good-again", good_body)]))
        .await
        .unwrap();
    assert!(failures(&outcome).is_empty());
    stack.wait_idle(DRAIN).await.unwrap();

    // One routing, one notification request, one notification, one idempotency record.
    let routed = inspect::events_of_type(&stack, "AlertRouted")
        .await
        .unwrap();
    assert_eq!(routed.len(), 1);
    let notify_messages: usize = stack
        .invocations("NotifyFunction")
        .iter()
        .map(|i| i.payload["Records"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(notify_messages, 1, "the repeat sent no second request");
    let outbox = inspect::scan(&stack, "OutboxTable").await.unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0]["status"], "sent");
    let records = inspect::scan(&stack, "IdempotencyTable").await.unwrap();
    let route_records: Vec<_> = records
        .iter()
        .filter(|r| r["id"].as_str().unwrap_or_default().starts_with("route#"))
        .collect();
    assert_eq!(
        route_records.len(),
        1,
        "failed records were deleted: {records:?}"
    );
    assert_eq!(route_records[0]["status"], "COMPLETED");
    let notify_records = records
        .iter()
        .filter(|r| r["id"].as_str().unwrap_or_default().starts_with("notify#"))
        .count();
    assert_eq!(notify_records, 1);
}
