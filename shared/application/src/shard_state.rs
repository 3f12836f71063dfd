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
