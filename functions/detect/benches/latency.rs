//! Detect's throughput on one shard when every AWS call takes a fixed time, without an
//! emulator (issue 15, "Throughput per shard").
//!
//! `./dev bench shard` measures the same thing through the local stack, where moto's own
//! time (tens of ms per call under load) is on top of the injected latency, so it cannot
//! tell what detect itself does at 10 ms per call. Here every port detect uses (the
//! per-shard snapshot store, the stream replay, the event store, the directory, the
//! publisher, the publish guard's idempotency records, recent vitals, village statistics,
//! the per-patient state store, dead letters) is the in-memory adapter of `testkit` behind
//! [`Slow`], which sleeps `--latency-ms` before each call and counts it. One port call is
//! one AWS request in the DynamoDB, SNS and Kinesis adapters (a snapshot's buckets: one
//! `BatchGetItem`), so the calls per batch are comparable with the request counts of
//! `./dev bench shard` (docs/performance.md).
//!
//! Traffic as `./dev bench shard` sends it: batches of `--batch` heart-rate readings
//! (default 100) going round `--patients` patients (default 1,000), the first tenth unwell at
//! 112 bpm, one batch every `batch / 1,000` s of reading time (a shard's full write rate).
//! Both state layouts: `shard` (`detect::stream::handle_stream`, the default) and
//! `patient` (`detect::handle_batch`), each from empty state.
//!
//! Run: `cargo bench -p detect --bench latency [-- --latency-ms 10 --batches 50 --batch 100
//! --patients 1000]`. Not part of `./dev test`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use application::idempotency::{Idempotency, IdempotencyStore, Record};
use application::ports::{
    AlertPublisher, Appended, DeadLetters, Directory, EventStore, PatientStateStore, PoisonRecord,
    PortError, StoredEvent, Versioned,
};
use application::shard_state::{ReplayRecord, ShardStateStore, StreamReplay};
use application::vitals::{BlockPage, RecentVitals, VillageStats};
use async_trait::async_trait;
use aws_lambda_events::event::kinesis::KinesisEvent;
use chrono::{DateTime, Utc};
use detect::shard::{ShardCache, Shards};
use detect::{Deps, default_rules};
use domain::detection::snapshot::{Bucket, ShardMeta};
use domain::detection::{PatientState, RuleSet};
use domain::envelope::Envelope;
use domain::events::{AlertRaised, AlertResolved};
use domain::reading::VitalType;
use domain::routing::DirectoryEntry;
use domain::village_stats::StatsDelta;
use domain::vitals::HourBlock;
use testkit::fixtures::{self, READINGS_STREAM_ARN};
use testkit::*;

const SHARD: &str = "shardId-000000000000";

/// A port whose every call waits `latency` first; calls are counted by operation.
struct Slow<T> {
    inner: T,
    latency: Duration,
    calls: Mutex<BTreeMap<&'static str, u64>>,
}

impl<T> Slow<T> {
    fn new(inner: T, latency: Duration) -> Self {
        Slow {
            inner,
            latency,
            calls: Mutex::new(BTreeMap::new()),
        }
    }

    async fn call(&self, operation: &'static str) {
        if let Ok(mut calls) = self.calls.lock() {
            *calls.entry(operation).or_default() += 1;
        }
        tokio::time::sleep(self.latency).await;
    }

    fn take_calls(&self) -> BTreeMap<&'static str, u64> {
        self.calls
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default()
    }
}

