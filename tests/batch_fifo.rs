//! Partial batch responses of a real handler on a FIFO queue, through the local runner: the
//! `notify` binary consumes the FIFO notify queue (message group = recipient and alert) via the
//! emulated SQS event source mapping. Checked in the emulator: which messages each
//! invocation reported as failed, the dead-letter queue and the outbox table.
//!
//! Also the panic path: with fault injection on, a record that panics inside the real
//! handler is reported as that record's failure and the process keeps running.

use std::collections::BTreeMap;

use application::ports::NotificationQueue;
use aws_adapters::SqsNotificationQueue;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use chrono::Utc;
use devstack::{InvocationRecord, Stack, inspect};
use domain::envelope::{Envelope, Lineage};
use domain::events::{NotificationRequested, Severity};
use e2e::*;
use lambda_kit::batch::FAULT_INJECTION_PANIC_ON;
use serde_json::Value;

/// A notification request body for `recipient` with `phone`.
fn request_with_phone(
    notification_id: &str,
    recipient: &str,
    phone: &str,
    message: &str,
) -> String {
    let mut envelope = request_envelope(
        notification_id,
        &format!("alert-{notification_id}"),
        recipient,
        message,
    );
    envelope.data.recipient_phone = phone.into();
    serde_json::to_string(&envelope).expect("serialises")
}

/// A notification request body for `recipient`.
fn request(notification_id: &str, recipient: &str, message: &str) -> String {
    let envelope = request_envelope(
        notification_id,
        &format!("alert-{notification_id}"),
        recipient,
        message,
    );
    serde_json::to_string(&envelope).expect("serialises")
}

/// A notification request of `alert_id` (an emergency id for saga notifications).
fn request_envelope(
    notification_id: &str,
    alert_id: &str,
    recipient: &str,
    message: &str,
) -> Envelope<NotificationRequested> {
    Envelope::new(
        format!("evt-{notification_id}"),
        "route",
        Lineage {
            correlation_id: format!("corr-{notification_id}"),
            causation_id: "alert-evt".into(),
        },
        Utc::now(),
        NotificationRequested {
            notification_id: notification_id.into(),
            alert_id: alert_id.into(),
            patient_id: "p-fifo".into(),
            severity: Severity::Warning,
            recipient_id: recipient.into(),
            recipient_phone: "+254700000301".into(),
            message: message.into(),
            kind: Default::default(),
        },
    )
}

/// Sends `(dedupe id, group, body)` messages to the notify queue in one request, in order.
async fn send_fifo(stack: &Stack, messages: &[(&str, &str, String)]) {
    let url = stack.resource("NotifyQueue").unwrap().ref_value.clone();
    let entries = messages
        .iter()
        .enumerate()
        .map(|(i, (dedupe, group, body))| {
            SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(body)
                .message_group_id(*group)
                .message_deduplication_id(*dedupe)
                .build()
                .unwrap()
        })
        .collect();
    let out = aws_sdk_sqs::Client::new(stack.sdk_config())
        .send_message_batch()
        .queue_url(url)
        .set_entries(Some(entries))
        .send()
        .await
        .unwrap();
    assert!(out.failed().is_empty(), "{:?}", out.failed());
}

/// One SQS invocation of notify: the bodies it got (by message id) and the failed ids.
struct Delivery {
    bodies: BTreeMap<String, String>,
    failed: Vec<String>,
}

impl Delivery {
    fn of(record: &InvocationRecord) -> Delivery {
        let failed = batch_item_failures("notify", &record.outcome);
        let bodies = record.payload["Records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["messageId"].as_str().unwrap().to_string(),
                    r["body"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        Delivery { bodies, failed }
    }

    /// Whether the message whose body contains `text` was in this batch, and if so whether
    /// it was reported as failed.
    fn outcome_of(&self, text: &str) -> Option<bool> {
        self.bodies
            .iter()
            .find(|(_, body)| body.contains(text))
            .map(|(id, _)| self.failed.contains(id))
    }
}

/// A message of a queue with its message attributes (string values) and its group.
struct Peeked {
    body: String,
    group: Option<String>,
    attributes: BTreeMap<String, String>,
}

/// Every message of a queue, with attributes, left in the queue (made visible again).
async fn peek_with_attributes(stack: &Stack, queue: &str) -> Vec<Peeked> {
    let url = stack.resource(queue).unwrap().ref_value.clone();
    let client = aws_sdk_sqs::Client::new(stack.sdk_config());
    let mut peeked = Vec::new();
    let mut handles = Vec::new();
    loop {
        let out = client
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .visibility_timeout(30)
            .message_attribute_names("All")
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .send()
            .await
            .unwrap();
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for m in messages {
            let attributes = m
                .message_attributes()
                .map(|attrs| {
                    attrs
                        .iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.string_value()?.to_string())))
                        .collect()
                })
                .unwrap_or_default();
            let group = m
                .attributes()
                .and_then(|a| {
                    a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId)
                })
                .cloned();
            peeked.push(Peeked {
                body: m.body.clone().unwrap_or_default(),
                group,
                attributes,
            });
            handles.extend(m.receipt_handle);
        }
    }
    for handle in handles {
        client
            .change_message_visibility()
            .queue_url(&url)
            .receipt_handle(handle)
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
    }
    peeked
}

