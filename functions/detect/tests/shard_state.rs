//! Detection state per stream shard (issue 15): write counts per 1,000 readings, restore
//! after a cold start or a crash (snapshot + replay), a stale process, and the sweep over
//! shards. In-memory ports; the stream is `testkit::MemoryStream`.

use application::idempotency::Idempotency;
use aws_lambda_events::event::kinesis::KinesisEvent;
use chrono::{DateTime, Duration, Utc};
use detect::shard::{ShardCache, Shards};
use detect::stream::{handle_stream, sweep_shards};
use detect::{Deps, default_rules};
use domain::envelope::{Envelope, Lineage};
use domain::reading::{Reading, VitalType};
use serde_json::json;
use testkit::*;

const SHARD: &str = "shardId-000000000000";
const ARN: &str = "arn:aws:kinesis:us-east-1:123456789012:stream/readings";

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-24T08:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn reading(patient: &str, vital: VitalType, value: f64, at: DateTime<Utc>) -> Vec<u8> {
    reading_from("wearable-1", patient, vital, value, at)
}

fn reading_from(
    device: &str,
    patient: &str,
    vital: VitalType,
    value: f64,
    at: DateTime<Utc>,
) -> Vec<u8> {
    testkit::fixtures::ingested_reading(device, patient, vital, value, at)
}

struct World {
    events: MemoryEventStore,
    directory: MemoryDirectory,
    publisher: MemoryPublisher,
    dead_letters: MemoryDeadLetters,
    rules: domain::detection::RuleSet,
    idempotency: MemoryIdempotencyStore,
    vitals: MemoryVitals,
    village_stats: MemoryVillageStats,
    unused: MemoryStateStore,
    store: MemoryShardStore,
    stream: MemoryStream,
}

impl World {
    fn new() -> Self {
        World {
            events: MemoryEventStore::default(),
            directory: MemoryDirectory::default(),
            publisher: MemoryPublisher::default(),
            dead_letters: MemoryDeadLetters::default(),
            rules: default_rules().unwrap(),
            idempotency: MemoryIdempotencyStore::default(),
            vitals: MemoryVitals::default(),
            village_stats: MemoryVillageStats::default(),
            unused: MemoryStateStore::default(),
            store: MemoryShardStore::default(),
            stream: MemoryStream::default(),
        }
    }

    fn guard(&self) -> Idempotency<'_> {
        Idempotency::new(&self.idempotency, detect::publish_idempotency_config())
    }

    fn deps<'a>(&'a self, publish_guard: &'a Idempotency<'a>) -> Deps<'a> {
        Deps {
            rules: &self.rules,
            state: &self.unused,
            events: &self.events,
            directory: &self.directory,
            publisher: &self.publisher,
            dead_letters: &self.dead_letters,
            publish_guard,
            auto_dispatch_max_age: Duration::minutes(15),
            vitals: &self.vitals,
            village_stats: &self.village_stats,
        }
    }

    /// One process of `detect` (its own cache of sessions).
    fn shards<'a>(&'a self, cache: &'a ShardCache) -> Shards<'a> {
        Shards {
            store: &self.store,
            replay: &self.stream,
            cache,
            buckets: 4,
            flush_interval: Duration::seconds(60),
        }
    }

    /// Puts readings on the stream and returns them as the Kinesis event Lambda delivers.
    fn put(&self, payloads: Vec<(String, Vec<u8>)>) -> KinesisEvent {
        let records: Vec<_> = payloads
            .into_iter()
            .map(|(pk, data)| {
                let r = self.stream.put(SHARD, &pk, data);
                testkit::fixtures::kinesis_record(SHARD, ARN, &pk, &r.sequence_number, &r.data)
            })
            .collect();
        serde_json::from_value(json!({ "Records": records })).unwrap()
    }

    /// Readings of `patient` kept: in the vitals table's blocks and in the open hours.
    fn readings_kept(&self, patient: &str) -> u32 {
        let flushed: u32 = self.vitals.of(patient).iter().map(|b| b.count).sum();
        let open: u32 = self
            .store
            .patient(patient)
            .map(|s| s.vitals.iter().map(|h| h.count).sum())
            .unwrap_or(0);
        flushed + open
    }
}