#[async_trait]
impl<T: ShardStateStore> ShardStateStore for Slow<T> {
    async fn load_meta(&self, shard: &str) -> Result<Option<ShardMeta>, PortError> {
        self.call("state load_meta").await;
        self.inner.load_meta(shard).await
    }
    async fn load_buckets(&self, shard: &str, buckets: u32) -> Result<Vec<Bucket>, PortError> {
        self.call("state load_buckets").await;
        self.inner.load_buckets(shard, buckets).await
    }
    async fn load_bucket(&self, shard: &str, index: u32) -> Result<Option<Bucket>, PortError> {
        self.call("state load_bucket").await;
        self.inner.load_bucket(shard, index).await
    }
    async fn save_bucket(
        &self,
        shard: &str,
        expected: u64,
        bucket: &Bucket,
    ) -> Result<(), PortError> {
        self.call("state save_bucket").await;
        self.inner.save_bucket(shard, expected, bucket).await
    }
    async fn save_meta(
        &self,
        shard: &str,
        expected: u64,
        meta: &ShardMeta,
    ) -> Result<(), PortError> {
        self.call("state save_meta").await;
        self.inner.save_meta(shard, expected, meta).await
    }
    async fn due_shards(
        &self,
        sweep: u32,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<String>, PortError> {
        self.call("state due_shards").await;
        self.inner.due_shards(sweep, now_ms, limit).await
    }
    async fn shards(&self) -> Result<Vec<String>, PortError> {
        self.call("state shards").await;
        self.inner.shards().await
    }
    async fn register(&self, shard: &str) -> Result<(), PortError> {
        self.call("state register").await;
        self.inner.register(shard).await
    }
}

#[async_trait]
impl<T: StreamReplay> StreamReplay for Slow<T> {
    async fn records(
        &self,
        stream_arn: &str,
        shard: &str,
        after: Option<&str>,
        until: Option<&str>,
    ) -> Result<Vec<ReplayRecord>, PortError> {
        self.call("kinesis records").await;
        self.inner.records(stream_arn, shard, after, until).await
    }
}

#[async_trait]
impl<T: PatientStateStore> PatientStateStore for Slow<T> {
    async fn load(&self, patient_id: &str) -> Result<Versioned<PatientState>, PortError> {
        self.call("patient state load").await;
        self.inner.load(patient_id).await
    }
    async fn save(
        &self,
        patient_id: &str,
        expected: u64,
        state: &PatientState,
    ) -> Result<(), PortError> {
        self.call("patient state save").await;
        self.inner.save(patient_id, expected, state).await
    }
    async fn due(&self, shard: u32, now_ms: i64, limit: usize) -> Result<Vec<String>, PortError> {
        self.call("patient state due").await;
        self.inner.due(shard, now_ms, limit).await
    }
    fn defers_vitals(&self) -> bool {
        self.inner.defers_vitals()
    }
}

#[async_trait]
impl<T: EventStore> EventStore for Slow<T> {
    async fn append(
        &self,
        stream: &str,
        expected: u64,
        event: &StoredEvent,
    ) -> Result<Appended, PortError> {
        self.call("events append").await;
        self.inner.append(stream, expected, event).await
    }
}

#[async_trait]
impl<T: Directory> Directory for Slow<T> {
    async fn get(&self, patient_id: &str) -> Result<Option<DirectoryEntry>, PortError> {
        self.call("directory get").await;
        self.inner.get(patient_id).await
    }
}

#[async_trait]
impl<T: AlertPublisher> AlertPublisher for Slow<T> {
    async fn publish(&self, alert: &Envelope<AlertRaised>) -> Result<(), PortError> {
        self.call("sns publish").await;
        self.inner.publish(alert).await
    }
    async fn publish_resolved(&self, resolved: &Envelope<AlertResolved>) -> Result<(), PortError> {
        self.call("sns publish").await;
        self.inner.publish_resolved(resolved).await
    }
}

#[async_trait]
impl<T: DeadLetters> DeadLetters for Slow<T> {
    async fn send(&self, record: &PoisonRecord) -> Result<(), PortError> {
        self.call("sqs dead letter").await;
        self.inner.send(record).await
    }
}

#[async_trait]
impl<T: IdempotencyStore> IdempotencyStore for Slow<T> {
    async fn put_in_progress(
        &self,
        record: &Record,
        now: DateTime<Utc>,
    ) -> Result<Option<Record>, PortError> {
        self.call("idempotency put").await;
        self.inner.put_in_progress(record, now).await
    }
    async fn complete(&self, key: &str, result: &str, expires_at: i64) -> Result<(), PortError> {
        self.call("idempotency complete").await;
        self.inner.complete(key, result, expires_at).await
    }
    async fn delete(&self, key: &str) -> Result<(), PortError> {
        self.call("idempotency delete").await;
        self.inner.delete(key).await
    }
    async fn get(&self, key: &str) -> Result<Option<Record>, PortError> {
        self.call("idempotency get").await;
        self.inner.get(key).await
    }
}

#[async_trait]
impl<T: RecentVitals> RecentVitals for Slow<T> {
    async fn put_block(&self, patient_id: &str, block: &HourBlock) -> Result<(), PortError> {
        self.call("vitals put_block").await;
        self.inner.put_block(patient_id, block).await
    }
    async fn blocks(
        &self,
        patient_id: &str,
        from_hour: i64,
        to_hour: i64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<BlockPage, PortError> {
        self.call("vitals blocks").await;
        self.inner
            .blocks(patient_id, from_hour, to_hour, after, limit)
            .await
    }
}

#[async_trait]
impl<T: VillageStats> VillageStats for Slow<T> {
    async fn add(&self, delta: &StatsDelta) -> Result<bool, PortError> {
        self.call("village stats add").await;
        self.inner.add(delta).await
    }
    async fn days(
        &self,
        village: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<(String, BTreeMap<String, i64>)>, PortError> {
        self.call("village stats days").await;
        self.inner.days(village, from, to).await
    }
}

/// Every port of one run, each behind [`Slow`].
struct World {
    shard_store: Slow<MemoryShardStore>,
    stream: Slow<MemoryStream>,
    patient_state: Slow<MemoryStateStore>,
    events: Slow<MemoryEventStore>,
    directory: Slow<MemoryDirectory>,
    publisher: Slow<MemoryPublisher>,
    dead_letters: Slow<MemoryDeadLetters>,
    idempotency: Slow<MemoryIdempotencyStore>,
    vitals: Slow<MemoryVitals>,
    village_stats: Slow<MemoryVillageStats>,
}

impl World {
    fn new(latency: Duration, patients: &[String]) -> World {
        let entries = patients
            .iter()
            .enumerate()
            .map(|(i, p)| fixtures::directory_entry(p, &format!("w-{}", i % 50), "+254700000001"));
        World {
            shard_store: Slow::new(MemoryShardStore::default(), latency),
            stream: Slow::new(MemoryStream::default(), latency),
            patient_state: Slow::new(MemoryStateStore::default(), latency),
            events: Slow::new(MemoryEventStore::default(), latency),
            directory: Slow::new(MemoryDirectory::with(entries), latency),
            publisher: Slow::new(MemoryPublisher::default(), latency),
            dead_letters: Slow::new(MemoryDeadLetters::default(), latency),
            idempotency: Slow::new(MemoryIdempotencyStore::default(), latency),
            vitals: Slow::new(MemoryVitals::default(), latency),
            village_stats: Slow::new(MemoryVillageStats::default(), latency),
        }
    }

