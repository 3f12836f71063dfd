//! Given/when/then tests of the detect handler with in-memory ports.

use application::idempotency::Idempotency;
use aws_lambda_events::event::kinesis::KinesisEvent;
use chrono::{DateTime, Duration, Utc};
use detect::{Deps, default_rules, handle, handle_batch};
use domain::envelope::{Envelope, Lineage};
use domain::events::alert_stream;
use domain::reading::{Reading, VitalType};
use serde_json::json;
use testkit::fixtures::{self, DirectoryEntryFixture};
use testkit::*;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-24T08:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// Processing time of the tests: an hour after the readings, so the allowed lateness has
/// passed and every reading is evaluated in the batch it arrives in.
fn after() -> DateTime<Utc> {
    t0() + Duration::hours(1)
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
    let records: Vec<_> = payloads
        .iter()
        .enumerate()
        .map(|(i, data)| {
            testkit::fixtures::kinesis_record(
                "shardId-000000000000",
                testkit::fixtures::READINGS_STREAM_ARN,
                "pk",
                &format!("{:020}", i + 1),
                data,
            )
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

fn payloads(envs: &[Envelope<Reading>]) -> Vec<Vec<u8>> {
    envs.iter()
        .map(|e| serde_json::to_vec(e).unwrap())
        .collect()
}

/// The in-memory adapters, owned by the test; [`World::deps`] lends them to the handler.
struct World {
    state: MemoryStateStore,
    events: MemoryEventStore,
    directory: MemoryDirectory,
    publisher: MemoryPublisher,
    dead_letters: MemoryDeadLetters,
    rules: domain::detection::RuleSet,
    idempotency: MemoryIdempotencyStore,
    vitals: testkit::MemoryVitals,
    village_stats: testkit::MemoryVillageStats,
}

impl World {
    /// Given: p-sick (Amina of Kisumu) is in the directory, looked after by w-1.
    fn new() -> Self {
        World {
            state: MemoryStateStore::default(),
            events: MemoryEventStore::default(),
            directory: MemoryDirectory::with([fixtures::directory_entry(
                "p-sick",
                "w-1",
                "+254700000001",
            )
            .named("Amina")
            .in_village("Kisumu")
            .worker_named("Joseph")]),
            publisher: MemoryPublisher::default(),
            dead_letters: MemoryDeadLetters::default(),
            rules: default_rules().expect("the embedded rules are valid"),
            idempotency: MemoryIdempotencyStore::default(),
            vitals: testkit::MemoryVitals::default(),
            village_stats: testkit::MemoryVillageStats::default(),
        }
    }

    /// The publish guard of an invocation, over the world's idempotency store (as `main`
    /// builds it).
    fn guard(&self) -> Idempotency<'_> {
        Idempotency::new(&self.idempotency, detect::publish_idempotency_config())
    }

    /// The handler's deps, borrowed from the world, with the invocation's `publish_guard`.
    fn deps<'a>(&'a self, publish_guard: &'a Idempotency<'a>) -> Deps<'a> {
        Deps {
            rules: &self.rules,
            state: &self.state,
            events: &self.events,
            directory: &self.directory,
            publisher: &self.publisher,
            dead_letters: &self.dead_letters,
            publish_guard,
            auto_dispatch_max_age: chrono::Duration::minutes(15),
            vitals: &self.vitals,
            village_stats: &self.village_stats,
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

    let response = handle(&world.deps(&world.guard()), &batch, after()).await;

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
    // One state save per patient per batch, and one more for the patient whose alert was
    // carried out (its outbox is cleared).
    assert_eq!(*world.state.saves.lock().unwrap(), 3);
    assert!(
        world.state.states.lock().unwrap()["p-sick"]
            .value
            .outbox
            .is_empty()
    );
}

#[tokio::test]
async fn the_same_batch_twice_stores_one_alert_and_publishes_once() {
    let world = World::new();
    let batch = kinesis_event(&payloads(&[envelope("p-sick", VitalType::Spo2, 85.0, 0)]));
    handle(&world.deps(&world.guard()), &batch, after()).await;
    handle(&world.deps(&world.guard()), &batch, after()).await;
    assert_eq!(world.events.all().len(), 1);
    assert_eq!(world.publisher.published.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_lost_state_save_re_raises_the_same_alert_id_without_a_second_copy() {
    let world = World::new();
    let batch = kinesis_event(&payloads(&[envelope("p-sick", VitalType::Spo2, 85.0, 0)]));
    handle(&world.deps(&world.guard()), &batch, after()).await;
    world.state.states.lock().unwrap().clear(); // as if the save had not happened
    handle(&world.deps(&world.guard()), &batch, after()).await;
    assert_eq!(world.events.all().len(), 1, "one alert in the store");
    // The first publish completed: the idempotency guard does not publish it again.
    let published = world.publisher.published.lock().unwrap();
    assert_eq!(published.len(), 1, "published once");
    let key = world
        .guard()
        .key_for::<()>(&serde_json::to_value(&published[0]).unwrap())
        .unwrap();
    drop(published);
    let record = world.idempotency.records.lock().unwrap()[&key].clone();
    assert_eq!(record.status, application::idempotency::Status::Completed);
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
    let response = handle(&world.deps(&world.guard()), &poison_batch(), after()).await;

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
    let response = handle(&world.deps(&world.guard()), &poison_batch(), after()).await;

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
    impl application::ports::PatientStateStore for Racing<'_> {
        async fn load(
            &self,
            id: &str,
        ) -> Result<
            application::ports::Versioned<domain::detection::PatientState>,
            application::ports::PortError,
        > {
            let loaded = self.0.load(id).await?;
            self.0.save(id, loaded.version, &Default::default()).await?;
            Ok(loaded)
        }
        async fn save(
            &self,
            id: &str,
            v: u64,
            s: &domain::detection::PatientState,
        ) -> Result<(), application::ports::PortError> {
            self.0.save(id, v, s).await
        }
        async fn due(
            &self,
            shard: u32,
            now_ms: i64,
            limit: usize,
        ) -> Result<Vec<String>, application::ports::PortError> {
            self.0.due(shard, now_ms, limit).await
        }
    }
    let racing = Racing(&world.state);
    let guard = world.guard();
    let deps = Deps {
        state: &racing,
        ..world.deps(&guard)
    };
    let batch = kinesis_event(&payloads(&[
        envelope("p-well", VitalType::HeartRate, 70.0, 0),
        envelope("p-sick", VitalType::HeartRate, 70.0, 0),
    ]));
    let response = handle(&deps, &batch, after()).await;
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
    let response = handle(&world.deps(&world.guard()), &event, after()).await;
    assert!(response.batch_item_failures.is_empty());
    let published = world.publisher.published.lock().unwrap();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].data.alert_type, "tachycardia");
    assert_eq!(published[0].correlation_id, "clinic-upload-0042");
}

fn envelope_at(patient: &str, vital: VitalType, value: f64, second: i64) -> Envelope<Reading> {
    let mut env = envelope(patient, vital, value, 0);
    env.data.timestamp = t0() + Duration::seconds(second);
    env.event_id = env.data.event_id();
    env
}

#[tokio::test]
async fn a_reading_beyond_the_allowed_lateness_is_evaluated_and_its_alert_marked_late() {
    let world = World::new();
    let now = t0() + Duration::seconds(600);
    let first = kinesis_event(&payloads(&[
        envelope_at("p-sick", VitalType::Spo2, 97.0, 0),
        envelope_at("p-sick", VitalType::Spo2, 97.0, 600),
    ]));
    handle(&world.deps(&world.guard()), &first, now).await;
    // One device in its own order: the frontier is at its newest reading, 600 s. A reading
    // taken at 500 s arrives now: late, and still evaluated (a threshold, on arrival).
    let late = envelope_at("p-sick", VitalType::Spo2, 80.0, 500);
    let second = kinesis_event(&payloads(std::slice::from_ref(&late)));
    let (response, summary) = handle_batch(&world.deps(&world.guard()), &second, now).await;

    assert!(response.batch_item_failures.is_empty());
    assert_eq!(summary.late, 1);
    assert_eq!(summary.alerts_raised, 1);
    let published = world.publisher.published.lock().unwrap();
    assert_eq!(published.len(), 1);
    let alert = &published[0].data;
    assert_eq!(alert.detected_at, t0() + Duration::seconds(500));
    assert_eq!(alert.late_by_seconds, Some(100.0));
    // 100 s old: still within the auto-dispatch cut-off (15 min).
    assert!(alert.auto_dispatch);
    assert_eq!(published[0].correlation_id, "corr-p-sick");
    // No per-reading event is written for a late reading any more.
    assert_eq!(
        world
            .events
            .stream(&domain::events::late_reading_stream(&late.event_id))
            .len(),
        0
    );
}

#[tokio::test]
async fn a_critical_alert_from_readings_older_than_the_cut_off_does_not_dispatch_by_itself() {
    let world = World::new();
    // A phone uploads a spot check taken 2 hours ago.
    let old = envelope_at("p-sick", VitalType::Spo2, 84.0, 0);
    let now = t0() + Duration::hours(2);
    handle(
        &world.deps(&world.guard()),
        &kinesis_event(&payloads(&[old])),
        now,
    )
    .await;
    {
        let published = world.publisher.published.lock().unwrap();
        assert_eq!(published.len(), 1);
        assert_eq!(published[0].data.late_by_seconds, Some(7200.0));
        assert!(!published[0].data.auto_dispatch);
        assert_eq!(published[0].data.dispatch(), "manual");
    }
    // 14 minutes old: just inside the cut-off, dispatches.
    let world = World::new();
    let recent = envelope_at("p-sick", VitalType::Spo2, 84.0, 0);
    let now = t0() + Duration::minutes(14);
    handle(
        &world.deps(&world.guard()),
        &kinesis_event(&payloads(&[recent])),
        now,
    )
    .await;
    assert!(
        world.publisher.published.lock().unwrap()[0]
            .data
            .auto_dispatch
    );
}

/// A publisher that fails its first `n` publishes (the process "dies" after the state
/// save and before the effect), then delegates.
struct FailingFirst<'a> {
    inner: &'a MemoryPublisher,
    left: std::sync::Mutex<usize>,
}

