//! Given/when/then tests of the route handler with in-memory ports.

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use chrono::{TimeZone, Utc};
use route::{Deps, handle};
use shared::envelope::{Envelope, Lineage};
use shared::events::{AlertRaised, Severity, alert_stream};
use shared::idempotency::Idempotency;
use shared::memory::*;
use shared::ports::{EventStore, StoredEvent};
use shared::routing::DirectoryEntry;

fn alert(patient: &str) -> Envelope<AlertRaised> {
    Envelope::new(
        format!("evt-{patient}"),
        "detect",
        Lineage {
            correlation_id: "corr-1".into(),
            causation_id: "reading-1".into(),
        },
        Utc::now(),
        AlertRaised {
            alert_id: format!("alert-{patient}"),
            patient_id: patient.into(),
            rule_id: "spo2-low".into(),
            alert_type: "hypoxemia".into(),
            severity: Severity::Critical,
            village: "Kisumu".into(),
            description: "spo2 below 90 %".into(),
            evidence: vec![],
            detected_at: Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap(),
            late_by_seconds: None,
            auto_dispatch: true,
        },
    )
}

fn sqs(bodies: &[String]) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let mut m = SqsMessage::default();
            m.message_id = Some(format!("m-{i}"));
            m.body = Some(b.clone());
            m
        })
        .collect();
    event
}

struct World {
    directory: MemoryDirectory,
    events: MemoryEventStore,
    queue: MemoryQueue,
    idempotency: Idempotency<'static>,
}

impl World {
    /// Given: p-1 is in the directory and its alert is stored (as detect leaves it).
    async fn new() -> Self {
        let world = World {
            directory: MemoryDirectory::with([DirectoryEntry {
                patient_id: "p-1".into(),
                patient_name: "Amina".into(),
                village: "Kisumu".into(),
                worker_id: "w-1".into(),
                worker_name: "Joseph".into(),
                worker_phone: "+254700000001".into(),
            }]),
            events: MemoryEventStore::default(),
            queue: MemoryQueue::default(),
            idempotency: Idempotency::new(
                Box::leak(Box::<MemoryIdempotencyStore>::default()),
                route::idempotency_config(),
            ),
        };
        for p in ["p-1", "p-unknown"] {
            let a = alert(p);
            world
                .events
                .append(
                    &alert_stream(&a.data.alert_id),
                    0,
                    &StoredEvent::from_envelope(&a).unwrap(),
                )
                .await
                .unwrap();
        }
        world
    }

    fn deps(&self) -> Deps<'_> {
        Deps {
            directory: &self.directory,
            events: &self.events,
            queue: &self.queue,
            idempotency: &self.idempotency,
        }
    }
}

#[tokio::test]
async fn an_alert_is_routed_to_the_patients_health_worker() {
    let world = World::new().await;
    let event = sqs(&[serde_json::to_string(&alert("p-1")).unwrap()]);
    let response = handle(&world.deps(), &event, Utc::now()).await.unwrap();
    assert!(response.batch_item_failures.is_empty());

    let stream = world.events.stream("alert-alert-p-1");
    assert_eq!(stream.len(), 2);
    assert_eq!(stream[1].event_type, "AlertRouted");
    assert_eq!(stream[1].correlation_id, "corr-1");
    assert_eq!(stream[1].causation_id, "evt-p-1");
    let sent = world.queue.sent.lock().unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].data.recipient_phone, "+254700000001");
    assert_eq!(sent[0].correlation_id, "corr-1");
}

#[tokio::test]
async fn a_redelivered_alert_is_routed_once() {
    let world = World::new().await;
    let body = serde_json::to_string(&alert("p-1")).unwrap();
    handle(&world.deps(), &sqs(std::slice::from_ref(&body)), Utc::now())
        .await
        .unwrap();
    handle(&world.deps(), &sqs(&[body]), Utc::now())
        .await
        .unwrap();
    assert_eq!(world.events.stream("alert-alert-p-1").len(), 2);
    // The idempotency guard returned the stored result: nothing was sent again.
    assert_eq!(world.queue.sent.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_failed_routing_is_retried_in_full() {
    let world = World::new().await;
    let body = serde_json::to_string(&alert("p-unknown")).unwrap();
    let first = handle(&world.deps(), &sqs(std::slice::from_ref(&body)), Utc::now())
        .await
        .unwrap();
    assert_eq!(first.batch_item_failures.len(), 1);
    // The directory learns the patient; the redelivery runs (the failure left no record).
    let mut entry = world.directory.entries.lock().unwrap()["p-1"].clone();
    entry.patient_id = "p-unknown".into();
    world
        .directory
        .entries
        .lock()
        .unwrap()
        .insert("p-unknown".into(), entry);
    let second = handle(&world.deps(), &sqs(&[body]), Utc::now())
        .await
        .unwrap();
    assert!(second.batch_item_failures.is_empty());
    assert_eq!(world.queue.sent.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn garbage_and_unknown_patients_fail_alone() {
    let world = World::new().await;
    let event = sqs(&[
        "{not json".to_string(),
        serde_json::to_string(&alert("p-unknown")).unwrap(),
        serde_json::to_string(&alert("p-1")).unwrap(),
    ]);
    let response = handle(&world.deps(), &event, Utc::now()).await.unwrap();
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["m-0", "m-1"]);
    assert_eq!(world.queue.sent.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn sample_sqs_alert_event_is_routed() {
    let world = World::new().await;
    world.directory.entries.lock().unwrap().insert(
        "p-001".into(),
        DirectoryEntry {
            patient_id: "p-001".into(),
            patient_name: "Amina".into(),
            village: "Kisumu".into(),
            worker_id: "w-01".into(),
            worker_name: "CHW Kisumu".into(),
            worker_phone: "+254700000001".into(),
        },
    );
    let text = include_str!("../../../events/samples/sqs-alert-raised.json");
    let event: SqsEvent = serde_json::from_str(text).unwrap();
    // Given detect stored the sample alert (AlertRouted is appended after it, at version 2).
    let sample: Envelope<AlertRaised> =
        shared::envelope::decode(event.records[0].body.as_deref().unwrap().as_bytes()).unwrap();
    world
        .events
        .append(
            &alert_stream(&sample.data.alert_id),
            0,
            &StoredEvent::from_envelope(&sample).unwrap(),
        )
        .await
        .unwrap();
    let response = handle(&world.deps(), &event, Utc::now()).await.unwrap();
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let sent = world.queue.sent.lock().unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].data.recipient_id, "w-01");
    assert_eq!(sent[0].correlation_id, "clinic-upload-0042");
}
