//! Detection state kept per stream shard (issue 15; docs/detection.md, "State per shard").
//!
//! A [`ShardSession`] holds the states of every patient of one Kinesis shard in memory,
//! restored from the shard's snapshot ([`ShardStateStore`]: a header and a fixed number of
//! bucket items) plus a replay of the stream from the snapshot's watermark. The handler's
//! per-patient path ([`crate::process_patient`]) runs unchanged over it: through
//! [`SessionStore`], a load reads memory and a save writes memory. Writes to DynamoDB
//! happen:
//!
//! - before any effect: a save whose outbox is not empty writes its bucket first (facts
//!   before effects, as before);
//! - otherwise once per flush interval: every dirty bucket, then the header with the
//!   watermark (the last record of the batch) and the time the sweep must come.
//!
//! Every write is conditioned on the version read, so a process that lost the shard to
//! another (Lambda may move a shard to a new process at any time) finds out at its next
//! write, drops its memory, and restores.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use application::ports::PortError;
use application::shard_state::{ShardStateStore, StreamReplay};
use chrono::{DateTime, Utc};
use domain::detection::RuleSet;
use domain::detection::snapshot::{Bucket, ShardMeta, bucket_of};
use domain::vitals::{HourBlock, take_closed};

mod session_store;
pub use session_store::SessionStore;

/// The default number of buckets of a new shard's snapshot (`DETECT_STATE_BUCKETS`).
pub const DEFAULT_BUCKETS: u32 = 4;
/// Environment variable of the bucket count of new shards.
pub const BUCKETS_ENV: &str = "DETECT_STATE_BUCKETS";
/// The default flush interval in seconds (`DETECT_FLUSH_SECONDS`).
pub const DEFAULT_FLUSH_SECONDS: u32 = 60;
/// Environment variable of the flush interval.
pub const FLUSH_SECONDS_ENV: &str = "DETECT_FLUSH_SECONDS";

/// Environment variable choosing where detection state is kept: `shard` (per stream
/// shard, this module; the default, as the template's `DetectStateLayout`) or `patient`
/// (one item per patient).
pub const LAYOUT_ENV: &str = "DETECT_STATE";

/// Whether `DETECT_STATE` asks for state per shard (`shard`, or unset) rather than per
/// patient (`patient`).
pub fn per_shard_from_env() -> Result<bool, String> {
    layout_is_per_shard(std::env::var(LAYOUT_ENV).ok().as_deref())
}

/// [`per_shard_from_env`] of a value of `DETECT_STATE` (`None`: unset).
pub fn layout_is_per_shard(value: Option<&str>) -> Result<bool, String> {
    match value {
        Some("shard") | Some("") | None => Ok(true),
        Some("patient") => Ok(false),
        Some(other) => Err(format!(
            "{LAYOUT_ENV} must be `shard` or `patient` (got {other:?})"
        )),
    }
}

/// What the per-shard path needs besides [`crate::Deps`].
pub struct Shards<'a> {
    pub store: &'a dyn ShardStateStore,
    pub replay: &'a dyn StreamReplay,
    /// The sessions this process holds (kept across invocations).
    pub cache: &'a ShardCache,
    /// Buckets of a shard seen for the first time.
    pub buckets: u32,
    /// At most this long between a change and its snapshot (unless the shard falls
    /// silent: then the sweep writes it, at most one sweep period later).
    pub flush_interval: chrono::Duration,
}

/// The sessions of the shards this process was given, by shard id.
#[derive(Default)]
pub struct ShardCache {
    sessions: Mutex<HashMap<String, Arc<ShardSession>>>,
}

impl ShardCache {
    /// The live session of `shard`, if this process holds one.
    pub fn get(&self, shard: &str) -> Option<Arc<ShardSession>> {
        lock(&self.sessions)
            .get(shard)
            .filter(|s| !s.is_stale())
            .cloned()
    }
    pub fn put(&self, session: Arc<ShardSession>) {
        lock(&self.sessions).insert(session.shard.clone(), session);
    }
    pub fn forget(&self, shard: &str) {
        lock(&self.sessions).remove(shard);
    }
}

/// What the live path writes after a batch ([`ShardSession::write_wanted`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    Nothing,
    Promise,
    Snapshot,
}

/// One shard's patients in memory.
pub struct ShardSession {
    pub shard: String,
    data: Mutex<Data>,
    /// Serialises writes, so versions follow one another.
    flush_lock: tokio::sync::Mutex<()>,
}