#[async_trait::async_trait]
impl application::ports::AlertPublisher for FailingFirst<'_> {
    async fn publish(
        &self,
        alert: &Envelope<domain::events::AlertRaised>,
    ) -> Result<(), application::ports::PortError> {
        {
            let mut left = self.left.lock().unwrap();
            if *left > 0 {
                *left -= 1;
                return Err(application::ports::PortError::Backend("SNS is down".into()));
            }
        }
        self.inner.publish(alert).await
    }
    async fn publish_resolved(
        &self,
        resolved: &Envelope<domain::events::AlertResolved>,
    ) -> Result<(), application::ports::PortError> {
        self.inner.publish_resolved(resolved).await
    }
}

#[tokio::test]
async fn an_alert_decided_but_not_published_is_sent_by_the_retry_from_the_saved_outbox() {
    let world = World::new();
    let failing = FailingFirst {
        inner: &world.publisher,
        left: std::sync::Mutex::new(1),
    };
    let guard = world.guard();
    let deps = Deps {
        publisher: &failing,
        ..world.deps(&guard)
    };
    let batch = kinesis_event(&payloads(&[envelope("p-sick", VitalType::Spo2, 85.0, 0)]));
    // Given the state (with the alert in its outbox) was saved, and the publish failed:
    let response = handle(&deps, &batch, after()).await;
    assert_eq!(response.batch_item_failures.len(), 1);
    let saved = world.state.states.lock().unwrap()["p-sick"].clone();
    assert_eq!(
        saved.value.outbox.len(),
        1,
        "the decision is saved before its effects"
    );
    assert_eq!(saved.value.due_at, Some(0), "and due for the sweep at once");
    assert!(world.publisher.published.lock().unwrap().is_empty());
    // When Lambda retries the batch, the reading is a duplicate, and the outbox is sent.
    let response = handle(&deps, &batch, after()).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(world.publisher.published.lock().unwrap().len(), 1);
    assert_eq!(world.events.all().len(), 1);
    let saved = world.state.states.lock().unwrap()["p-sick"].clone();
    assert!(saved.value.outbox.is_empty());
    // Nothing left for the engine: only the open hour of recent vitals is due.
    assert_eq!(
        saved.value.due_at,
        domain::vitals::flush_due(&saved.value.vitals)
    );
}

