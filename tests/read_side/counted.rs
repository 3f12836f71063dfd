//! issue 15 (detect-state): the test's own reads of the per-shard state, counted so they
//! can be told apart from the reading path's in the emulator's request log.

use std::sync::atomic::{AtomicUsize, Ordering};

use application::ports::PortError;
use application::shard_state::ShardStateStore;
use async_trait::async_trait;
use aws_adapters::DynamoShardStore;
use domain::detection::snapshot::{Bucket, ShardMeta};

/// A [`DynamoShardStore`] that counts its `GetItem`s (every read the query path makes).
pub struct Counted {
    pub inner: DynamoShardStore,
    pub gets: AtomicUsize,
}

impl Counted {
    fn count(&self) {
        self.gets.fetch_add(1, Ordering::Relaxed);
    }
}

#[async_trait]
impl ShardStateStore for Counted {
    async fn load_meta(&self, shard: &str) -> Result<Option<ShardMeta>, PortError> {
        self.count();
        self.inner.load_meta(shard).await
    }
    async fn load_bucket(&self, shard: &str, index: u32) -> Result<Option<Bucket>, PortError> {
        self.count();
        self.inner.load_bucket(shard, index).await
    }
    async fn load_buckets(&self, shard: &str, buckets: u32) -> Result<Vec<Bucket>, PortError> {
        self.inner.load_buckets(shard, buckets).await
    }
    async fn save_bucket(&self, shard: &str, v: u64, bucket: &Bucket) -> Result<(), PortError> {
        self.inner.save_bucket(shard, v, bucket).await
    }
    async fn save_meta(&self, shard: &str, v: u64, meta: &ShardMeta) -> Result<(), PortError> {
        self.inner.save_meta(shard, v, meta).await
    }
    async fn due_shards(
        &self,
        s: u32,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<String>, PortError> {
        self.inner.due_shards(s, now_ms, limit).await
    }
    async fn shards(&self) -> Result<Vec<String>, PortError> {
        self.count();
        self.inner.shards().await
    }
    async fn register(&self, shard: &str) -> Result<(), PortError> {
        self.inner.register(shard).await
    }
}