struct Slot {
    bucket: Bucket,
    dirty: bool,
    /// Counts the saves into this bucket (in this process).
    changes: u64,
    /// The `changes` the last successful write of the bucket carried.
    written: u64,
}

struct Data {
    meta: ShardMeta,
    slots: Vec<Slot>,
    /// A write met a newer version: this memory is behind; restore before going on.
    stale: bool,
    last_flush: Option<DateTime<Utc>>,
    /// The sequence number a patient's next save records (its last record in the batch).
    seqs: HashMap<String, String>,
    /// Readings flushed to the vitals table, by (village, day): added to the village
    /// statistics once the states that no longer hold them are in the snapshot.
    village: BTreeMap<(String, String), i64>,
}

/// What one write of the snapshot did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Flushed {
    pub buckets: usize,
    pub meta: bool,
    /// Closed hours of recent vitals written to the vitals table, by patient.
    pub blocks: Vec<(String, Vec<HourBlock>)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn stale_error(shard: &str) -> PortError {
    PortError::Backend(format!(
        "the state of shard {shard} was saved by another process: restoring it"
    ))
}

impl ShardSession {
    /// A session over a loaded snapshot (no replay yet).
    pub fn new(shard: &str, meta: ShardMeta, buckets: Vec<Bucket>) -> ShardSession {
        let count = meta.buckets.max(1);
        let mut slots: Vec<Slot> = (0..count)
            .map(|index| Slot {
                bucket: Bucket {
                    index,
                    ..Bucket::default()
                },
                dirty: false,
                changes: 0,
                written: 0,
            })
            .collect();
        for bucket in buckets {
            if let Some(slot) = slots.get_mut(bucket.index as usize) {
                slot.bucket = bucket;
            }
        }
        ShardSession {
            shard: shard.to_string(),
            data: Mutex::new(Data {
                meta,
                slots,
                stale: false,
                last_flush: None,
                seqs: HashMap::new(),
                village: BTreeMap::new(),
            }),
            flush_lock: tokio::sync::Mutex::new(()),
        }
    }

    pub fn is_stale(&self) -> bool {
        lock(&self.data).stale
    }

    pub fn meta(&self) -> ShardMeta {
        lock(&self.data).meta.clone()
    }

    /// The sequence number of the last record applied to a patient.
    pub fn applied(&self, patient_id: &str) -> Option<String> {
        let d = lock(&self.data);
        let index = bucket_of(patient_id, d.meta.buckets) as usize;
        d.slots
            .get(index)
            .and_then(|s| s.bucket.patients.get(patient_id))
            .and_then(|e| e.seq.clone())
    }

    /// The sequence number a patient's next save records.
    pub fn set_seq(&self, patient_id: &str, seq: &str) {
        lock(&self.data)
            .seqs
            .insert(patient_id.to_string(), seq.to_string());
    }

