//! A property of detection state per shard (issue 15, docs/detection.md "State per
//! shard"): however the state's process is interrupted, the alerts are those of an
//! uninterrupted run, each stored and published once, and no reading is lost.
//!
//! Random readings of three patients (heart rate and SpO2 on both sides of the default
//! rules' thresholds), interleaved at random on one shard and cut into random batches. One
//! run hands every batch to one process. The other, between batches, may lose the
//! process (the next batch goes to a new one, which restores: the snapshot, then the
//! stream replayed from its watermark), redeliver the batch to a new process (Lambda's
//! retry after a crash before the checkpoint), or run the sweep (which restores the shard,
//! writes its snapshot, and leaves the live process stale). The snapshot store here keeps
//! what the DynamoDB adapter keeps: buckets and header serialized to JSON and read back.

use std::collections::BTreeSet;

use application::idempotency::Idempotency;
use application::ports::PortError;
use application::shard_state::ShardStateStore;
use async_trait::async_trait;
use aws_lambda_events::event::kinesis::KinesisEvent;
use chrono::{DateTime, Duration, Utc};
use detect::shard::{ShardCache, Shards};
use detect::stream::{handle_stream, sweep_shards};
use detect::{Deps, default_rules};
use domain::detection::snapshot::{Bucket, ShardMeta};
use domain::reading::VitalType;
use proptest::prelude::*;
use serde_json::json;
use testkit::*;

const SHARD: &str = "shardId-000000000000";
const ARN: &str = "arn:aws:kinesis:us-east-1:123456789012:stream/readings";
const PATIENTS: usize = 3;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-24T08:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// [`MemoryShardStore`] through JSON: what is saved is serialized, what is loaded is
/// deserialized (the snapshot is only what survives the round trip).
#[derive(Default)]
struct Serialized(MemoryShardStore);

fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned>(value: &T) -> T {
    let json = serde_json::to_vec(value).expect("serializing");
    serde_json::from_slice(&json).expect("deserializing")
}

#[async_trait]
impl ShardStateStore for Serialized {
    async fn load_meta(&self, shard: &str) -> Result<Option<ShardMeta>, PortError> {
        Ok(self.0.load_meta(shard).await?.map(|m| round_trip(&m)))
    }
    async fn load_buckets(&self, shard: &str, buckets: u32) -> Result<Vec<Bucket>, PortError> {
        let loaded = self.0.load_buckets(shard, buckets).await?;
        Ok(loaded.iter().map(round_trip).collect())
    }
    async fn load_bucket(&self, shard: &str, index: u32) -> Result<Option<Bucket>, PortError> {
        Ok(self
            .0
            .load_bucket(shard, index)
            .await?
            .map(|b| round_trip(&b)))
    }
    async fn save_bucket(
        &self,
        shard: &str,
        expected: u64,
        bucket: &Bucket,
    ) -> Result<(), PortError> {
        self.0
            .save_bucket(shard, expected, &round_trip(bucket))
            .await
    }
    async fn save_meta(
        &self,
        shard: &str,
        expected: u64,
        meta: &ShardMeta,
    ) -> Result<(), PortError> {
        self.0.save_meta(shard, expected, &round_trip(meta)).await
    }
    async fn due_shards(
        &self,
        sweep_shard: u32,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<String>, PortError> {
        self.0.due_shards(sweep_shard, now_ms, limit).await
    }
    async fn shards(&self) -> Result<Vec<String>, PortError> {
        self.0.shards().await
    }
    async fn register(&self, shard: &str) -> Result<(), PortError> {
        self.0.register(shard).await
    }
}

/// One run's world: its own stores, stream and idempotency records.
#[derive(Default)]
struct World {
    events: MemoryEventStore,
    directory: MemoryDirectory,
    publisher: MemoryPublisher,
    dead_letters: MemoryDeadLetters,
    idempotency: MemoryIdempotencyStore,
    vitals: MemoryVitals,
    village_stats: MemoryVillageStats,
    unused: MemoryStateStore,
    store: Serialized,
    stream: MemoryStream,
}

impl World {
    fn shards<'a>(&'a self, cache: &'a ShardCache) -> Shards<'a> {
        Shards {
            store: &self.store,
            replay: &self.stream,
            cache,
            buckets: 2,
            flush_interval: Duration::seconds(60),
        }
    }