/// `n` patients, each one reading a minute (heart rate 70: nothing to alert on), for
/// `minutes` minutes, delivered as a shard carries them: batches of at most 100 records,
/// the clock advancing with the readings.
fn fleet(world: &World, n: usize, minutes: i64) -> Vec<(DateTime<Utc>, KinesisEvent)> {
    let mut batches = Vec::new();
    for minute in 0..minutes {
        let at = t0() + Duration::minutes(minute);
        let readings: Vec<(String, Vec<u8>)> = (0..n)
            .map(|i| {
                let p = format!("p-{i}");
                let data = reading(&p, VitalType::HeartRate, 70.0, at);
                (p, data)
            })
            .collect();
        let per_batch = readings.len().div_ceil(100).max(1);
        let chunks: Vec<Vec<(String, Vec<u8>)>> = readings.chunks(100).map(<[_]>::to_vec).collect();
        for (k, chunk) in chunks.into_iter().enumerate() {
            let now = at + Duration::seconds(1 + (60 * k as i64) / per_batch as i64);
            batches.push((now, world.put(chunk)));
        }
    }
    batches
}

#[tokio::test]
async fn state_writes_grow_with_shards_and_time_not_readings() {
    let world = World::new();
    let cache = ShardCache::default();
    let batches = fleet(&world, 500, 6);
    for (now, batch) in &batches {
        let (response, _) = handle_stream(
            &world.deps(&world.guard()),
            &world.shards(&cache),
            batch,
            *now,
        )
        .await;
        assert!(response.batch_item_failures.is_empty());
    }
    let readings = 500 * 6;
    let writes = world.store.writes();
    let per_1000 = writes as f64 * 1000.0 / readings as f64;
    println!("shard snapshot writes: {writes} for {readings} readings ({per_1000:.1} per 1,000)");
    // 6 minutes: at most one flush a minute, of 4 buckets and the header.
    assert!(writes <= 6 * 5, "{writes} writes");
    assert!(per_1000 <= 10.0);
    // One restore (the first batch): one header read, one replay.
    assert_eq!(*world.store.loads.lock().unwrap(), 1);
    // The shard falls silent: the header's promised visit is due, and the sweep writes
    // what the last minute changed (restored from the snapshot and the stream).
    let last = batches.last().unwrap().0;
    let swept = sweep_shards(
        &world.deps(&world.guard()),
        &world.shards(&cache),
        last + Duration::minutes(2),
    )
    .await
    .unwrap();
    assert_eq!((swept.due, swept.failed), (1, 0));
    for i in [0, 250, 499] {
        assert_eq!(world.readings_kept(&format!("p-{i}")), 6, "p-{i}");
    }
}

/// Fast heartbeats for `patient` at minutes `from..from+3`: `hr-high-3` fires once.
fn fast_heartbeats(world: &World, patient: &str, from: i64) -> Vec<(DateTime<Utc>, KinesisEvent)> {
    (from..from + 3)
        .map(|m| {
            let at = t0() + Duration::minutes(m);
            let batch = world.put(vec![
                (
                    patient.into(),
                    reading(patient, VitalType::HeartRate, 130.0, at),
                ),
                (
                    "p-calm".into(),
                    reading("p-calm", VitalType::HeartRate, 70.0, at),
                ),
            ]);
            (at + Duration::seconds(1), batch)
        })
        .collect()
}

#[tokio::test]
async fn a_cold_start_restores_the_snapshot_and_replays_the_rest_of_the_shard() {
    let world = World::new();
    let batches = fleet(&world, 30, 5);
    let (first, rest) = batches.split_at(3);
    // Process A handles three minutes, then dies without writing its last changes.
    let a = ShardCache::default();
    for (now, batch) in first {
        handle_stream(&world.deps(&world.guard()), &world.shards(&a), batch, *now).await;
    }
    // Process B gets the shard from the next batch on: snapshot + replay of the gap.
    let b = ShardCache::default();
    for (now, batch) in rest {
        let (response, _) =
            handle_stream(&world.deps(&world.guard()), &world.shards(&b), batch, *now).await;
        assert!(response.batch_item_failures.is_empty());
    }
    // B writes what it holds (the next interval).
    let (now, last) = fleet(&world, 30, 1).pop().unwrap();
    handle_stream(
        &world.deps(&world.guard()),
        &world.shards(&b),
        &last,
        now + Duration::minutes(10),
    )
    .await;
    for i in 0..30 {
        // Every reading once: 5 minutes + the last batch's (same minute 0 ids: duplicates).
        assert_eq!(world.readings_kept(&format!("p-{i}")), 5, "p-{i}");
    }
}

