//! Recent vitals in `detect` (docs/read-side.md): the open hour rides in the saved state,
//! each closed hour is one vitals item, redeliveries add nothing, a crash between the item
//! and the state rewrites the same item, and flushed readings are counted per village-day.

use application::idempotency::Idempotency;
use application::ports::{PatientStateStore, PortError, Versioned};
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use detect::{BatchSummary, Deps, default_rules, process_patient, sweep};
use domain::detection::{Input, PatientState};
use domain::reading::{Reading, VitalType};
use domain::vitals::{FLUSH_GRACE_MS, HOUR_MS};
use testkit::fixtures::DirectoryEntryFixture;
use testkit::{
    MemoryDeadLetters, MemoryDirectory, MemoryEventStore, MemoryIdempotencyStore, MemoryPublisher,
    MemoryStateStore, MemoryVillageStats, MemoryVitals, fixtures,
};

fn t0() -> DateTime<Utc> {
    "2026-11-24T08:00:00Z".parse().unwrap()
}

struct World {
    state: MemoryStateStore,
    events: MemoryEventStore,
    directory: MemoryDirectory,
    publisher: MemoryPublisher,
    dead_letters: MemoryDeadLetters,
    rules: domain::detection::RuleSet,
    idempotency: MemoryIdempotencyStore,
    vitals: MemoryVitals,
    stats: MemoryVillageStats,
}

impl World {
    fn new() -> World {
        World {
            state: MemoryStateStore::default(),
            events: MemoryEventStore::default(),
            directory: MemoryDirectory::with([fixtures::directory_entry(
                "p-1",
                "w-1",
                "+254700000001",
            )
            .in_village("Bondo")]),
            publisher: MemoryPublisher::default(),
            dead_letters: MemoryDeadLetters::default(),
            rules: default_rules().unwrap(),
            idempotency: MemoryIdempotencyStore::default(),
            vitals: MemoryVitals::default(),
            stats: MemoryVillageStats::default(),
        }
    }

    fn deps<'a>(
        &'a self,
        guard: &'a Idempotency<'a>,
        state: &'a dyn PatientStateStore,
    ) -> Deps<'a> {
        Deps {
            rules: &self.rules,
            state,
            events: &self.events,
            directory: &self.directory,
            publisher: &self.publisher,
            dead_letters: &self.dead_letters,
            publish_guard: guard,
            auto_dispatch_max_age: Duration::minutes(15),
            vitals: &self.vitals,
            village_stats: &self.stats,
        }
    }

    fn guard(&self) -> Idempotency<'_> {
        Idempotency::new(&self.idempotency, detect::publish_idempotency_config())
    }

    fn saved(&self) -> PatientState {
        self.state.states.lock().unwrap()["p-1"].value.clone()
    }
}

/// A healthy heart rate `minute` minutes after t0.
fn reading(minute: i64) -> Reading {
    Reading {
        patient_id: "p-1".into(),
        vital: VitalType::HeartRate,
        value: 70.0 + (minute % 7) as f64,
        unit: "bpm".into(),
        timestamp: t0() + Duration::minutes(minute),
        device_id: "watch-1".into(),
    }
}

/// Applies the readings as one batch (what `handle` does per patient) at `now`, and adds
/// the village counts as the end of a batch does.
async fn apply(
    world: &World,
    state: &dyn PatientStateStore,
    readings: &[Reading],
    now: DateTime<Utc>,
) -> Result<BatchSummary, PortError> {
    let ids: Vec<String> = readings.iter().map(Reading::event_id).collect();
    let inputs: Vec<Input<'_>> = readings
        .iter()
        .zip(&ids)
        .map(|(reading, id)| Input {
            event_id: id,
            correlation_id: "c",
            reading,
            received_at: Some(now),
        })
        .collect();
    let guard = world.guard();
    let deps = world.deps(&guard, state);
    let mut summary = BatchSummary::default();
    process_patient(&deps, "p-1", &inputs, now, &mut summary).await?;
    Ok(summary)
}

#[tokio::test]
async fn a_closed_hour_is_one_item_and_the_open_hour_rides_in_the_state() {
    let world = World::new();
    // One reading a minute, 08:00 to 09:00, in batches of 5.
    let readings: Vec<Reading> = (0..=60).map(reading).collect();
    let mut writes = 0;
    for chunk in readings.chunks(5) {
        let now = chunk[chunk.len() - 1].timestamp + Duration::seconds(2);
        writes += apply(&world, &world.state, chunk, now)
            .await
            .unwrap()
            .vitals_writes;
    }
    assert_eq!(writes, 1, "one write for the closed hour 08:00");
    let blocks = world.vitals.of("p-1");
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].start, t0().timestamp_millis());
    let samples = blocks[0].samples().unwrap();
    assert_eq!(samples.len(), 60);
    assert_eq!(
        samples[59].at,
        (t0() + Duration::minutes(59)).timestamp_millis()
    );
    assert_eq!(samples[3].value, 73.0);
    assert_eq!(samples[3].device.as_deref(), Some("watch-1"));
    // The open hour (09:00) is in the state, and due for the sweep after it ends.
    let state = world.saved();
    assert_eq!(state.vitals.len(), 1);
    assert_eq!(state.vitals[0].count, 1);
    let nine = t0().timestamp_millis() + HOUR_MS;
    assert_eq!(state.due_at, Some(nine + HOUR_MS + FLUSH_GRACE_MS));

    // Redelivered: duplicates are not buffered again, nothing is written.
    let again = apply(
        &world,
        &world.state,
        &readings[55..],
        t0() + Duration::minutes(61),
    )
    .await
    .unwrap();
    assert_eq!(again.duplicates, 6);
    assert_eq!(again.vitals_writes, 0);
    assert_eq!(world.saved().vitals[0].count, 1);
}