    /// Patients whose state is due at `now_ms`.
    pub fn due_patients(&self, now_ms: i64) -> Vec<String> {
        let d = lock(&self.data);
        d.slots
            .iter()
            .flat_map(|s| s.bucket.patients.iter())
            .filter(|(_, e)| e.state.due_at.is_some_and(|at| at <= now_ms))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The earliest due time of any patient.
    pub fn earliest_due(&self) -> Option<i64> {
        let d = lock(&self.data);
        d.slots
            .iter()
            .flat_map(|s| s.bucket.patients.values())
            .filter_map(|e| e.state.due_at)
            .min()
    }

    pub fn is_dirty(&self) -> bool {
        lock(&self.data).slots.iter().any(|s| s.dirty)
    }

    /// Patients held, over all buckets.
    pub fn patients(&self) -> usize {
        lock(&self.data)
            .slots
            .iter()
            .map(|s| s.bucket.patients.len())
            .sum()
    }

    /// Readings counts waiting for the next snapshot, to add to the village statistics.
    pub fn add_village(&self, counts: &BTreeMap<(String, String), i64>) {
        let mut d = lock(&self.data);
        for (key, n) in counts {
            *d.village.entry(key.clone()).or_default() += n;
        }
    }

    pub fn take_village(&self) -> BTreeMap<(String, String), i64> {
        std::mem::take(&mut lock(&self.data).village)
    }

    /// What the live path should write now: the snapshot when something changed and
    /// the interval passed since the last one (or since the restore), or a patient is due
    /// before the header says; only the header (a promise that the sweep comes within
    /// twice the interval) when something changed and the header promises nothing that
    /// soon, or when nothing changed but a patient is due before the header says (an
    /// effect held by another attempt's claim: the sweep must come back for it); else
    /// nothing.
    pub fn write_wanted(&self, now: DateTime<Utc>, interval: chrono::Duration) -> Wanted {
        let (since, promised) = {
            let d = lock(&self.data);
            (d.last_flush, d.meta.due_at)
        };
        let earliest = self.earliest_due();
        if !self.is_dirty() {
            let unpromised = earliest.is_some_and(|e| promised.is_none_or(|p| e < p));
            return if unpromised {
                Wanted::Promise
            } else {
                Wanted::Nothing
            };
        }
        if since.is_none_or(|at| now - at >= interval)
            || earliest.is_some_and(|e| promised.is_some_and(|p| e < p))
        {
            return Wanted::Snapshot;
        }
        let horizon = now.timestamp_millis() + 2 * interval.num_milliseconds();
        if promised.is_none_or(|p| p > horizon) {
            return Wanted::Promise;
        }
        Wanted::Nothing
    }

    /// Starts the flush interval (at a restore).
    pub fn started(&self, now: DateTime<Utc>) {
        let mut d = lock(&self.data);
        if d.last_flush.is_none() {
            d.last_flush = Some(now);
        }
    }

    /// Writes the header only, with a new `due_at` (same watermark).
    pub async fn promise(&self, store: &dyn ShardStateStore, due_at: i64) -> Result<(), PortError> {
        let _serial = self.flush_lock.lock().await;
        let (meta, expected) = {
            let d = lock(&self.data);
            if d.stale {
                return Err(stale_error(&self.shard));
            }
            (
                ShardMeta {
                    due_at: Some(due_at),
                    ..d.meta.clone()
                },
                d.meta.version,
            )
        };
        match store.save_meta(&self.shard, expected, &meta).await {
            Ok(()) => {
                lock(&self.data).meta = ShardMeta {
                    version: expected + 1,
                    ..meta
                };
                Ok(())
            }
            Err(err) => {
                if matches!(err, PortError::Conflict { .. }) {
                    lock(&self.data).stale = true;
                }
                Err(err)
            }
        }
    }

    /// Writes one bucket (conditioned on its version).
    async fn write_bucket(
        &self,
        store: &dyn ShardStateStore,
        index: usize,
    ) -> Result<(), PortError> {
        let (bucket, expected, changes) = {
            let mut d = lock(&self.data);
            if d.stale {
                return Err(stale_error(&self.shard));
            }
            let slot = d
                .slots
                .get_mut(index)
                .ok_or_else(|| PortError::Backend(format!("no bucket {index}")))?;
            slot.dirty = false;
            (slot.bucket.clone(), slot.bucket.version, slot.changes)
        };
        match store.save_bucket(&self.shard, expected, &bucket).await {
            Ok(()) => {
                if let Some(slot) = lock(&self.data).slots.get_mut(index) {
                    slot.bucket.version = expected + 1;
                    slot.written = slot.written.max(changes);
                }
                lambda_kit::fault::crash_point("detect.after_write_bucket");
                Ok(())
            }
            Err(err) => {
                let mut d = lock(&self.data);
                if let Some(slot) = d.slots.get_mut(index) {
                    slot.dirty = true;
                }
                if matches!(err, PortError::Conflict { .. }) {
                    d.stale = true;
                }
                Err(err)
            }
        }
    }

    /// Makes sure one patient's bucket is stored as of save number `change` of the bucket
    /// (before the patient's outbox is carried out): writes it, unless a write since
    /// carried that save.
    pub async fn flush_patient(
        &self,
        store: &dyn ShardStateStore,
        patient_id: &str,
        change: u64,
    ) -> Result<(), PortError> {
        let _serial = self.flush_lock.lock().await;
        let index = {
            let d = lock(&self.data);
            if d.stale {
                return Err(stale_error(&self.shard));
            }
            let index = bucket_of(patient_id, d.meta.buckets) as usize;
            // Group commit: writes are serialised by `flush_lock` and a write's `changes`
            // are recorded only once it is stored, so `written >= change` means a stored
            // write carried this patient's save. The patients whose alerts a batch decides
            // together share one write per bucket instead of one each.
            if d.slots
                .get(index)
                .is_some_and(|slot| slot.written >= change)
            {
                return Ok(());
            }
            index
        };
        self.write_bucket(store, index).await
    }

    /// Writes the closed hours of recent vitals the dirty buckets' patients hold (one
    /// item per hour, whose key digests its content: a repeat rewrites the same item),
    /// then takes them out of the states, whose due time no longer counts them (`rules`:
    /// the engine's part of it). Before the buckets are written, so a crash between the
    /// two only writes the same items again.
    async fn write_closed_hours(
        &self,
        vitals: &dyn application::vitals::RecentVitals,
        rules: &RuleSet,
        dirty: &[usize],
        now_ms: i64,
    ) -> Result<Vec<(String, Vec<HourBlock>)>, PortError> {
        let closed: Vec<(String, Vec<HourBlock>)> = {
            let d = lock(&self.data);
            dirty
                .iter()
                .filter_map(|&i| d.slots.get(i))
                .flat_map(|s| s.bucket.patients.iter())
                .filter_map(|(id, e)| {
                    let mut buffer = e.state.vitals.clone();
                    let blocks = take_closed(&mut buffer, now_ms);
                    (!blocks.is_empty()).then(|| (id.clone(), blocks))
                })
                .collect()
        };
        for (patient_id, blocks) in &closed {
            for block in blocks {
                vitals.put_block(patient_id, block).await?;
                lambda_kit::fault::crash_point("detect.after_write_vitals");
            }
        }
        let mut d = lock(&self.data);
        let buckets = d.meta.buckets;
        for (patient_id, _) in &closed {
            let index = bucket_of(patient_id, buckets) as usize;
            if let Some(entry) = d
                .slots
                .get_mut(index)
                .and_then(|s| s.bucket.patients.get_mut(patient_id))
            {
                take_closed(&mut entry.state.vitals, now_ms);
                entry.state.due_at = crate::vitals::due(rules.due_at(&entry.state), &entry.state);
            }
        }
        Ok(closed)
    }

    /// Writes the closed hours of recent vitals, every dirty bucket, then the header
    /// with `watermark` (when given) and `due_at`, if anything changed.
    pub async fn flush(
        &self,
        store: &dyn ShardStateStore,
        vitals: &dyn application::vitals::RecentVitals,
        rules: &RuleSet,
        watermark: Option<&str>,
        due_at: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<Flushed, PortError> {
        let _serial = self.flush_lock.lock().await;
        let dirty: Vec<usize> = {
            let d = lock(&self.data);
            if d.stale {
                return Err(stale_error(&self.shard));
            }
            (0..d.slots.len()).filter(|&i| d.slots[i].dirty).collect()
        };
        let mut flushed = Flushed {
            blocks: self
                .write_closed_hours(vitals, rules, &dirty, now.timestamp_millis())
                .await?,
            ..Flushed::default()
        };
        for index in dirty {
            self.write_bucket(store, index).await?;
            flushed.buckets += 1;
        }
        let (meta, expected) = {
            let d = lock(&self.data);
            let mut meta = d.meta.clone();
            if let Some(w) = watermark {
                meta.watermark = Some(w.to_string());
            }
            meta.due_at = due_at;
            (meta, d.meta.version)
        };
        let changed = flushed.buckets > 0 || {
            let d = lock(&self.data);
            meta.watermark != d.meta.watermark || meta.due_at != d.meta.due_at
        };
        if changed {
            match store.save_meta(&self.shard, expected, &meta).await {
                Ok(()) => {
                    let mut d = lock(&self.data);
                    d.meta = ShardMeta {
                        version: expected + 1,
                        ..meta
                    };
                    flushed.meta = true;
                    lambda_kit::fault::crash_point("detect.after_write_shard_meta");
                }
                Err(err) => {
                    if matches!(err, PortError::Conflict { .. }) {
                        lock(&self.data).stale = true;
                    }
                    return Err(err);
                }
            }
        }
        lock(&self.data).last_flush = Some(now);
        Ok(flushed)
    }
}

/// Restores a shard's session from its snapshot (no replay: see
/// [`crate::stream::catch_up`]). A shard never seen is registered and starts empty,
/// with the watermark at the stream's oldest record.
pub async fn load(
    shards: &Shards<'_>,
    shard: &str,
    stream_arn: &str,
) -> Result<ShardSession, PortError> {
    let meta = match shards.store.load_meta(shard).await? {
        Some(meta) => meta,
        None => {
            shards.store.register(shard).await?;
            ShardMeta {
                version: 0,
                watermark: None,
                buckets: shards.buckets.max(1),
                stream_arn: stream_arn.to_string(),
                due_at: None,
            }
        }
    };
    let mut meta = meta;
    if meta.stream_arn.is_empty() {
        meta.stream_arn = stream_arn.to_string();
    }
    let buckets = shards.store.load_buckets(shard, meta.buckets).await?;
    Ok(ShardSession::new(shard, meta, buckets))
}