#[tokio::test]
async fn alerts_are_raised_once_across_a_crash_and_a_stale_process() {
    let world = World::new();
    let a = ShardCache::default();
    let b = ShardCache::default();
    let beats = fast_heartbeats(&world, "p-sick", 0);
    // A sees the first two fast beats; B (a new process) gets the third.
    for (now, batch) in &beats[..2] {
        handle_stream(&world.deps(&world.guard()), &world.shards(&a), batch, *now).await;
    }
    let (now, third) = &beats[2];
    let (response, summary) =
        handle_stream(&world.deps(&world.guard()), &world.shards(&b), third, *now).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        summary.alerts_raised, 1,
        "B replays A's beats and completes the run"
    );
    // Lambda redelivers the third batch to A (stale: it never saw B's writes).
    let (response, _) = handle_stream(
        &world.deps(&world.guard()),
        &world.shards(&a),
        third,
        *now + Duration::seconds(90),
    )
    .await;
    // A's write met B's newer snapshot: A restores on the retry, and nothing is raised twice.
    let (retry, _) = handle_stream(
        &world.deps(&world.guard()),
        &world.shards(&a),
        third,
        *now + Duration::seconds(91),
    )
    .await;
    assert!(
        retry.batch_item_failures.is_empty(),
        "{response:?} then {retry:?}"
    );
    assert_eq!(world.events.all().len(), 1);
    assert_eq!(world.publisher.published.lock().unwrap().len(), 1);
    let state = world.store.patient("p-sick").unwrap();
    assert!(state.outbox.is_empty() || world.publisher.published.lock().unwrap().len() == 1);
}

#[tokio::test]
async fn an_alert_is_in_the_snapshot_before_it_is_published() {
    let world = World::new();
    let cache = ShardCache::default();
    for (now, batch) in fast_heartbeats(&world, "p-sick", 0) {
        handle_stream(
            &world.deps(&world.guard()),
            &world.shards(&cache),
            &batch,
            now,
        )
        .await;
    }
    assert_eq!(world.publisher.published.lock().unwrap().len(), 1);
    let stored = world
        .store
        .patient("p-sick")
        .expect("p-sick's state is in a bucket");
    assert_eq!(
        stored.raised.len(),
        1,
        "the decision was written before it was carried out"
    );
}

#[tokio::test]
async fn the_sweep_finds_a_silent_shard_and_evaluates_its_due_patients() {
    let world = World::new();
    let cache = ShardCache::default();
    // Two devices on one patient: fast beats from one wait for the other (allowed lateness).
    let cuff_at = t0();
    let mut payloads = vec![("p-sick".to_string(), {
        let r = Reading {
            patient_id: "p-sick".into(),
            vital: VitalType::SystolicBp,
            value: 120.0,
            unit: VitalType::SystolicBp.unit().into(),
            timestamp: cuff_at,
            device_id: "cuff-1".into(),
        };
        let l = Lineage {
            correlation_id: "c".into(),
            causation_id: "r".into(),
        };
        serde_json::to_vec(&Envelope::new(r.event_id(), "ingest", l, cuff_at, r)).unwrap()
    })];
    for s in [5, 10, 15] {
        let at = t0() + Duration::seconds(s);
        payloads.push((
            "p-sick".into(),
            reading("p-sick", VitalType::HeartRate, 130.0, at),
        ));
    }
    let batch = world.put(payloads);
    handle_stream(
        &world.deps(&world.guard()),
        &world.shards(&cache),
        &batch,
        t0() + Duration::seconds(16),
    )
    .await;
    assert!(world.publisher.published.lock().unwrap().is_empty());
    // The shard falls silent. Before anything is due the sweep visits nothing.
    let early = sweep_shards(
        &world.deps(&world.guard()),
        &world.shards(&cache),
        t0() + Duration::seconds(30),
    )
    .await
    .unwrap();
    assert_eq!(early.due, 0);
    let swept = sweep_shards(
        &world.deps(&world.guard()),
        &world.shards(&cache),
        t0() + Duration::seconds(80),
    )
    .await
    .unwrap();
    assert_eq!(swept.due, 1);
    assert_eq!(swept.batch.alerts_raised, 1);
    assert_eq!(world.publisher.published.lock().unwrap().len(), 1);
    // Once swept, the shard is not due again before its patients are.
    let again = sweep_shards(
        &world.deps(&world.guard()),
        &world.shards(&cache),
        t0() + Duration::seconds(81),
    )
    .await
    .unwrap();
    assert_eq!(again.due, 0);
}