#[tokio::test]
async fn the_sweep_evaluates_a_silent_patients_waiting_readings_and_publishes_the_resolution() {
    let world = World::new();
    // Two devices: the BP cuff sent at 0 s, the wearable three fast beats after it.
    let mut cuff = envelope_at("p-sick", VitalType::SystolicBp, 120.0, 0);
    cuff.data.device_id = "cuff-1".into();
    cuff.event_id = cuff.data.event_id();
    cuff.timestamp = t0();
    let beats: Vec<_> = [5, 10, 15]
        .iter()
        .map(|s| {
            let mut e = envelope_at("p-sick", VitalType::HeartRate, 115.0, *s);
            e.timestamp = t0() + Duration::seconds(*s);
            e
        })
        .collect();
    let mut all = vec![cuff];
    all.extend(beats);
    handle(
        &world.deps(&world.guard()),
        &kinesis_event(&payloads(&all)),
        t0() + Duration::seconds(16),
    )
    .await;
    // The cuff may still send a reading of before 15 s: the run waits.
    assert!(world.publisher.published.lock().unwrap().is_empty());
    let due = world.state.states.lock().unwrap()["p-sick"].value.due_at;
    assert_eq!(due, Some((t0() + Duration::seconds(60)).timestamp_millis()));
    // Nobody sends anything more. The sweep, before it is due, does nothing.
    let early = detect::sweep(&world.deps(&world.guard()), t0() + Duration::seconds(30))
        .await
        .unwrap();
    assert_eq!(early.due, 0);
    // At the due time it evaluates the patient: the alert is raised and published.
    let swept = detect::sweep(&world.deps(&world.guard()), t0() + Duration::seconds(61))
        .await
        .unwrap();
    assert_eq!(swept.due, 1);
    assert_eq!(swept.batch.alerts_raised, 1);
    assert_eq!(world.publisher.published.lock().unwrap().len(), 1);
    let state = world.state.states.lock().unwrap()["p-sick"].value.clone();
    // Nothing left for the engine: only the open hour of recent vitals is due.
    assert_eq!(state.due_at, domain::vitals::flush_due(&state.vitals));
    // A normal beat later resolves it: AlertResolved is stored and published.
    let calm = envelope_at("p-sick", VitalType::HeartRate, 72.0, 120);
    handle(
        &world.deps(&world.guard()),
        &kinesis_event(&payloads(&[calm])),
        t0() + Duration::seconds(121),
    )
    .await;
    let resolved = world.publisher.resolved.lock().unwrap();
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0].data.rule_id, "hr-high-3");
    assert_eq!(resolved[0].event_type, "AlertResolved");
}