#[tokio::test]
async fn the_sweep_flushes_a_silent_patient_and_counts_the_readings_per_village_day() {
    let world = World::new();
    let readings: Vec<Reading> = (0..10).map(reading).collect();
    apply(
        &world,
        &world.state,
        &readings,
        t0() + Duration::minutes(10),
    )
    .await
    .unwrap();
    assert!(world.vitals.of("p-1").is_empty());
    let guard = world.guard();
    let deps = world.deps(&guard, &world.state);
    let due = t0() + Duration::milliseconds(HOUR_MS + FLUSH_GRACE_MS);
    let early = sweep(&deps, due - Duration::minutes(1)).await.unwrap();
    assert_eq!(early.batch.vitals_writes, 0);
    let swept = sweep(&deps, due).await.unwrap();
    assert_eq!(swept.batch.vitals_writes, 1);
    assert_eq!(world.vitals.of("p-1")[0].count, 10);
    assert!(world.saved().vitals.is_empty());
    let days = world.stats.days.lock().unwrap().clone();
    assert_eq!(
        days[&("Bondo".to_string(), "2026-11-24".to_string())]["readings"],
        10
    );
    assert_eq!(
        *world.stats.adds.lock().unwrap(),
        1,
        "one ADD per (village, day) per sweep"
    );
}

#[tokio::test]
async fn a_late_reading_of_a_flushed_hour_makes_a_second_item() {
    let world = World::new();
    let first: Vec<Reading> = [0, 30, 61].into_iter().map(reading).collect();
    apply(&world, &world.state, &first, t0() + Duration::minutes(62))
        .await
        .unwrap();
    assert_eq!(world.vitals.of("p-1").len(), 1);
    // A reading of 08:45 arrives after the 08:00 hour was flushed.
    apply(
        &world,
        &world.state,
        &[reading(45)],
        t0() + Duration::minutes(63),
    )
    .await
    .unwrap();
    let blocks = world.vitals.of("p-1");
    assert_eq!(blocks.len(), 2, "{blocks:?}");
    assert!(blocks.iter().all(|b| b.start == t0().timestamp_millis()));
    assert_eq!(blocks.iter().map(|b| b.count).sum::<u32>(), 3);
}

/// A state store whose next save fails (the function died after the vitals item was
/// written and before the state was saved).
struct DiesBeforeSave<'a> {
    inner: &'a MemoryStateStore,
    armed: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl PatientStateStore for DiesBeforeSave<'_> {
    async fn load(&self, patient_id: &str) -> Result<Versioned<PatientState>, PortError> {
        self.inner.load(patient_id).await
    }
    async fn save(
        &self,
        patient_id: &str,
        expected: u64,
        state: &PatientState,
    ) -> Result<(), PortError> {
        if self.armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return Err(PortError::Backend("died".into()));
        }
        self.inner.save(patient_id, expected, state).await
    }
    async fn due(&self, shard: u32, now_ms: i64, limit: usize) -> Result<Vec<String>, PortError> {
        self.inner.due(shard, now_ms, limit).await
    }
}

#[tokio::test]
async fn a_crash_between_the_item_and_the_state_rewrites_the_same_item() {
    let world = World::new();
    let first: Vec<Reading> = (0..5).map(reading).collect();
    apply(&world, &world.state, &first, t0() + Duration::minutes(5))
        .await
        .unwrap();
    let dying = DiesBeforeSave {
        inner: &world.state,
        armed: true.into(),
    };
    let next = [reading(59), reading(60)];
    let now = t0() + Duration::minutes(61);
    assert!(apply(&world, &dying, &next, now).await.is_err());
    assert_eq!(world.vitals.of("p-1").len(), 1, "the item was written");
    // The retry of the batch: same state, same readings, same item.
    apply(&world, &dying, &next, now).await.unwrap();
    assert_eq!(*world.vitals.puts.lock().unwrap(), 2);
    let blocks = world.vitals.of("p-1");
    assert_eq!(blocks.len(), 1, "rewritten, not duplicated");
    assert_eq!(blocks[0].count, 6);
    assert_eq!(world.saved().vitals[0].count, 1);
}