#[tokio::test]
async fn each_closed_hour_is_written_once_when_the_sweep_takes_over_a_silent_shard() {
    let world = World::new();
    let cache = ShardCache::default();
    // 20 patients x 70 readings one a minute (each crosses an hour), posted in a burst
    // long after they were taken, as tests/read_side.rs does.
    let burst = t0() + Duration::hours(3);
    let mut batches = Vec::new();
    let mut all = Vec::new();
    for minute in 0..70 {
        for i in 0..20 {
            let p = format!("p-{i}");
            let at = t0() + Duration::minutes(minute);
            all.push((p.clone(), reading(&p, VitalType::HeartRate, 70.0, at)));
        }
    }
    for (k, chunk) in all.chunks(100).enumerate() {
        batches.push((
            burst + Duration::milliseconds(200 * k as i64),
            world.put(chunk.to_vec()),
        ));
    }
    for (now, batch) in &batches {
        handle_stream(
            &world.deps(&world.guard()),
            &world.shards(&cache),
            batch,
            *now,
        )
        .await;
    }
    let swept = sweep_shards(
        &world.deps(&world.guard()),
        &world.shards(&cache),
        burst + Duration::minutes(3),
    )
    .await
    .unwrap();
    assert_eq!((swept.due, swept.failed), (1, 0));
    let blocks: usize = (0..20)
        .map(|i| world.vitals.of(&format!("p-{i}")).len())
        .sum();
    assert_eq!(
        *world.vitals.puts.lock().unwrap(),
        blocks,
        "one put per closed hour"
    );
    for i in 0..20 {
        assert_eq!(world.readings_kept(&format!("p-{i}")), 70);
    }
}

#[test]
fn the_state_is_kept_per_shard_unless_patient_is_asked_for() {
    use detect::shard::layout_is_per_shard;
    assert_eq!(layout_is_per_shard(None), Ok(true), "the default");
    assert_eq!(layout_is_per_shard(Some("shard")), Ok(true));
    assert_eq!(layout_is_per_shard(Some("patient")), Ok(false));
    assert!(layout_is_per_shard(Some("per-patient")).is_err());
}

/// [`MemoryShardStore`] whose bucket writes take 5 ms (so that patients processed
/// concurrently wait for each other's writes, as they do against DynamoDB).
struct SlowBuckets<'a>(&'a MemoryShardStore);

#[async_trait::async_trait]
impl application::shard_state::ShardStateStore for SlowBuckets<'_> {
    async fn load_meta(
        &self,
        shard: &str,
    ) -> Result<Option<domain::detection::snapshot::ShardMeta>, application::ports::PortError> {
        self.0.load_meta(shard).await
    }
    async fn load_buckets(
        &self,
        shard: &str,
        buckets: u32,
    ) -> Result<Vec<domain::detection::snapshot::Bucket>, application::ports::PortError> {
        self.0.load_buckets(shard, buckets).await
    }
    async fn load_bucket(
        &self,
        shard: &str,
        index: u32,
    ) -> Result<Option<domain::detection::snapshot::Bucket>, application::ports::PortError> {
        self.0.load_bucket(shard, index).await
    }
    async fn save_bucket(
        &self,
        shard: &str,
        expected: u64,
        bucket: &domain::detection::snapshot::Bucket,
    ) -> Result<(), application::ports::PortError> {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        self.0.save_bucket(shard, expected, bucket).await
    }
    async fn save_meta(
        &self,
        shard: &str,
        expected: u64,
        meta: &domain::detection::snapshot::ShardMeta,
    ) -> Result<(), application::ports::PortError> {
        self.0.save_meta(shard, expected, meta).await
    }
    async fn due_shards(
        &self,
        sweep_shard: u32,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<String>, application::ports::PortError> {
        self.0.due_shards(sweep_shard, now_ms, limit).await
    }
    async fn shards(&self) -> Result<Vec<String>, application::ports::PortError> {
        self.0.shards().await
    }
    async fn register(&self, shard: &str) -> Result<(), application::ports::PortError> {
        self.0.register(shard).await
    }
}

