//! Given/when/then tests of the route handler with in-memory ports.

use application::idempotency::Idempotency;
use application::ports::{EventStore, StoredEvent};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{TimeZone, Utc};
use domain::ack::{AckCode, AckTarget};
use domain::envelope::{Envelope, Lineage};
use domain::events::{
    AlertRaised, AlertResolved, NotificationKind, Severity, alert_resolution_stream, alert_stream,
};
use domain::routing::{DirectoryEntry, notification_id};
use route::{Deps, handle};
use testkit::fixtures::{self, AlertRaisedFixture, DirectoryEntryFixture};
use testkit::*;

/// p's critical alert as detect publishes it (village Kisumu, like p's directory entry).
fn alert(patient: &str) -> Envelope<AlertRaised> {
    fixtures::alert_envelope(fixtures::alert_raised(patient).in_village("Kisumu"))
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

/// The in-memory adapters, owned by the test; [`World::handle`] lends them to the handler.
struct World {
    directory: MemoryDirectory,
    workers: MemoryWorkers,
    events: MemoryEventStore,
    queue: MemoryQueue,
    ack_codes: MemoryAckCodes,
    idempotency: MemoryIdempotencyStore,
}

/// Amina of Kisumu, looked after by Joseph (w-1).
fn amina(patient: &str, worker: &str) -> DirectoryEntry {
    fixtures::directory_entry(patient, worker, "+254700000001")
        .named("Amina")
        .in_village("Kisumu")
}

impl World {
    /// Given: p-1 is in the directory and its alert is stored (as detect leaves it).
    async fn new() -> Self {
        let world = World {
            directory: MemoryDirectory::with([amina("p-1", "w-1").worker_named("Joseph")]),
            workers: MemoryWorkers::default(),
            events: MemoryEventStore::default(),
            queue: MemoryQueue::default(),
            ack_codes: MemoryAckCodes::default(),
            idempotency: MemoryIdempotencyStore::default(),
        };
        for p in ["p-1", "p-unknown"] {
            let a = alert(p);
            world.store(&a).await;
        }
        world
    }

    /// Appends an alert as detect leaves it (the first event of its stream).
    async fn store(&self, a: &Envelope<AlertRaised>) {
        self.events
            .append(
                &alert_stream(&a.data.alert_id),
                0,
                &StoredEvent::from_envelope(a).unwrap(),
            )
            .await
            .unwrap();
    }

    /// When: the handler is invoked with `event`, its deps borrowed from the world and its
    /// idempotency guard built over the world's store for the invocation, as `main` does.
    async fn handle(&self, event: &SqsEvent) -> SqsBatchResponse {
        let guard = Idempotency::new(&self.idempotency, route::idempotency_config());
        let deps = Deps {
            directory: &self.directory,
            workers: &self.workers,
            events: &self.events,
            reader: &self.events,
            queue: &self.queue,
            ack_codes: &self.ack_codes,
            idempotency: &guard,
        };
        handle(&deps, event, Utc::now()).await.unwrap()
    }
}

#[tokio::test]
async fn an_alert_is_routed_to_the_patients_health_worker() {
    let world = World::new().await;
    let event = sqs(&[serde_json::to_string(&alert("p-1")).unwrap()]);
    let response = world.handle(&event).await;
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

/// p-1's worker w-1 as the workers table holds them.
fn world_worker() -> domain::escalation::Worker {
    domain::escalation::Worker {
        worker_id: "w-1".into(),
        name: "Joseph".into(),
        phone: "+254700000001".into(),
        village: "Kisumu".into(),
        available: true,
        reserved_by: None,
        language: "en".into(),
    }
}

#[tokio::test]
async fn the_sms_goes_to_the_workers_phone_in_the_workers_table_not_the_entrys_copy() {
    let world = World::new().await;
    // Given: w-1's phone was edited in the workers table (onboarding API) after p-1's entry
    // was written with a copy of the old one.
    let mut worker = world_worker();
    worker.phone = "+254700000999".into();
    world
        .workers
        .workers
        .lock()
        .unwrap()
        .insert("w-1".into(), worker);
    let response = world
        .handle(&sqs(&[serde_json::to_string(&alert("p-1")).unwrap()]))
        .await;
    assert!(response.batch_item_failures.is_empty());
    let sent = world.queue.sent.lock().unwrap();
    assert_eq!(sent[0].data.recipient_phone, "+254700000999");
}

/// i18n (issue 16): the alert and its cleared SMS are in the worker's language (the workers
/// table's `language`).
#[tokio::test]
async fn the_alert_and_cleared_sms_are_in_the_workers_language() {
    let world = World::new().await;
    // w-1 of the workers table, as the onboarding API writes them: with a language.
    let mut worker = world_worker();
    worker.language = "hi".into();
    world
        .workers
        .workers
        .lock()
        .unwrap()
        .insert("w-1".into(), worker);
    world.handle(&sqs(&[body_of(&alert("p-1"))])).await;
    let response = world.handle(&sqs(&[body_of(&resolved("p-1"))])).await;
    assert_eq!(failures(&response), 0, "{response:?}");
    let sent = world.queue.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 2);
    let code = world
        .ack_codes
        .code_of(&AckTarget::alert("alert-p-1"))
        .expect("a registered code");
    let alert_sms = &sent[0].data.message;
    assert!(
        alert_sms.starts_with("[गंभीर] Amina (Kisumu): "),
        "{alert_sms}"
    );
    assert!(
        alert_sms.ends_with(&format!("जवाब दें: ACK {code}")),
        "{alert_sms}"
    );
    let cleared = &sent[1].data.message;
    assert!(
        cleared.starts_with("ठीक हुआ: Amina (Kisumu) का ऑक्सीजन कम अलर्ट"),
        "{cleared}"
    );
    // The same notification ids as in English: the language changes only the text.
    assert_eq!(
        sent[0].data.notification_id,
        notification_id("alert-p-1", "w-1", NotificationKind::Alert)
    );
}

#[tokio::test]
async fn an_entry_without_a_phone_copy_whose_worker_is_not_in_the_workers_table_fails() {
    let world = World::new().await;
    let mut entry = amina("p-1", "w-404");
    entry.worker_phone.clear();
    world
        .directory
        .entries
        .lock()
        .unwrap()
        .insert("p-1".into(), entry);
    let response = world
        .handle(&sqs(&[serde_json::to_string(&alert("p-1")).unwrap()]))
        .await;
    assert_eq!(response.batch_item_failures.len(), 1);
    assert!(world.queue.sent.lock().unwrap().is_empty());
}

#[tokio::test]
async fn the_alert_sms_carries_the_code_registered_for_the_alert() {
    let world = World::new().await;
    let body = serde_json::to_string(&alert("p-1")).unwrap();
    world.handle(&sqs(std::slice::from_ref(&body))).await;
    let target = AckTarget::alert("alert-p-1");
    let code = world.ack_codes.code_of(&target).expect("a registered code");
    assert_eq!(code, AckCode::candidates(&target)[0]);
    let sent = world.queue.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert!(
        sent[0]
            .data
            .message
            .ends_with(&format!(". Reply ACK {code}")),
        "{}",
        sent[0].data.message
    );
    // A repeat registers nothing new.
    let mut again = alert("p-1");
    again.event_id = "evt-p-1-again".into();
    world
        .handle(&sqs(&[serde_json::to_string(&again).unwrap()]))
        .await;
    assert_eq!(world.ack_codes.codes.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn an_alert_whose_short_code_is_taken_gets_its_long_code() {
    let world = World::new().await;
    let target = AckTarget::alert("alert-p-1");
    let [short, long] = <[AckCode; 2]>::try_from(AckCode::candidates(&target)).unwrap();
    // Another alert holds the 6-character code already: it keeps it.
    world
        .ack_codes
        .codes
        .lock()
        .unwrap()
        .insert(short.clone(), AckTarget::alert("alert-other"));
    world
        .handle(&sqs(&[serde_json::to_string(&alert("p-1")).unwrap()]))
        .await;
    let codes = world.ack_codes.codes.lock().unwrap().clone();
    assert_eq!(codes[&short], AckTarget::alert("alert-other"));
    assert_eq!(codes[&long], target);
    let sent = world.queue.sent.lock().unwrap().clone();
    assert!(
        sent[0].data.message.ends_with(&format!("Reply ACK {long}")),
        "{}",
        sent[0].data.message
    );
}

#[tokio::test]
async fn a_redelivered_alert_is_routed_once() {
    let world = World::new().await;
    let body = serde_json::to_string(&alert("p-1")).unwrap();
    world.handle(&sqs(std::slice::from_ref(&body))).await;
    world.handle(&sqs(&[body])).await;
    assert_eq!(world.events.stream("alert-alert-p-1").len(), 2);
    // The idempotency guard returned the stored result: nothing was sent again.
    assert_eq!(world.queue.sent.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_failed_routing_is_retried_in_full() {
    let world = World::new().await;
    let body = serde_json::to_string(&alert("p-unknown")).unwrap();
    let first = world.handle(&sqs(std::slice::from_ref(&body))).await;
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
    let second = world.handle(&sqs(&[body])).await;
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
    let response = world.handle(&event).await;
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
        amina("p-001", "w-01").worker_named("CHW Kisumu"),
    );
    let text = include_str!("../../../events/samples/sqs-alert-raised.json");
    let event: SqsEvent = serde_json::from_str(text).unwrap();
    // Given detect stored the sample alert (AlertRouted is appended after it, at version 2).
    let sample: Envelope<AlertRaised> =
        domain::envelope::decode(event.records[0].body.as_deref().unwrap().as_bytes()).unwrap();
    world.store(&sample).await;
    let response = world.handle(&event).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let sent = world.queue.sent.lock().unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].data.recipient_id, "w-01");
    assert_eq!(sent[0].correlation_id, "clinic-upload-0042");
}

/// detect found that p's alert no longer holds.
fn resolved(patient: &str) -> Envelope<AlertResolved> {
    Envelope::new(
        format!("resolved-evt-{patient}"),
        "detect",
        Lineage {
            correlation_id: "corr-2".into(),
            causation_id: "reading-9".into(),
        },
        Utc::now(),
        AlertResolved {
            alert_id: format!("alert-{patient}"),
            patient_id: patient.into(),
            rule_id: "spo2-low".into(),
            alert_type: "hypoxemia".into(),
            severity: Severity::Critical,
            episode_start: Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap(),
            resolved_at: Utc.with_ymd_and_hms(2026, 11, 24, 8, 20, 0).unwrap(),
            reading_event_id: "reading-9".into(),
        },
    )
}

fn body_of<T: serde::Serialize>(envelope: &T) -> String {
    serde_json::to_string(envelope).unwrap()
}

fn failures(response: &SqsBatchResponse) -> usize {
    response.batch_item_failures.len()
}

#[tokio::test]
async fn a_resolution_sends_a_cleared_notification_with_its_own_id() {
    let world = World::new().await;
    world.handle(&sqs(&[body_of(&alert("p-1"))])).await;
    let response = world.handle(&sqs(&[body_of(&resolved("p-1"))])).await;
    assert_eq!(failures(&response), 0, "{response:?}");

    let sent = world.queue.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 2);
    let (raised, cleared) = (&sent[0].data, &sent[1].data);
    assert_eq!(raised.kind, NotificationKind::Alert);
    assert_eq!(cleared.kind, NotificationKind::Cleared);
    assert_ne!(cleared.notification_id, raised.notification_id);
    assert_eq!(
        cleared.notification_id,
        notification_id("alert-p-1", "w-1", NotificationKind::Cleared)
    );
    assert_eq!(cleared.recipient_phone, "+254700000001");
    assert_eq!(cleared.alert_id, "alert-p-1");
    assert_eq!(
        cleared.message,
        "Cleared: Amina's hypoxemia alert from 2026-11-24 08:00 UTC no longer holds (Kisumu). Alert alert-p-."
    );
    assert_eq!(sent[1].correlation_id, "corr-2");
    assert_eq!(sent[1].causation_id, "resolved-evt-p-1");
    // The alert's stream is untouched by the resolution (raised, routed).
    assert_eq!(world.events.stream(&alert_stream("alert-p-1")).len(), 2);
    assert!(
        world
            .events
            .stream(&alert_resolution_stream("alert-p-1"))
            .is_empty(),
        "route writes nothing to the resolution's stream"
    );
}

#[tokio::test]
async fn a_redelivered_resolution_sends_one_cleared_notification() {
    let world = World::new().await;
    world.handle(&sqs(&[body_of(&alert("p-1"))])).await;
    let body = body_of(&resolved("p-1"));
    for _ in 0..3 {
        let response = world.handle(&sqs(std::slice::from_ref(&body))).await;
        assert_eq!(failures(&response), 0);
    }
    // Twice in one batch as well (SQS may hand over a duplicate with the original).
    world.handle(&sqs(&[body.clone(), body])).await;
    let sent = world.queue.sent.lock().unwrap();
    let cleared = sent
        .iter()
        .filter(|n| n.data.kind == NotificationKind::Cleared)
        .count();
    assert_eq!(cleared, 1);
    assert_eq!(sent.len(), 2);
}

#[tokio::test]
async fn a_resolution_waits_until_its_alert_was_routed() {
    let world = World::new().await;
    let body = body_of(&resolved("p-1"));
    // The resolution overtook its alert: it fails (redelivered later) and sends nothing.
    let early = world.handle(&sqs(std::slice::from_ref(&body))).await;
    assert_eq!(failures(&early), 1);
    assert!(world.queue.sent.lock().unwrap().is_empty());

    world.handle(&sqs(&[body_of(&alert("p-1"))])).await;
    let redelivered = world.handle(&sqs(&[body])).await;
    assert_eq!(failures(&redelivered), 0);
    let kinds: Vec<NotificationKind> = world
        .queue
        .sent
        .lock()
        .unwrap()
        .iter()
        .map(|n| n.data.kind)
        .collect();
    assert_eq!(kinds, [NotificationKind::Alert, NotificationKind::Cleared]);
}

#[tokio::test]
async fn a_resolution_for_a_patient_not_in_the_directory_is_dropped() {
    let world = World::new().await;
    let body = body_of(&resolved("p-unknown"));
    for _ in 0..2 {
        let response = world.handle(&sqs(std::slice::from_ref(&body))).await;
        // Acknowledged, not retried: it can never succeed (its alert was not routed either).
        assert_eq!(failures(&response), 0);
    }
    assert!(world.queue.sent.lock().unwrap().is_empty());
}

#[tokio::test]
async fn info_alerts_and_their_resolutions_are_acknowledged_and_send_nothing() {
    let world = World::new().await;
    let mut info = alert("p-1");
    info.data.alert_id = "alert-info".into();
    info.event_id = "evt-info".into();
    info.data.severity = Severity::Info;
    world.store(&info).await;
    let mut info_resolved = resolved("p-1");
    info_resolved.data.alert_id = "alert-info".into();
    info_resolved.event_id = "resolved-evt-info".into();
    info_resolved.data.severity = Severity::Info;

    let response = world
        .handle(&sqs(&[body_of(&info), body_of(&info_resolved)]))
        .await;
    assert_eq!(failures(&response), 0, "{response:?}");
    assert!(world.queue.sent.lock().unwrap().is_empty());
    let stream: Vec<String> = world
        .events
        .stream(&alert_stream("alert-info"))
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(stream, ["AlertRaised"], "an info alert is not routed");
}

#[tokio::test]
async fn other_event_types_fail() {
    let world = World::new().await;
    let mut json = serde_json::to_value(resolved("p-1")).unwrap();
    json["eventType"] = "AlertAcknowledged".into();
    let response = world.handle(&sqs(&[json.to_string()])).await;
    assert_eq!(failures(&response), 1);
}

#[tokio::test]
async fn sample_sqs_alert_resolved_event_sends_the_cleared_notification() {
    let world = World::new().await;
    world.directory.entries.lock().unwrap().insert(
        "p-001".into(),
        amina("p-001", "w-01").worker_named("CHW Kisumu"),
    );
    // Given the sample alert was stored by detect and routed.
    let raised: SqsEvent = serde_json::from_str(include_str!(
        "../../../events/samples/sqs-alert-raised.json"
    ))
    .unwrap();
    let sample: Envelope<AlertRaised> =
        domain::envelope::decode(raised.records[0].body.as_deref().unwrap().as_bytes()).unwrap();
    world.store(&sample).await;
    world.handle(&raised).await;

    let text = include_str!("../../../events/samples/sqs-alert-resolved.json");
    let event: SqsEvent = serde_json::from_str(text).unwrap();
    let response = world.handle(&event).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let sent = world.queue.sent.lock().unwrap();
    assert_eq!(sent.len(), 2);
    let cleared = &sent[1];
    assert_eq!(cleared.data.kind, NotificationKind::Cleared);
    assert_eq!(cleared.data.recipient_id, "w-01");
    assert_eq!(cleared.data.alert_id, sample.data.alert_id);
    assert_eq!(cleared.correlation_id, "clinic-upload-0042");
    assert_eq!(
        cleared.data.message,
        "Cleared: Amina's tachycardia alert from 2026-11-24 07:58 UTC no longer holds (Kisumu). Alert a3f1e2d4."
    );
}
