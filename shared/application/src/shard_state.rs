//! Ports of detection state kept per stream shard (issue 15, docs/detection.md "State per
//! shard"): the snapshot store and the replay of the stream since the snapshot.

use async_trait::async_trait;

use domain::detection::snapshot::{Bucket, ShardMeta};

use crate::ports::PortError;

/// The per-shard snapshot: one header item and `buckets` bucket items per shard, every
/// write conditioned on the version read.
#[async_trait]
pub trait ShardStateStore: Send + Sync {
    /// The shard's header, if it was ever saved.
    async fn load_meta(&self, shard: &str) -> Result<Option<ShardMeta>, PortError>;
    /// Buckets `0..buckets` of the shard (a bucket never saved is empty, version 0).
    async fn load_buckets(&self, shard: &str, buckets: u32) -> Result<Vec<Bucket>, PortError>;
    /// One bucket of the shard, if it was ever saved.
    async fn load_bucket(&self, shard: &str, index: u32) -> Result<Option<Bucket>, PortError>;
    /// Stores `bucket` as version `expected_version + 1` if the stored one is still
    /// `expected_version`; otherwise [`PortError::Conflict`].
    async fn save_bucket(
        &self,
        shard: &str,
        expected_version: u64,
        bucket: &Bucket,
    ) -> Result<(), PortError>;
    /// Stores the header as version `expected_version + 1`, conditioned likewise.
    async fn save_meta(
        &self,
        shard: &str,
        expected_version: u64,
        meta: &ShardMeta,
    ) -> Result<(), PortError>;
    /// Shards whose header is due for the sweep (`due_at <= now_ms`) in sweep shard
    /// `sweep_shard` (of [`domain::detection::due_shard`] of the shard id), at most `limit`.
    async fn due_shards(
        &self,
        sweep_shard: u32,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<String>, PortError>;
    /// Every shard that ever saved a snapshot (the query API looks a patient up in each).
    async fn shards(&self) -> Result<Vec<String>, PortError>;
    /// Adds a shard to [`ShardStateStore::shards`] (idempotent).
    async fn register(&self, shard: &str) -> Result<(), PortError>;
}

/// One record read back from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayRecord {
    pub sequence_number: String,
    pub partition_key: String,
    pub data: Vec<u8>,
}

/// Reads a shard of the readings stream again (Kinesis `GetShardIterator` +
/// `GetRecords`): the changelog of the per-shard state.
#[async_trait]
pub trait StreamReplay: Send + Sync {
    /// The records of `shard` after `after` (from the oldest the stream keeps when
    /// `None`), in order, stopping before `until` (at the shard's end when `None`).
    async fn records(
        &self,
        stream_arn: &str,
        shard: &str,
        after: Option<&str>,
        until: Option<&str>,
    ) -> Result<Vec<ReplayRecord>, PortError>;
}

/// A patient's detection state as the query API reads it: looked up in the snapshot of
/// every shard (a shard's header, then the one bucket the patient hashes to). As fresh as
/// the last snapshot (at most the flush interval behind, docs/detection.md). Read-only.
pub struct ShardedStates<S> {
    pub store: S,
}

#[async_trait]
impl<S: ShardStateStore> crate::ports::PatientStateStore for ShardedStates<S> {
    async fn load(
        &self,
        patient_id: &str,
    ) -> Result<crate::ports::Versioned<domain::detection::PatientState>, PortError> {
        use domain::detection::snapshot::{bucket_of, compare_seq};
        // After a reshard a patient can be in a parent's and a child's snapshot: the entry
        // with the newest record wins.
        let mut best: Option<domain::detection::snapshot::SnapshotEntry> = None;
        for shard in self.store.shards().await? {
            let Some(meta) = self.store.load_meta(&shard).await? else {
                continue;
            };
            let index = bucket_of(patient_id, meta.buckets);
            let found = self
                .store
                .load_bucket(&shard, index)
                .await?
                .and_then(|mut b| b.patients.remove(patient_id));
            if let Some(entry) = found {
                let newer = best.as_ref().is_none_or(|b| {
                    compare_seq(
                        entry.seq.as_deref().unwrap_or(""),
                        b.seq.as_deref().unwrap_or(""),
                    )
                    .is_gt()
                });
                if newer {
                    best = Some(entry);
                }
            }
        }
        Ok(best
            .map(|e| crate::ports::Versioned {
                version: e.version,
                value: e.state,
            })
            .unwrap_or_default())
    }

    async fn save(
        &self,
        patient_id: &str,
        _expected_version: u64,
        _state: &domain::detection::PatientState,
    ) -> Result<(), PortError> {
        Err(PortError::Rejected(format!(
            "the state of {patient_id} is read-only here (detect writes it per shard)"
        )))
    }

    async fn due(
        &self,
        _shard: u32,
        _now_ms: i64,
        _limit: usize,
    ) -> Result<Vec<String>, PortError> {
        Ok(Vec::new())
    }
}