#[tokio::test]
async fn a_condition_that_clears_records_alert_resolved_for_the_same_alert() {
    let world = World::new();
    let batch = kinesis_event(&payloads(&[
        envelope("p-sick", VitalType::Spo2, 85.0, 0),
        envelope("p-sick", VitalType::Spo2, 84.0, 1),
        envelope("p-sick", VitalType::Spo2, 96.0, 2),
    ]));
    let (_, summary) = handle_batch(&world.deps(&world.guard()), &batch, after()).await;
    assert_eq!((summary.alerts_raised, summary.alerts_resolved), (1, 1));
    let alert_id = {
        let published = world.publisher.published.lock().unwrap();
        assert_eq!(published.len(), 1, "one alert for the continuing condition");
        published[0].data.alert_id.clone()
    };
    let resolved = world
        .events
        .stream(&domain::events::alert_resolution_stream(&alert_id));
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0].event_type, "AlertResolved");
    assert_eq!(resolved[0].data["alertId"], alert_id.as_str());
    let resolved_at: DateTime<Utc> = resolved[0].data["resolvedAt"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("resolvedAt is a timestamp");
    assert_eq!(resolved_at, t0() + Duration::minutes(2));
    // Redelivery adds nothing.
    let before = world.events.all().len();
    handle(&world.deps(&world.guard()), &batch, after()).await;
    assert_eq!(world.events.all().len(), before);
}