fn deliveries(stack: &Stack) -> Vec<Delivery> {
    stack
        .invocations("NotifyFunction")
        .iter()
        .filter(|r| r.source == "sqs:NotifyQueue")
        .map(Delivery::of)
        .collect()
}

async fn sent_notifications(stack: &Stack) -> Vec<String> {
    let mut ids: Vec<String> = inspect::scan(stack, "OutboxTable")
        .await
        .unwrap()
        .iter()
        .filter(|row| row["status"] == "sent")
        .map(|row| row["notificationId"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_failure_holds_back_its_group_only() {
    // A transient failure (fault injection: the record panics, every time) holds back its
    // group; a permanent one would be parked instead (see the test below).
    let marker = "chaos-transient-5e2b";
    let stack = start_stack_with_env(
        "batch_fifo",
        "NotifyFunction",
        &[(FAULT_INJECTION_PANIC_ON, marker)],
    )
    .await;
    // Group A: a failing message, then a good one. Group B: a good one.
    send_fifo(
        &stack,
        &[
            (
                "a-1",
                "w-A",
                request("n-a-1", "w-A", &format!("{{poison: {marker}")),
            ),
            ("a-2", "w-A", request("n-a-2", "w-A", "second for A")),
            ("b-1", "w-B", request("n-b-1", "w-B", "first for B")),
        ],
    )
    .await;
    stack.wait_idle(DRAIN).await.unwrap();

    let deliveries = deliveries(&stack);
    // The poison message failed every time it was delivered, and A's second message came
    // with it each time, reported as failed without being processed (it must not overtake).
    let with_poison: Vec<&Delivery> = deliveries
        .iter()
        .filter(|d| d.outcome_of("{poison").is_some())
        .collect();
    assert_eq!(with_poison.len(), 5, "maxReceiveCount is 5");
    for delivery in &with_poison {
        assert_eq!(delivery.outcome_of("{poison"), Some(true));
        assert_eq!(delivery.outcome_of("second for A"), Some(true));
    }
    assert!(
        deliveries
            .iter()
            .all(|d| d.outcome_of("second for A") != Some(false)),
        "A's second message never ran"
    );
    // B was not held back by A: it succeeded the first (and only) time it was delivered.
    let b: Vec<Option<bool>> = deliveries
        .iter()
        .map(|d| d.outcome_of("first for B"))
        .filter(Option::is_some)
        .collect();
    assert_eq!(b, [Some(false)]);
    assert_eq!(sent_notifications(&stack).await, ["n-b-1"]);

    // Held back with the failing message, A's second message used up its receives too: the
    // group's tail is in the DLQ behind it, in order, to be redriven once the cause is fixed.
    let dlq = inspect::peek_queue(&stack, "NotifyDLQ").await.unwrap();
    assert_eq!(dlq.len(), 2, "{dlq:?}");
    assert!(dlq[0].contains(marker));
    assert!(dlq[1].contains("second for A"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_record_is_reported_as_its_own_failure() {
    let marker = "chaos-panic-7f3a";
    let stack = start_stack_with_env(
        "batch_panic",
        "NotifyFunction",
        &[(FAULT_INJECTION_PANIC_ON, marker)],
    )
    .await;
    send_fifo(
        &stack,
        &[
            (
                "c-1",
                "w-C",
                request("n-c-1", "w-C", &format!("text with {marker}")),
            ),
            ("d-1", "w-D", request("n-d-1", "w-D", "an ordinary message")),
        ],
    )
    .await;
    stack.wait_idle(DRAIN).await.unwrap();

    // Every invocation returned a response (Delivery::of checks it): the panic was caught
    // inside the handler, the process did not crash.
    let deliveries = deliveries(&stack);
    let panicking: Vec<Option<bool>> = deliveries
        .iter()
        .map(|d| d.outcome_of(marker))
        .filter(Option::is_some)
        .collect();
    assert!(panicking.len() >= 5, "{}", panicking.len());
    assert!(panicking.iter().all(|p| *p == Some(true)));
    let ordinary: Vec<Option<bool>> = deliveries
        .iter()
        .map(|d| d.outcome_of("an ordinary message"))
        .filter(Option::is_some)
        .collect();
    assert_eq!(ordinary, [Some(false)]);

    let panics = function_log(&stack, "NotifyFunction")
        .iter()
        .filter(|line| {
            line.to_string()
                .contains("panicked: fault injected: the record contains")
        })
        .count();
    assert!(panics >= 5, "the caught panics are logged: {panics}");
    assert_eq!(sent_notifications(&stack).await, ["n-d-1"]);
    let dlq: Vec<Value> = inspect::peek_queue(&stack, "NotifyDLQ")
        .await
        .unwrap()
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0]["data"]["notificationId"], "n-c-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_emergency_failing_at_the_hospital_does_not_block_another() {
    // Every hospital escalation goes to the same recipient (the district hospital). The
    // first emergency's request keeps failing (a transient failure: fault injection), the
    // second one's must still reach the hospital.
    let marker = "chaos-hospital-9c1d";
    let stack = start_stack_with_env(
        "batch_hospital",
        "NotifyFunction",
        &[(FAULT_INJECTION_PANIC_ON, marker)],
    )
    .await;
    let url = stack.resource("NotifyQueue").unwrap().ref_value.clone();
    let queue = SqsNotificationQueue::new(stack.sdk_config(), url);
    for (notification_id, emergency_id, message) in [
        ("n-em-1", "em-1", format!("emergency one {marker}")),
        ("n-em-2", "em-2", "emergency two".to_string()),
    ] {
        let request =
            request_envelope(notification_id, emergency_id, "district-hospital", &message);
        queue.send(&request).await.unwrap();
    }
    stack.wait_idle(DRAIN).await.unwrap();

    // The second emergency was never held back: it succeeded the first time it ran.
    let deliveries = deliveries(&stack);
    let second: Vec<Option<bool>> = deliveries
        .iter()
        .map(|d| d.outcome_of("emergency two"))
        .filter(Option::is_some)
        .collect();
    assert_eq!(second, [Some(false)]);
    assert_eq!(sent_notifications(&stack).await, ["n-em-2"]);
    // Only the failing emergency's request is in the DLQ.
    let dlq = inspect::peek_queue(&stack, "NotifyDLQ").await.unwrap();
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    assert!(dlq[0].contains("emergency one"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_errors_are_parked_with_their_reason_and_the_group_goes_on() {
    let stack = start_stack("batch_parked").await;
    // One group: a good message, then three that can never succeed (not an envelope; the
    // id of the first with other data; an invalid phone number), then a good one.
    send_fifo(
        &stack,
        &[
            ("p-1", "w-P", request("n-p-1", "w-P", "first for P")),
            ("p-2", "w-P", "{poison: not an envelope".to_string()),
            (
                "p-3",
                "w-P",
                request("n-p-1", "w-P", "first for P, other text"),
            ),
            (
                "p-4",
                "w-P",
                request_with_phone("n-p-4", "w-P", "not-a-phone", "bad phone for P"),
            ),
            ("p-5", "w-P", request("n-p-5", "w-P", "last for P")),
        ],
    )
    .await;
    stack.wait_idle(DRAIN).await.unwrap();

    // Every message was delivered once and none was reported as failed: the permanent
    // errors were parked, not retried, and did not hold back the last message.
    let deliveries = deliveries(&stack);
    for text in [
        "first for P\"",
        "{poison",
        "other text",
        "bad phone for P",
        "last for P",
    ] {
        let outcomes: Vec<Option<bool>> = deliveries
            .iter()
            .map(|d| d.outcome_of(text))
            .filter(Option::is_some)
            .collect();
        assert_eq!(outcomes, [Some(false)], "{text}");
    }
    assert_eq!(sent_notifications(&stack).await, ["n-p-1", "n-p-5"]);

    // The parked messages are in the notify DLQ, in order, with their original body, their
    // group, and why they were parked.
    let parked = peek_with_attributes(&stack, "NotifyDLQ").await;
    assert_eq!(parked.len(), 3);
    assert_eq!(parked[0].body, "{poison: not an envelope");
    assert!(parked[1].body.contains("other text"));
    assert!(parked[2].body.contains("bad phone for P"));
    let codes: Vec<&str> = parked
        .iter()
        .map(|p| p.attributes.get("errorCode").map_or("", String::as_str))
        .collect();
    assert_eq!(codes, ["decode", "payload-mismatch", "invalid-phone"]);
    for p in &parked {
        assert_eq!(p.group.as_deref(), Some("w-P"));
        assert_eq!(
            p.attributes.get("function").map(String::as_str),
            Some("notify")
        );
        assert!(
            p.attributes
                .get("parkedReason")
                .is_some_and(|r| !r.is_empty())
        );
        let original = p
            .attributes
            .get("originalMessageId")
            .expect("original message id");
        assert!(
            deliveries
                .iter()
                .any(|d| d.bodies.get(original) == Some(&p.body)),
            "the original message id names the delivered message"
        );
    }
}
