//! Two `detect` invocations racing on the same patient's state, with the real DynamoDB
//! adapters (state table and event table) against the emulator: no update is lost.

use std::sync::atomic::{AtomicUsize, Ordering};

use application::ports::{PatientStateStore, PortError, Versioned};
use async_trait::async_trait;
use aws_adapters::{DynamoEventStore, DynamoStateStore};
use aws_lambda_events::event::kinesis::KinesisEvent;
use chrono::{DateTime, Duration, DurationRound, Utc};
use devstack::inspect;
use domain::detection::PatientState;
use domain::envelope::{Envelope, Lineage};
use domain::reading::{Reading, VitalType};
use e2e::*;
use serde_json::json;
use testkit::{MemoryDeadLetters, MemoryDirectory, MemoryPublisher};
use tokio::sync::Barrier;

/// The real state store, except that the first two loads wait for each other: both racing
/// invocations read the same version before either saves.
struct LoadsMeet {
    inner: DynamoStateStore,
    barrier: Barrier,
    loads: AtomicUsize,
}

#[async_trait]
impl PatientStateStore for LoadsMeet {
    async fn load(&self, patient_id: &str) -> Result<Versioned<PatientState>, PortError> {
        let loaded = self.inner.load(patient_id).await;
        if self.loads.fetch_add(1, Ordering::SeqCst) < 2 {
            self.barrier.wait().await;
        }
        loaded
    }

    async fn save(
        &self,
        patient_id: &str,
        expected: u64,
        state: &PatientState,
    ) -> Result<(), PortError> {
        self.inner.save(patient_id, expected, state).await
    }

    async fn due(&self, shard: u32, now_ms: i64, limit: usize) -> Result<Vec<String>, PortError> {
        self.inner.due(shard, now_ms, limit).await
    }
}

fn record(t: DateTime<Utc>, value: f64, seq: usize) -> serde_json::Value {
    let reading = Reading {
        patient_id: "p-race".into(),
        vital: VitalType::HeartRate,
        value,
        unit: "bpm".into(),
        timestamp: t,
        device_id: "dev-race".into(),
    };
    let lineage = Lineage {
        correlation_id: format!("corr-{seq}"),
        causation_id: "test".into(),
    };
    let env = Envelope::new(reading.event_id(), "ingest", lineage, t, reading);
    // (The envelope's time, when ingest received it, is the reading's own time here.)
    testkit::fixtures::kinesis_record(
        "shardId-000000000000",
        testkit::fixtures::READINGS_STREAM_ARN,
        "p-race",
        &format!("{seq:020}"),
        &serde_json::to_vec(&env).unwrap(),
    )
}

fn batch(records: Vec<serde_json::Value>) -> KinesisEvent {
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_detect_invocations_racing_on_one_patients_state_lose_no_update() {
    let stack = start_stack("detect_race").await;
    let table = |id: &str| stack.resource(id).unwrap().ref_value.clone();
    let state = LoadsMeet {
        inner: DynamoStateStore::new(stack.sdk_config(), table("PatientStateTable")),
        barrier: Barrier::new(2),
        loads: AtomicUsize::new(0),
    };
    let events = DynamoEventStore::new(stack.sdk_config(), table("EventsTable"));
    let (directory, publisher, dead_letters) = (
        MemoryDirectory::default(),
        MemoryPublisher::default(),
        MemoryDeadLetters::default(),
    );
    let rules = detect::default_rules().unwrap();
    let idempotency = testkit::MemoryIdempotencyStore::default();
    let publish_guard = application::idempotency::Idempotency::new(
        &idempotency,
        detect::publish_idempotency_config(),
    );
    let deps = detect::Deps {
        rules: &rules,
        state: &state,
        events: &events,
        directory: &directory,
        publisher: &publisher,
        dead_letters: &dead_letters,
        publish_guard: &publish_guard,
        auto_dispatch_max_age: chrono::Duration::minutes(15),
        vitals: &testkit::MemoryVitals::default(),
        village_stats: &testkit::MemoryVillageStats::default(),
    };

    // Three fast heartbeats, split over two invocations that race on version 0.
    let t = Utc::now().duration_trunc(Duration::seconds(1)).unwrap() - Duration::minutes(5);
    let a = batch(vec![
        record(t, 121.0, 1),
        record(t + Duration::seconds(20), 125.0, 2),
    ]);
    let b = batch(vec![record(t + Duration::seconds(40), 130.0, 3)]);
    let now = t + Duration::seconds(41);
    let ((ra, sa), (rb, sb)) = tokio::join!(
        detect::handle_batch(&deps, &a, now),
        detect::handle_batch(&deps, &b, now)
    );

    // Both read version 0; one save won, the other hit the version check and applied its
    // readings again on the fresh state (nothing was sent before the save: facts first).
    assert!(ra.batch_item_failures.is_empty() && rb.batch_item_failures.is_empty());
    assert!(
        sa.state_writes >= 1 && sb.state_writes >= 1,
        "{sa:?} {sb:?}"
    );

    // A normal reading later resolves the run: with none lost, three in a row over 100
    // raised one alert (with one lost, none).
    let c = batch(vec![record(t + Duration::seconds(60), 80.0, 4)]);
    let (rc, sc) = detect::handle_batch(&deps, &c, t + Duration::minutes(10)).await;
    assert!(rc.batch_item_failures.is_empty());
    assert_eq!(sa.alerts_raised + sb.alerts_raised + sc.alerts_raised, 1);
    assert_eq!(sc.alerts_resolved, 1);
    // (Which invocation saved first decides whether a's readings were evaluated in order or,
    // arriving after b's later one, backfilled: the alert is the same either way.)

    let stored = state.inner.load("p-race").await.unwrap();
    assert!(stored.version >= 3, "every invocation saved");
    assert_eq!(
        stored.value.recent.len(),
        4,
        "every reading is in the state"
    );
    assert!(stored.value.pending.is_empty() && stored.value.held.is_empty());
    let alerts = inspect::events_of_type(&stack, "AlertRaised")
        .await
        .unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["data"]["alertType"], "tachycardia");
    assert_eq!(alerts[0]["data"]["evidence"].as_array().unwrap().len(), 3);
    let resolved = inspect::events_of_type(&stack, "AlertResolved")
        .await
        .unwrap();
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0]["data"]["alertId"], alerts[0]["data"]["alertId"]);
    stack.shutdown().await.unwrap();
}