/// The event store, checking facts before effects: when an `AlertRaised` is appended (an
/// alert's first effect), the patient's stored snapshot already holds the alert in its
/// outbox. Violations are collected.
struct StoredBeforeAppended<'a> {
    events: &'a MemoryEventStore,
    store: &'a MemoryShardStore,
    violations: std::sync::Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl application::ports::EventStore for StoredBeforeAppended<'_> {
    async fn append(
        &self,
        stream_id: &str,
        expected_version: u64,
        event: &application::ports::StoredEvent,
    ) -> Result<application::ports::Appended, application::ports::PortError> {
        if event.event_type == "AlertRaised" {
            let patient = event.data["patientId"].as_str().unwrap_or_default();
            let stored = self.store.patient(patient).unwrap_or_default();
            let held = stored
                .outbox
                .iter()
                .any(|e| matches!(e, domain::detection::Emit::Raise(_)));
            if !held {
                self.violations.lock().unwrap().push(patient.to_string());
            }
        }
        self.events.append(stream_id, expected_version, event).await
    }
}

/// Issue 15: the alerts one batch decides are each written into the snapshot before their
/// effects, but patients whose alerts are decided together share a bucket write (group
/// commit) instead of one write each: 40 alerts in one batch, far fewer than 40 writes.
#[tokio::test]
async fn alerts_decided_together_share_bucket_writes_and_are_stored_before_their_effects() {
    let world = World::new();
    let slow = SlowBuckets(&world.store);
    let checked = StoredBeforeAppended {
        events: &world.events,
        store: &world.store,
        violations: std::sync::Mutex::new(Vec::new()),
    };
    let cache = ShardCache::default();
    let shards = Shards {
        store: &slow,
        ..world.shards(&cache)
    };
    let guard = world.guard();
    let deps = Deps {
        events: &checked,
        ..world.deps(&guard)
    };
    let patients: Vec<String> = (0..40).map(|i| format!("p-{i}")).collect();
    let mut writes_before_last = 0;
    for minute in 0..3 {
        let at = t0() + Duration::minutes(minute);
        let batch = world.put(
            patients
                .iter()
                .map(|p| (p.clone(), reading(p, VitalType::HeartRate, 130.0, at)))
                .collect(),
        );
        writes_before_last = *world.store.bucket_writes.lock().unwrap();
        let (response, _) = handle_stream(&deps, &shards, &batch, at + Duration::seconds(1)).await;
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
    }
    // The third fast beat raised every patient's alert, each appended and published once.
    assert_eq!(world.publisher.published.lock().unwrap().len(), 40);
    let raised = world
        .events
        .all()
        .into_iter()
        .filter(|e| e.event_type == "AlertRaised")
        .count();
    assert_eq!(raised, 40);
    assert!(
        checked.violations.lock().unwrap().is_empty(),
        "appended before the snapshot held them: {:?}",
        checked.violations.lock().unwrap()
    );
    let writes = *world.store.bucket_writes.lock().unwrap() - writes_before_last;
    println!("bucket writes for 40 alerts decided in one batch: {writes}");
    assert!(writes < 20, "{writes} bucket writes for 40 alerts");
}

/// A spot check just before the hour and one just after: once the snapshot has written the
/// closed hour to the vitals table, the patient is due only at the open hour's end plus
/// the flush grace (not still at the closed hour's, which would bring the sweep back for
/// nothing).
#[tokio::test]
async fn a_closed_hour_written_with_the_snapshot_no_longer_makes_the_patient_due() {
    let world = World::new();
    let cache = ShardCache::default();
    let hour = t0() + Duration::hours(1);
    let spot = |at: DateTime<Utc>, vital: VitalType, value: f64| {
        world.put(vec![(
            "p-spot".into(),
            reading_from("kiosk-1", "p-spot", vital, value, at),
        )])
    };
    let batches = [
        (hour - Duration::seconds(10), VitalType::Spo2, 97.0),
        (hour + Duration::seconds(10), VitalType::HeartRate, 72.0),
        (hour + Duration::seconds(90), VitalType::HeartRate, 74.0),
    ];
    for (at, vital, value) in batches {
        let batch = spot(at, vital, value);
        let (response, _) = handle_stream(
            &world.deps(&world.guard()),
            &world.shards(&cache),
            &batch,
            at + Duration::seconds(1),
        )
        .await;
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
    }
    // The closed hour is in the vitals table, the open one in the snapshot.
    let written: Vec<i64> = world.vitals.of("p-spot").iter().map(|b| b.start).collect();
    assert_eq!(written, [(hour - Duration::hours(1)).timestamp_millis()]);
    let state = world.store.patient("p-spot").unwrap();
    assert_eq!(
        state.due_at,
        Some(hour.timestamp_millis() + domain::vitals::HOUR_MS + domain::vitals::FLUSH_GRACE_MS),
        "{state:?}"
    );
}