/// Counts the event-store write requests (appends) that reach the store.
struct CountingEvents<'a> {
    inner: &'a MemoryEventStore,
    appends: std::sync::Mutex<usize>,
}

#[async_trait::async_trait]
impl application::ports::EventStore for CountingEvents<'_> {
    async fn append(
        &self,
        stream_id: &str,
        expected_version: u64,
        event: &application::ports::StoredEvent,
    ) -> Result<application::ports::Appended, application::ports::PortError> {
        *self.appends.lock().unwrap() += 1;
        self.inner.append(stream_id, expected_version, event).await
    }
}

/// DynamoDB write requests (state saves + event appends) per 1,000 readings in steady
/// state, for batches of 100 records with `patients` patients per batch. Readings are
/// healthy (so no alerts), 5 vitals per patient every 30 s, 5 s of transport delay.
async fn writes_per_1000(patients_per_batch: usize) -> (usize, usize, usize) {
    let world = World::new();
    let events = CountingEvents {
        inner: &world.events,
        appends: std::sync::Mutex::new(0),
    };
    let guard = world.guard();
    let deps = Deps {
        events: &events,
        ..world.deps(&guard)
    };
    let per_patient = 100 / patients_per_batch;
    let rounds = per_patient / 5;
    let healthy = [
        (VitalType::HeartRate, 72.0),
        (VitalType::Spo2, 97.0),
        (VitalType::Temperature, 36.8),
        (VitalType::SystolicBp, 120.0),
        (VitalType::DiastolicBp, 80.0),
    ];
    let mut second = 0i64;
    let mut counted = (0, 0, 0);
    // Batch 0 warms the state up; batches 1..=10 are the 1,000 steady-state readings.
    for batch_no in 0..=10 {
        let mut envs = Vec::new();
        for p in 0..patients_per_batch {
            let patient = format!("p-{p}");
            for round in 0..rounds as i64 {
                for (vital, value) in healthy {
                    envs.push(envelope_at(&patient, vital, value, second + round * 30));
                }
            }
        }
        second += rounds as i64 * 30;
        let now = t0() + Duration::seconds(second + 5);
        let saves_before = *world.state.saves.lock().unwrap();
        let appends_before = *events.appends.lock().unwrap();
        let (response, summary) = handle_batch(&deps, &kinesis_event(&payloads(&envs)), now).await;
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(summary.records, 100);
        if batch_no > 0 {
            counted.0 += summary.evaluated;
            counted.1 += *world.state.saves.lock().unwrap() - saves_before;
            counted.2 += *events.appends.lock().unwrap() - appends_before;
        }
    }
    counted
}

#[tokio::test]
async fn dynamodb_writes_per_1000_readings_in_steady_state() {
    let mut report = Vec::new();
    for patients in [1, 2, 4, 10, 20] {
        let (evaluated, saves, appends) = writes_per_1000(patients).await;
        report.push(format!(
            "{patients} patients x {} readings per batch of 100: {} writes per 1000 readings ({saves} state saves, {appends} event appends; {evaluated} evaluated)",
            100 / patients,
            saves + appends
        ));
        // One conditional save per patient per batch, nothing else for healthy readings.
        assert_eq!(saves, patients * 10, "{}", report.join("\n"));
        assert_eq!(appends, 0);
        if patients <= 2 {
            assert!(saves + appends <= 30, "{}", report.join("\n"));
        }
    }
    println!("{}", report.join("\n"));
}

