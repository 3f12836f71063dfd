//! Given/when/then tests of the notify handler with in-memory ports.

use application::idempotency::Idempotency;
use application::ports::{MessageSender, PortError};
use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage, SqsMessageAttribute};
use chrono::Utc;
use domain::envelope::{Envelope, Lineage};
use domain::events::{NotificationKind, NotificationRequested, Severity, notification_stream};
use notify::{Deps, handle};
use testkit::*;

fn request() -> Envelope<NotificationRequested> {
    Envelope::new(
        "req-evt-1",
        "route",
        Lineage {
            correlation_id: "corr-1".into(),
            causation_id: "routed-1".into(),
        },
        Utc::now(),
        NotificationRequested {
            notification_id: "n-1".into(),
            alert_id: "a-1".into(),
            patient_id: "p-1".into(),
            severity: Severity::Critical,
            recipient_id: "w-1".into(),
            recipient_phone: "+254700000001".into(),
            message: "[CRITICAL] Amina: spo2 below 90 %".into(),
            kind: NotificationKind::Alert,
        },
    )
}

fn sqs(body: String) -> SqsEvent {
    fifo(&[("m-1", "w-1", body)])
}

/// A FIFO batch of `(message id, group, body)`, in order.
fn fifo(messages: &[(&str, &str, String)]) -> SqsEvent {
    let mut event = SqsEvent::default();
    for (id, group, body) in messages {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.to_string());
        m.body = Some(body.clone());
        m.attributes
            .insert("MessageGroupId".to_string(), group.to_string());
        let mut attribute = SqsMessageAttribute::default();
        attribute.data_type = Some("String".into());
        attribute.string_value = Some("corr-1".into());
        m.message_attributes
            .insert("correlationId".to_string(), attribute);
        event.records.push(m);
    }
    event
}

/// A sender that fails every message with `error` (SNS down, or SNS rejecting it).
struct FailingSender {
    error: PortError,
}

#[async_trait]
impl MessageSender for FailingSender {
    fn channel(&self) -> &'static str {
        "failing"
    }

    async fn send(&self, _phone: &str, _message: &str) -> Result<Option<String>, PortError> {
        Err(self.error.clone())
    }
}

/// The in-memory adapters, owned by the test; [`World::handle`] lends them to the handler.
#[derive(Default)]
struct World {
    outbox: MemoryOutbox,
    sender: MemorySender,
    events: MemoryEventStore,
    idempotency: MemoryIdempotencyStore,
    parking: MemoryParking,
}

impl World {
    /// When: the handler is invoked with `event`, its deps borrowed from the world and its
    /// idempotency guard built over the world's store for the invocation, as `main` does.
    async fn handle(&self, event: &SqsEvent) -> SqsBatchResponse {
        self.handle_with(&self.sender, event).await
    }

    /// The same with another sender.
    async fn handle_with(&self, sender: &dyn MessageSender, event: &SqsEvent) -> SqsBatchResponse {
        let guard = Idempotency::new(&self.idempotency, notify::idempotency_config());
        let deps = Deps {
            outbox: &self.outbox,
            sender,
            events: &self.events,
            idempotency: &guard,
            parking: &self.parking,
        };
        handle(&deps, event, Utc::now()).await.unwrap()
    }

    /// The error codes of the parked messages, in order.
    fn parked_codes(&self) -> Vec<String> {
        self.parking
            .parked
            .lock()
            .unwrap()
            .iter()
            .map(|p| p.error_code.clone())
            .collect()
    }
}

