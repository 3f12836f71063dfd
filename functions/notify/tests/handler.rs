//! Given/when/then tests of the notify handler with in-memory ports.

use application::idempotency::Idempotency;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
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
    let mut m = SqsMessage::default();
    m.message_id = Some("m-1".into());
    m.body = Some(body);
    let mut event = SqsEvent::default();
    event.records = vec![m];
    event
}

/// The in-memory adapters, owned by the test; [`World::handle`] lends them to the handler.
#[derive(Default)]
struct World {
    outbox: MemoryOutbox,
    sender: MemorySender,
    events: MemoryEventStore,
    idempotency: MemoryIdempotencyStore,
}

impl World {
    /// When: the handler is invoked with `event`, its deps borrowed from the world and its
    /// idempotency guard built over the world's store for the invocation, as `main` does.
    async fn handle(&self, event: &SqsEvent) -> SqsBatchResponse {
        let guard = Idempotency::new(&self.idempotency, notify::idempotency_config());
        let deps = Deps {
            outbox: &self.outbox,
            sender: &self.sender,
            events: &self.events,
            idempotency: &guard,
        };
        handle(&deps, event, Utc::now()).await.unwrap()
    }
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
async fn a_wrong_event_type_is_reported_failed_and_nothing_is_sent() {
    let world = World::default();
    let mut json = serde_json::to_value(request()).unwrap();
    json["eventType"] = "AlertRaised".into();
    let response = world.handle(&sqs(json.to_string())).await;
    assert_eq!(response.batch_item_failures.len(), 1);
    assert!(world.sender.sent.lock().unwrap().is_empty());
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