#[test]
fn the_embedded_rules_keep_the_starter_rules_and_a_bad_rules_file_is_refused_clearly() {
    let rules = default_rules().unwrap();
    let ids: Vec<_> = rules.rules().iter().map(|r| r.id.as_str()).collect();
    assert!(
        ids.contains(&"hr-high-3") && ids.contains(&"spo2-low"),
        "{ids:?}"
    );
    assert_eq!(rules.allowed_lateness(), Duration::seconds(60));

    let dir = std::env::temp_dir().join(format!("detect-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rules.yaml");
    std::fs::write(
        &path,
        "version: 1\nrules:\n  - {id: x, alertType: t, severity: info, condition: {kind: window, metric: temperature, window: sliding, seconds: 0, aggregate: avg, op: above, value: .nan}}\n",
    )
    .unwrap();
    let err = detect::load_rules(Some(&path)).unwrap_err().to_string();
    assert!(err.contains("rules.yaml"), "{err}");
    assert!(
        err.contains("window seconds must be between 1 and 86400 (got 0)"),
        "{err}"
    );
    assert!(
        err.contains("value must be a finite number (got NaN)"),
        "{err}"
    );
    let missing = detect::load_rules(Some(&dir.join("nope.yaml")))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("nope.yaml"), "{missing}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn metrics_count_alerts_by_rule_late_readings_duplicates_and_lag() {
    use lambda_kit::metrics::{self, capture};
    let world = World::new();
    let low = kinesis_event(&payloads(&[envelope("p-sick", VitalType::Spo2, 85.0, 10)]));
    let now = t0() + Duration::minutes(12);

    let (response, first) = capture("detect", handle(&world.deps(&world.guard()), &low, now)).await;
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
    let (_, second) = capture("detect", handle(&world.deps(&world.guard()), &older, now)).await;
    assert_eq!(second.total(metrics::LATE_READINGS), 1.0);
    let (_, third) = capture("detect", handle(&world.deps(&world.guard()), &low, now)).await;
    assert_eq!(third.total(metrics::DUPLICATES_SKIPPED), 1.0);
    assert_eq!(third.total(metrics::ALERTS_RAISED), 0.0);
}

#[test]
fn a_wearables_state_stays_small_over_a_day() {
    // docs/detection.md ("State size"): all five vitals every 5 s from one wearable.
    let rules = default_rules().unwrap();
    let mut state = domain::detection::PatientState::default();
    let mut largest = 0;
    for step in 0..(24 * 720) {
        let at = t0() + Duration::seconds(5 * step);
        let readings: Vec<Reading> = VitalType::ALL
            .iter()
            .map(|v| Reading {
                patient_id: "p-1".into(),
                vital: *v,
                value: if *v == VitalType::Temperature {
                    36.9
                } else {
                    80.0
                },
                unit: v.unit().into(),
                timestamp: at,
                device_id: "wearable-1".into(),
            })
            .collect();
        let ids: Vec<String> = readings.iter().map(Reading::event_id).collect();
        let inputs: Vec<domain::detection::Input<'_>> = readings
            .iter()
            .zip(&ids)
            .map(|(r, id)| domain::detection::Input {
                event_id: id,
                correlation_id: "c",
                reading: r,
                received_at: None,
            })
            .collect();
        rules.apply(&mut state, "p-1", &inputs, at);
        if step % 720 == 0 {
            largest = largest.max(serde_json::to_vec(&state).unwrap().len());
        }
    }
    assert!(largest < 24 * 1024, "state of {largest} bytes");
    eprintln!("largest state: {largest} bytes");
}