    /// Puts the readings on the shard; the Kinesis event Lambda delivers.
    fn put(&self, readings: &[(String, Vec<u8>)]) -> KinesisEvent {
        let records: Vec<_> = readings
            .iter()
            .map(|(pk, data)| {
                let r = self.stream.put(SHARD, pk, data.clone());
                testkit::fixtures::kinesis_record(SHARD, ARN, pk, &r.sequence_number, &r.data)
            })
            .collect();
        serde_json::from_value(json!({ "Records": records })).unwrap()
    }

    /// (event type, alert id, patient, rule) of every alert event stored.
    fn alert_events(&self) -> BTreeSet<(String, String, String, String)> {
        self.events
            .all()
            .into_iter()
            .filter(|e| e.event_type.starts_with("Alert"))
            .map(|e| {
                let field = |k: &str| e.data[k].as_str().unwrap_or_default().to_string();
                (
                    e.event_type.clone(),
                    field("alertId"),
                    field("patientId"),
                    field("ruleId"),
                )
            })
            .collect()
    }

    /// Alert ids published (raised, then resolved), duplicates kept.
    fn published(&self) -> (Vec<String>, Vec<String>) {
        let raised = self.publisher.published.lock().unwrap();
        let resolved = self.publisher.resolved.lock().unwrap();
        (
            raised.iter().map(|e| e.data.alert_id.clone()).collect(),
            resolved.iter().map(|e| e.data.alert_id.clone()).collect(),
        )
    }

    /// Readings of `patient` kept: in the vitals table's blocks and the open hours.
    fn readings_kept(&self, patient: &str) -> u32 {
        let flushed: u32 = self.vitals.of(patient).iter().map(|b| b.count).sum();
        let open: u32 = (self.store.0)
            .patient(patient)
            .map(|s| s.vitals.iter().map(|h| h.count).sum())
            .unwrap_or(0);
        flushed + open
    }
}

fn reading(patient: &str, spo2: bool, high: bool, at: DateTime<Utc>) -> Vec<u8> {
    let (vital, value) = match (spo2, high) {
        (false, false) => (VitalType::HeartRate, 70.0),
        (false, true) => (VitalType::HeartRate, 125.0),
        (true, false) => (VitalType::Spo2, 97.0),
        (true, true) => (VitalType::Spo2, 85.0),
    };
    testkit::fixtures::ingested_reading(&format!("wearable-{patient}"), patient, vital, value, at)
}

/// A batch: when it is handled, and its records (partition key, data).
type Batch = (DateTime<Utc>, Vec<(String, Vec<u8>)>);

/// What happens after a batch.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// The next batch goes to the same process.
    Go,
    /// The process is lost: the next batch goes to a new one.
    NewProcess,
    /// The batch is delivered again, to a new process (a crash before the checkpoint).
    Redeliver,
    /// The sweep runs now.
    Sweep,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => Just(Step::Go),
        1 => Just(Step::NewProcess),
        1 => Just(Step::Redeliver),
        1 => Just(Step::Sweep),
    ]
}

