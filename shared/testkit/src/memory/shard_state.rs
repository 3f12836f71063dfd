//! [`ShardStateStore`] and [`StreamReplay`] in memory.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use application::ports::{PortError, Versioned};
use application::shard_state::{ReplayRecord, ShardStateStore, StreamReplay};
use domain::detection::snapshot::{Bucket, ShardMeta, compare_seq};

use super::{lock, save_versioned};

/// Shard snapshots, keyed `meta#<shard>` and `bucket#<shard>#<index>`; counts the writes.
#[derive(Default)]
pub struct MemoryShardStore {
    pub metas: Mutex<HashMap<String, Versioned<ShardMeta>>>,
    pub buckets: Mutex<HashMap<String, Versioned<Bucket>>>,
    pub registry: Mutex<BTreeSet<String>>,
    pub bucket_writes: Mutex<usize>,
    pub meta_writes: Mutex<usize>,
    pub loads: Mutex<usize>,
}

impl MemoryShardStore {
    /// Every patient's stored state, over all shards.
    pub fn patient(&self, patient_id: &str) -> Option<domain::detection::PatientState> {
        lock(&self.buckets)
            .values()
            .find_map(|b| b.value.patients.get(patient_id).map(|e| e.state.clone()))
    }
    pub fn writes(&self) -> usize {
        *lock(&self.bucket_writes) + *lock(&self.meta_writes)
    }
}

#[async_trait]
impl ShardStateStore for MemoryShardStore {
    async fn load_meta(&self, shard: &str) -> Result<Option<ShardMeta>, PortError> {
        *lock(&self.loads) += 1;
        Ok(lock(&self.metas).get(shard).map(|m| ShardMeta {
            version: m.version,
            ..m.value.clone()
        }))
    }

    async fn load_bucket(&self, shard: &str, index: u32) -> Result<Option<Bucket>, PortError> {
        Ok(lock(&self.buckets)
            .get(&format!("{shard}#{index}"))
            .map(|b| Bucket {
                version: b.version,
                ..b.value.clone()
            }))
    }

    async fn load_buckets(&self, shard: &str, buckets: u32) -> Result<Vec<Bucket>, PortError> {
        let stored = lock(&self.buckets);
        Ok((0..buckets)
            .filter_map(|i| {
                stored.get(&format!("{shard}#{i}")).map(|b| Bucket {
                    version: b.version,
                    ..b.value.clone()
                })
            })
            .collect())
    }

    async fn save_bucket(
        &self,
        shard: &str,
        expected_version: u64,
        bucket: &Bucket,
    ) -> Result<(), PortError> {
        let key = format!("{shard}#{}", bucket.index);
        save_versioned(&mut lock(&self.buckets), &key, expected_version, bucket)?;
        *lock(&self.bucket_writes) += 1;
        Ok(())
    }

    async fn save_meta(
        &self,
        shard: &str,
        expected_version: u64,
        meta: &ShardMeta,
    ) -> Result<(), PortError> {
        save_versioned(&mut lock(&self.metas), shard, expected_version, meta)?;
        *lock(&self.meta_writes) += 1;
        Ok(())
    }

    async fn due_shards(
        &self,
        sweep_shard: u32,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<String>, PortError> {
        Ok(lock(&self.metas)
            .iter()
            .filter(|(id, _)| domain::detection::due_shard(id) == sweep_shard)
            .filter(|(_, m)| m.value.due_at.is_some_and(|at| at <= now_ms))
            .map(|(id, _)| id.clone())
            .take(limit)
            .collect())
    }

    async fn shards(&self) -> Result<Vec<String>, PortError> {
        Ok(lock(&self.registry).iter().cloned().collect())
    }

    async fn register(&self, shard: &str) -> Result<(), PortError> {
        lock(&self.registry).insert(shard.to_string());
        Ok(())
    }
}

/// A stream kept in memory: every record put on a shard, in order.
#[derive(Default)]
pub struct MemoryStream {
    pub shards: Mutex<HashMap<String, Vec<ReplayRecord>>>,
    pub reads: Mutex<usize>,
}

impl MemoryStream {
    /// Appends a record to `shard` with the next sequence number, and returns it.
    pub fn put(&self, shard: &str, partition_key: &str, data: Vec<u8>) -> ReplayRecord {
        let mut shards = lock(&self.shards);
        let records = shards.entry(shard.to_string()).or_default();
        let record = ReplayRecord {
            sequence_number: format!("{:056}", records.len() + 1),
            partition_key: partition_key.to_string(),
            data,
        };
        records.push(record.clone());
        record
    }
}

#[async_trait]
impl StreamReplay for MemoryStream {
    async fn records(
        &self,
        _stream_arn: &str,
        shard: &str,
        after: Option<&str>,
        until: Option<&str>,
    ) -> Result<Vec<ReplayRecord>, PortError> {
        *lock(&self.reads) += 1;
        Ok(lock(&self.shards)
            .get(shard)
            .map(|records| {
                records
                    .iter()
                    .filter(|r| after.is_none_or(|a| compare_seq(&r.sequence_number, a).is_gt()))
                    .take_while(|r| {
                        until.is_none_or(|u| compare_seq(&r.sequence_number, u).is_lt())
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }
}