fn failed_ids(response: &SqsBatchResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

#[tokio::test]
async fn a_request_is_sent_recorded_in_the_outbox_and_the_event_store() {
    let world = World::default();
    let response = world
        .handle(&sqs(serde_json::to_string(&request()).unwrap()))
        .await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        world.sender.sent.lock().unwrap().as_slice(),
        [(
            "+254700000001".to_string(),
            "[CRITICAL] Amina: spo2 below 90 %".to_string()
        )]
    );
    let rows = world.outbox.rows.lock().unwrap();
    assert_eq!(rows["n-1"].status, "sent");
    assert_eq!(rows["n-1"].provider_message_id.as_deref(), Some("msg-1"));
    let stream = world.events.stream(&notification_stream("n-1"));
    assert_eq!(stream.len(), 1);
    assert_eq!(stream[0].event_type, "NotificationSent");
    assert_eq!(stream[0].correlation_id, "corr-1");
}

#[tokio::test]
async fn a_redelivered_request_sends_nothing_more() {
    let world = World::default();
    let body = serde_json::to_string(&request()).unwrap();
    for _ in 0..3 {
        world.handle(&sqs(body.clone())).await;
    }
    assert_eq!(world.sender.sent.lock().unwrap().len(), 1);
    assert_eq!(world.events.all().len(), 1);
}

#[tokio::test]
async fn a_wrong_event_type_is_parked_with_its_reason_and_nothing_is_sent() {
    let world = World::default();
    let mut json = serde_json::to_value(request()).unwrap();
    json["eventType"] = "AlertRaised".into();
    let response = world.handle(&sqs(json.to_string())).await;
    assert!(response.batch_item_failures.is_empty(), "handled: parked");
    assert!(world.sender.sent.lock().unwrap().is_empty());
    assert!(world.outbox.rows.lock().unwrap().is_empty());
    let parked = world.parking.parked.lock().unwrap().clone();
    assert_eq!(parked.len(), 1);
    let p = &parked[0];
    assert_eq!(p.body, json.to_string(), "the original body");
    assert_eq!(p.error_code, "wrong-event-type");
    assert!(
        p.reason
            .contains("expected eventType NotificationRequested")
    );
    assert_eq!(p.original_message_id, "m-1");
    assert_eq!(p.group_id.as_deref(), Some("w-1"));
    assert_eq!(p.function, "notify");
    assert_eq!(
        p.attributes,
        [("correlationId".to_string(), "corr-1".to_string())]
    );
}

#[tokio::test]
async fn permanent_errors_are_parked_and_the_rest_of_the_group_goes_on() {
    let world = World::default();
    let mut mismatch = request();
    mismatch.data.message = "other text for the same notification id".into();
    let mut bad_phone = request();
    bad_phone.data.notification_id = "n-2".into();
    bad_phone.data.recipient_phone = "0700 000 001".into();
    let mut newer = serde_json::to_value(request()).unwrap();
    newer["version"] = 99.into();
    let mut last = request();
    last.data.notification_id = "n-3".into();
    let json = |e: &Envelope<NotificationRequested>| serde_json::to_string(e).unwrap();
    let response = world
        .handle(&fifo(&[
            ("m-1", "w-1", json(&request())),
            ("m-2", "w-1", "not json".to_string()),
            ("m-3", "w-1", json(&mismatch)),
            ("m-4", "w-1", json(&bad_phone)),
            ("m-5", "w-1", newer.to_string()),
            ("m-6", "w-1", json(&last)),
        ]))
        .await;
    assert!(failed_ids(&response).is_empty());
    assert_eq!(
        world.parked_codes(),
        [
            "decode",
            "payload-mismatch",
            "invalid-phone",
            "unsupported-version"
        ]
    );
    let rows = world.outbox.rows.lock().unwrap();
    let mut sent: Vec<&str> = rows.keys().map(String::as_str).collect();
    sent.sort_unstable();
    assert_eq!(sent, ["n-1", "n-3"], "no row for the invalid phone");
}

#[tokio::test]
async fn a_request_the_provider_rejects_as_invalid_is_parked() {
    let world = World::default();
    let sender = FailingSender {
        error: PortError::Rejected("InvalidParameter: PhoneNumber".into()),
    };
    let response = world
        .handle_with(&sender, &sqs(serde_json::to_string(&request()).unwrap()))
        .await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(world.parked_codes(), ["rejected"]);
    // The claim stays pending: a fixed request sent again delivers it.
    assert_eq!(world.outbox.rows.lock().unwrap()["n-1"].status, "pending");
}

