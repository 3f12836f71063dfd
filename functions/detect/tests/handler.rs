//! Given/when/then tests of the detect handler with in-memory ports.

use aws_lambda_events::event::kinesis::KinesisEvent;
use chrono::{DateTime, Duration, Utc};
use detect::{Deps, handle};
use serde_json::json;
use shared::detection::default_rules;
use shared::envelope::{Envelope, Lineage};
use shared::events::alert_stream;
use shared::memory::*;
use shared::reading::{Reading, VitalType};
use shared::routing::DirectoryEntry;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-24T08:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn envelope(patient: &str, vital: VitalType, value: f64, minute: i64) -> Envelope<Reading> {
    let reading = Reading {
        patient_id: patient.into(),
        vital,
        value,
        unit: vital.unit().into(),
        timestamp: t0() + Duration::minutes(minute),
        device_id: "dev-1".into(),
    };
    let lineage = Lineage {
        correlation_id: format!("corr-{patient}"),
        causation_id: "req".into(),
    };
    Envelope::new(reading.event_id(), "ingest", lineage, t0(), reading)
}

/// A Kinesis event as Lambda delivers it, built from raw data payloads.
fn kinesis_event(payloads: &[Vec<u8>]) -> KinesisEvent {
    use base64::Engine;
    let records: Vec<_> = payloads
        .iter()
        .enumerate()
        .map(|(i, data)| {
            json!({
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": "pk",
                    "sequenceNumber": format!("{:020}", i + 1),
                    "data": base64::engine::general_purpose::STANDARD.encode(data),
                    "approximateArrivalTimestamp": 1_764_000_000.0
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": format!("shardId-000000000000:{:020}", i + 1),
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::123456789012:role/test",
                "awsRegion": "us-east-1",
                "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/readings"
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

fn payloads(envs: &[Envelope<Reading>]) -> Vec<Vec<u8>> {
    envs.iter()
        .map(|e| serde_json::to_vec(e).unwrap())
        .collect()
}

struct World {
    state: MemoryStateStore,
    events: MemoryEventStore,
    directory: MemoryDirectory,
    publisher: MemoryPublisher,
    dead_letters: MemoryDeadLetters,
    rules: Vec<shared::detection::Rule>,
}

impl World {
    fn new() -> Self {
        World {
            state: MemoryStateStore::default(),
            events: MemoryEventStore::default(),
            directory: MemoryDirectory::with([DirectoryEntry {
                patient_id: "p-sick".into(),
                patient_name: "Amina".into(),
                village: "Kisumu".into(),
                worker_id: "w-1".into(),
                worker_name: "Joseph".into(),
                worker_phone: "+254700000001".into(),
            }]),
            publisher: MemoryPublisher::default(),
            dead_letters: MemoryDeadLetters::default(),
            rules: default_rules(),
        }
    }

    fn deps(&self) -> Deps<'_> {
        Deps {
            rules: &self.rules,
            state: &self.state,
            events: &self.events,
            directory: &self.directory,
            publisher: &self.publisher,
            dead_letters: &self.dead_letters,
        }
    }
}

#[tokio::test]
async fn three_fast_heartbeats_raise_one_alert_stored_and_published() {
    let world = World::new();
    let batch = kinesis_event(&payloads(&[
        envelope("p-sick", VitalType::HeartRate, 120.0, 0),
        envelope("p-well", VitalType::HeartRate, 70.0, 0),
        envelope("p-sick", VitalType::HeartRate, 125.0, 1),
        envelope("p-sick", VitalType::HeartRate, 130.0, 2),
    ]));

    let response = handle(&world.deps(), &batch, Utc::now()).await;

    assert!(response.batch_item_failures.is_empty());
    let published = world.publisher.published.lock().unwrap();
    assert_eq!(published.len(), 1);
    let alert = &published[0];
    assert_eq!(alert.data.patient_id, "p-sick");
    assert_eq!(alert.data.village, "Kisumu");
    assert_eq!(alert.correlation_id, "corr-p-sick");
    let stream = world.events.stream(&alert_stream(&alert.data.alert_id));
    assert_eq!(stream.len(), 1);
    assert_eq!(stream[0].event_type, "AlertRaised");
    // One state save per patient per batch.
    assert_eq!(*world.state.saves.lock().unwrap(), 2);
}

#[tokio::test]
async fn the_same_batch_twice_stores_one_alert_and_publishes_once() {
    let world = World::new();
    let batch = kinesis_event(&payloads(&[envelope("p-sick", VitalType::Spo2, 85.0, 0)]));
    handle(&world.deps(), &batch, Utc::now()).await;
    handle(&world.deps(), &batch, Utc::now()).await;
    assert_eq!(world.events.all().len(), 1);
    assert_eq!(world.publisher.published.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_lost_state_save_re_raises_the_same_alert_id_without_a_second_copy() {
    let world = World::new();
    let batch = kinesis_event(&payloads(&[envelope("p-sick", VitalType::Spo2, 85.0, 0)]));
    handle(&world.deps(), &batch, Utc::now()).await;
    world.state.states.lock().unwrap().clear(); // as if the save had not happened
    handle(&world.deps(), &batch, Utc::now()).await;
    assert_eq!(world.events.all().len(), 1, "one alert in the store");
    let published = world.publisher.published.lock().unwrap();
    assert_eq!(
        published.len(),
        2,
        "published again: the first publish may have been lost"
    );
    assert_eq!(published[0].data.alert_id, published[1].data.alert_id);
}

fn poison_batch() -> KinesisEvent {
    let mut data = payloads(&[envelope("p-sick", VitalType::Spo2, 85.0, 0)]);
    data.push(b"not json".to_vec());
    data.extend(payloads(&[envelope("p-other", VitalType::Spo2, 80.0, 0)]));
    kinesis_event(&data)
}

#[tokio::test]
async fn a_poison_record_is_dead_lettered_with_its_payload_and_the_rest_is_processed() {
    let world = World::new();
    let response = handle(&world.deps(), &poison_batch(), Utc::now()).await;

    assert!(response.batch_item_failures.is_empty());
    let letters = world.dead_letters.records.lock().unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(
        letters[0].sequence_number.as_deref(),
        Some("00000000000000000002")
    );
    assert_eq!(letters[0].data, "bm90IGpzb24="); // base64 of "not json"
    let mut patients: Vec<_> = world
        .publisher
        .published
        .lock()
        .unwrap()
        .iter()
        .map(|a| a.data.patient_id.clone())
        .collect();
    patients.sort();
    assert_eq!(patients, ["p-other", "p-sick"]);
}

#[tokio::test]
async fn without_a_dead_letter_queue_the_poison_record_is_reported_and_nothing_after_it_runs() {
    let world = World::new();
    *world.dead_letters.fail_with.lock().unwrap() = Some("queue unavailable".into());
    let response = handle(&world.deps(), &poison_batch(), Utc::now()).await;

    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone().unwrap())
        .collect();
    assert_eq!(failed, vec![format!("{:020}", 2)]);
    let published = world.publisher.published.lock().unwrap();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].data.patient_id, "p-sick");
}

#[tokio::test]
async fn a_state_conflict_reports_the_patients_first_record() {
    let world = World::new();
    // Someone else saved p-sick's state meanwhile: our save at version 0 conflicts.
    struct Racing<'a>(&'a MemoryStateStore);
    #[async_trait::async_trait]
    impl shared::ports::PatientStateStore for Racing<'_> {
        async fn load(
            &self,
            id: &str,
        ) -> Result<
            shared::ports::Versioned<shared::detection::PatientState>,
            shared::ports::PortError,
        > {
            let loaded = self.0.load(id).await?;
            self.0.save(id, loaded.version, &Default::default()).await?;
            Ok(loaded)
        }
        async fn save(
            &self,
            id: &str,
            v: u64,
            s: &shared::detection::PatientState,
        ) -> Result<(), shared::ports::PortError> {
            self.0.save(id, v, s).await
        }
    }
    let racing = Racing(&world.state);
    let deps = Deps {
        state: &racing,
        ..world.deps()
    };
    let batch = kinesis_event(&payloads(&[
        envelope("p-well", VitalType::HeartRate, 70.0, 0),
        envelope("p-sick", VitalType::HeartRate, 70.0, 0),
    ]));
    let response = handle(&deps, &batch, Utc::now()).await;
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone().unwrap())
        .collect();
    assert_eq!(failed, vec![format!("{:020}", 1)]);
}