/// Runs the batches (`steps[i]` after batch `i`; all `Go`: uninterrupted), then the
/// scheduled sweeps. Every batch must be taken whole.
async fn run(world: &World, rules: &domain::detection::RuleSet, batches: &[Batch], steps: &[Step]) {
    let publish = || Idempotency::new(&world.idempotency, detect::publish_idempotency_config());
    let guard = publish();
    let deps = Deps {
        rules,
        state: &world.unused,
        events: &world.events,
        directory: &world.directory,
        publisher: &world.publisher,
        dead_letters: &world.dead_letters,
        publish_guard: &guard,
        auto_dispatch_max_age: Duration::minutes(15),
        vitals: &world.vitals,
        village_stats: &world.village_stats,
    };
    let mut process = ShardCache::default();
    let mut last = t0();
    for (i, (now, readings)) in batches.iter().enumerate() {
        let event = world.put(readings);
        let (response, _) = handle_stream(&deps, &world.shards(&process), &event, *now).await;
        assert!(
            response.batch_item_failures.is_empty(),
            "batch {i}: {response:?}"
        );
        last = *now;
        match steps.get(i).copied().unwrap_or(Step::Go) {
            Step::Go => {}
            Step::NewProcess => process = ShardCache::default(),
            Step::Redeliver => {
                process = ShardCache::default();
                let later = *now + Duration::seconds(1);
                let (response, _) =
                    handle_stream(&deps, &world.shards(&process), &event, later).await;
                assert!(
                    response.batch_item_failures.is_empty(),
                    "redelivered {i}: {response:?}"
                );
            }
            Step::Sweep => {
                let swept = sweep_shards(&deps, &world.shards(&process), *now)
                    .await
                    .unwrap();
                assert_eq!(swept.failed, 0);
            }
        }
    }
    // The sweep every minute, as scheduled (the header promises a visit within twice the
    // flush interval), then a day later.
    for later in [1, 2, 3, 24 * 60].map(Duration::minutes) {
        let swept = sweep_shards(&deps, &world.shards(&process), last + later)
            .await
            .unwrap();
        assert_eq!(swept.failed, 0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn alerts_survive_restores_exactly_once_as_in_an_uninterrupted_run(
        readings in prop::collection::vec((0..PATIENTS, any::<bool>(), any::<bool>()), 1..48),
        cuts in prop::collection::vec(1usize..7, 1..12),
        steps in prop::collection::vec(step(), 48),
    ) {
        // Reading j of the shard is taken 20 s after reading j-1 (each patient's in order).
        let stamped: Vec<(String, Vec<u8>, DateTime<Utc>)> = readings
            .iter()
            .enumerate()
            .map(|(j, (p, spo2, high))| {
                let at = t0() + Duration::seconds(20 * j as i64);
                let patient = format!("p-{p}");
                let data = reading(&patient, *spo2, *high, at);
                (patient, data, at)
            })
            .collect();
        let mut batches = Vec::new();
        let mut rest = stamped.as_slice();
        for c in cuts.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (batch, tail) = rest.split_at((*c).min(rest.len()));
            let now = batch.last().map_or(t0(), |r| r.2) + Duration::seconds(1);
            batches.push((now, batch.iter().map(|(p, d, _)| (p.clone(), d.clone())).collect::<Vec<_>>()));
            rest = tail;
        }
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (straight, interrupted) = (World::default(), World::default());
        let rules = default_rules().unwrap();
        runtime.block_on(run(&straight, &rules, &batches, &[]));
        runtime.block_on(run(&interrupted, &rules, &batches, &steps));

        prop_assert_eq!(interrupted.alert_events(), straight.alert_events());
        let (raised, resolved) = interrupted.published();
        let (raised_once, resolved_once): (BTreeSet<_>, BTreeSet<_>) =
            (raised.iter().cloned().collect(), resolved.iter().cloned().collect());
        prop_assert_eq!(raised.len(), raised_once.len(), "an alert published twice: {:?}", raised);
        prop_assert_eq!(resolved.len(), resolved_once.len(), "a resolution published twice");
        let (straight_raised, straight_resolved) = straight.published();
        prop_assert_eq!(raised_once, straight_raised.into_iter().collect::<BTreeSet<_>>());
        prop_assert_eq!(resolved_once, straight_resolved.into_iter().collect::<BTreeSet<_>>());
        for p in 0..PATIENTS {
            let patient = format!("p-{p}");
            let sent = readings.iter().filter(|(q, _, _)| *q == p).count() as u32;
            prop_assert_eq!(interrupted.readings_kept(&patient), sent, "{} lost readings", patient);
            prop_assert_eq!(straight.readings_kept(&patient), sent);
        }
    }
}