    /// The calls made since the last time, by port and operation.
    fn take_calls(&self) -> BTreeMap<&'static str, u64> {
        let mut all = BTreeMap::new();
        for calls in [
            self.shard_store.take_calls(),
            self.stream.take_calls(),
            self.patient_state.take_calls(),
            self.events.take_calls(),
            self.directory.take_calls(),
            self.publisher.take_calls(),
            self.dead_letters.take_calls(),
            self.idempotency.take_calls(),
            self.vitals.take_calls(),
            self.village_stats.take_calls(),
        ] {
            for (operation, n) in calls {
                *all.entry(operation).or_default() += n;
            }
        }
        all
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Layout {
    Shard,
    Patient,
}

/// `cargo bench -p detect --bench latency -- [options]`.
#[derive(clap::Parser)]
struct Options {
    /// Milliseconds every port call waits.
    #[arg(long = "latency-ms", default_value_t = 10)]
    latency_ms: u64,
    /// Batches handed to detect, one after the other.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    batches: u64,
    /// Readings per batch.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    batch: u64,
    /// Patients the readings go round.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    patients: u64,
    /// Passed by `cargo bench` itself.
    #[arg(long, hide = true)]
    bench: bool,
}

impl Options {
    fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms)
    }
}

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-24T08:00:00Z")
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

/// Reading `i` of the run: patient `i % patients`, one reading a millisecond (a shard's
/// 1,000 records/s); the first tenth of the patients are unwell, at 112 bpm (as in
/// `./dev bench shard`: their third readings fall in the same batch, whose alerts are
/// decided together).
fn reading(i: usize, patients: &[String]) -> (String, Vec<u8>) {
    let p = i % patients.len();
    let at = t0() + chrono::Duration::milliseconds(i as i64);
    let value = if p < patients.len().div_ceil(10) {
        112.0
    } else {
        60.0 + (i * 7 % 25) as f64
    };
    let device = format!("band-{}", patients[p]);
    let data = fixtures::ingested_reading(&device, &patients[p], VitalType::HeartRate, value, at);
    (patients[p].clone(), data)
}

/// What one layout did over the run.
struct Outcome {
    batch_ms: Vec<f64>,
    failed_records: usize,
    calls: BTreeMap<&'static str, u64>,
}

async fn run(layout: Layout, options: &Options, rules: &RuleSet) -> Outcome {
    let (batches, batch) = (options.batches as usize, options.batch as usize);
    let patients: Vec<String> = (0..options.patients).map(|p| format!("p-{p:05}")).collect();
    let world = World::new(options.latency(), &patients);
    let guard = Idempotency::new(&world.idempotency, detect::publish_idempotency_config());
    let deps = Deps {
        rules,
        state: &world.patient_state,
        events: &world.events,
        directory: &world.directory,
        publisher: &world.publisher,
        dead_letters: &world.dead_letters,
        publish_guard: &guard,
        auto_dispatch_max_age: chrono::Duration::minutes(15),
        vitals: &world.vitals,
        village_stats: &world.village_stats,
    };
    let cache = ShardCache::default();
    let shards = Shards {
        store: &world.shard_store,
        replay: &world.stream,
        cache: &cache,
        buckets: 4,
        flush_interval: chrono::Duration::seconds(60),
    };
    let mut outcome = Outcome {
        batch_ms: Vec::with_capacity(batches),
        failed_records: 0,
        calls: BTreeMap::new(),
    };
    for b in 0..batches {
        let first = b * batch;
        let records: Vec<serde_json::Value> = (first..first + batch)
            .map(|i| {
                let (patient, data) = reading(i, &patients);
                let put = world.stream.inner.put(SHARD, &patient, data);
                fixtures::kinesis_record(
                    SHARD,
                    READINGS_STREAM_ARN,
                    &patient,
                    &put.sequence_number,
                    &put.data,
                )
            })
            .collect();
        let event: KinesisEvent =
            match serde_json::from_value(serde_json::json!({ "Records": records })) {
                Ok(event) => event,
                Err(e) => {
                    eprintln!("batch {b}: {e}");
                    return outcome;
                }
            };
        // Delivered 200 ms after its last reading was written.
        let now = t0() + chrono::Duration::milliseconds((first + batch) as i64 + 200);
        let started = Instant::now();
        let response = match layout {
            Layout::Shard => {
                detect::stream::handle_stream(&deps, &shards, &event, now)
                    .await
                    .0
            }
            Layout::Patient => detect::handle_batch(&deps, &event, now).await.0,
        };
        outcome
            .batch_ms
            .push(started.elapsed().as_secs_f64() * 1000.0);
        outcome.failed_records += response.batch_item_failures.len();
    }
    outcome.calls = world.take_calls();
    outcome
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn report(layout: Layout, options: &Options, outcome: &Outcome) {
    let mut sorted = outcome.batch_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let seconds: f64 = sorted.iter().sum::<f64>() / 1000.0;
    let readings = outcome.batch_ms.len() * options.batch as usize;
    let calls: u64 = outcome.calls.values().sum();
    let per_batch = calls as f64 / outcome.batch_ms.len().max(1) as f64;
    println!(
        "layout {layout:?}: {:.0} readings/s ({readings} readings in {seconds:.2} s of handler time; target 1,000)",
        readings as f64 / seconds.max(f64::EPSILON)
    );
    println!(
        "    batch ms p50 {:.1} / p99 {:.1} / max {:.1}; failed records {}",
        percentile(&sorted, 50.0),
        percentile(&sorted, 99.0),
        sorted.last().copied().unwrap_or_default(),
        outcome.failed_records
    );
    println!(
        "    {per_batch:.1} port calls per batch of {}:",
        options.batch
    );
    for (operation, n) in &outcome.calls {
        println!(
            "      {operation:<22} {:>8.1} per 1,000 readings",
            *n as f64 * 1000.0 / readings.max(1) as f64
        );
    }
}

fn main() {
    let options = <Options as clap::Parser>::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("bench latency: no runtime: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "detect on one shard, {} ms per port call, {} batches of {} readings over {} patients (the first tenth unwell), in memory:",
        options.latency_ms, options.batches, options.batch, options.patients
    );
    let rules = match default_rules() {
        Ok(rules) => rules,
        Err(e) => {
            eprintln!("bench latency: the default rules: {e}");
            std::process::exit(1);
        }
    };
    for layout in [Layout::Shard, Layout::Patient] {
        let outcome = runtime.block_on(run(layout, &options, &rules));
        report(layout, &options, &outcome);
    }
}