#[tokio::test]
async fn sample_kinesis_event_raises_the_tachycardia_alert() {
    let world = World::new();
    let text = include_str!("../../../events/samples/kinesis-readings.json");
    let event: KinesisEvent = serde_json::from_str(text).unwrap();
    let response = handle(&world.deps(), &event, Utc::now()).await;
    assert!(response.batch_item_failures.is_empty());
    let published = world.publisher.published.lock().unwrap();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].data.alert_type, "tachycardia");
    assert_eq!(published[0].correlation_id, "clinic-upload-0042");
}

#[tokio::test]
async fn metrics_count_alerts_by_rule_late_readings_duplicates_and_lag() {
    use shared::metrics::{self, capture};
    let world = World::new();
    let low = kinesis_event(&payloads(&[envelope("p-sick", VitalType::Spo2, 85.0, 10)]));
    let now = t0() + Duration::minutes(12);

    let (response, first) = capture("detect", handle(&world.deps(), &low, now)).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(first.total(metrics::ALERTS_RAISED), 1.0);
    assert_eq!(first.total(metrics::BATCH_ITEM_FAILURES), 0.0);
    assert_eq!(first.values(metrics::END_TO_END_LAG_MS), vec![120_000.0]);
    let alert = world.publisher.published.lock().unwrap()[0].data.clone();
    let documents = first.documents(0);
    let alerts = documents
        .iter()
        .find(|d| d.get(metrics::ALERTS_RAISED).is_some())
        .expect("an AlertsRaised document");
    assert_eq!(alerts["Rule"], alert.rule_id.as_str());
    assert_eq!(alerts["Severity"], alert.severity.as_str());
    assert_eq!(alerts["Function"], "detect");

    // An older SpO2 reading after a newer one is late; the first batch again is a duplicate.
    let older = kinesis_event(&payloads(&[envelope("p-sick", VitalType::Spo2, 97.0, 5)]));
    let (_, second) = capture("detect", handle(&world.deps(), &older, now)).await;
    assert_eq!(second.total(metrics::LATE_READINGS), 1.0);
    let (_, third) = capture("detect", handle(&world.deps(), &low, now)).await;
    assert_eq!(third.total(metrics::DUPLICATES_SKIPPED), 1.0);
    assert_eq!(third.total(metrics::ALERTS_RAISED), 0.0);
}