#[tokio::test]
async fn a_transient_error_is_reported_with_the_rest_of_its_group_and_nothing_is_parked() {
    let world = World::default();
    let sender = FailingSender {
        error: PortError::Backend("SNS throttled".into()),
    };
    let mut other_group = request();
    other_group.data.notification_id = "n-9".into();
    let mut same_group = request();
    same_group.data.notification_id = "n-2".into();
    let json = |e: &Envelope<NotificationRequested>| serde_json::to_string(e).unwrap();
    let response = world
        .handle_with(
            &sender,
            &fifo(&[
                ("m-1", "w-1", json(&request())),
                ("m-2", "w-1", json(&same_group)),
                ("m-3", "w-2", "not json".to_string()),
            ]),
        )
        .await;
    // w-1's first fails (transient) and holds back its second; w-2's is parked (permanent).
    assert_eq!(failed_ids(&response), ["m-1", "m-2"]);
    assert_eq!(world.parked_codes(), ["decode"]);
}

#[tokio::test]
async fn when_parking_fails_the_message_is_reported_for_redelivery() {
    let world = World::default();
    *world.parking.fail_with.lock().unwrap() = Some("SQS down".into());
    let response = world
        .handle(&fifo(&[
            ("m-1", "w-1", "not json".to_string()),
            ("m-2", "w-1", serde_json::to_string(&request()).unwrap()),
        ]))
        .await;
    assert_eq!(failed_ids(&response), ["m-1", "m-2"]);
    assert!(world.outbox.rows.lock().unwrap().is_empty());
}

#[tokio::test]
async fn sample_sqs_notification_event_is_delivered() {
    let world = World::default();
    let text = include_str!("../../../events/samples/sqs-notification-requested.json");
    let event: SqsEvent = serde_json::from_str(text).unwrap();
    let response = world.handle(&event).await;
    assert!(response.batch_item_failures.is_empty());
    let sent = world.sender.sent.lock().unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, "+254700000001");
    // The sample predates notification kinds: it is an alert.
    let rows = world.outbox.rows.lock().unwrap();
    assert!(
        rows.values()
            .all(|r| r.entry.kind == NotificationKind::Alert)
    );
}

/// The cleared notification of the alert of [`request`], as route asks for it.
fn cleared() -> Envelope<NotificationRequested> {
    let mut c = request();
    c.event_id = "req-evt-2".into();
    c.data.notification_id = "n-1-cleared".into();
    c.data.kind = NotificationKind::Cleared;
    c.data.message =
        "Cleared: Amina's hypoxemia alert from 2026-11-24 08:00 UTC no longer holds.".into();
    c
}

#[tokio::test]
async fn an_alert_and_its_cleared_notification_are_both_sent_and_recorded_with_their_kind() {
    let world = World::default();
    for envelope in [request(), cleared(), request(), cleared()] {
        let response = world
            .handle(&sqs(serde_json::to_string(&envelope).unwrap()))
            .await;
        assert!(response.batch_item_failures.is_empty());
    }
    let sent = world.sender.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 2, "each once: {sent:?}");
    assert!(sent[1].1.starts_with("Cleared: Amina's"));

    let rows = world.outbox.rows.lock().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows["n-1"].entry.kind, NotificationKind::Alert);
    assert_eq!(rows["n-1-cleared"].entry.kind, NotificationKind::Cleared);
    assert!(rows.values().all(|r| r.status == "sent"));

    for (id, kind) in [("n-1", "alert"), ("n-1-cleared", "cleared")] {
        let stream = world.events.stream(&notification_stream(id));
        assert_eq!(stream.len(), 1);
        assert_eq!(stream[0].event_type, "NotificationSent");
        assert_eq!(stream[0].data["kind"], kind);
        assert_eq!(stream[0].data["alertId"], "a-1");
    }
}
