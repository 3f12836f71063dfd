//! [`ShardStateStore`] on DynamoDB (the detection state table) and [`StreamReplay`] on
//! Kinesis: detection state per stream shard (issue 15, docs/detection.md).
//!
//! Items of `PatientStateTable` (hash key `patientId`):
//! - `detect-shard#<shardId>`: the header (`version`, `watermark`, `buckets`, `streamArn`),
//!   with `dueShard`/`dueAt` of the sparse `due-at` index while the sweep must come;
//! - `detect-bucket#<shardId>#<i>`: a bucket, its patients' entries as gzip-compressed JSON
//!   (`data`, binary), `version`;
//! - `detect-shards`: the string set of every shard that ever saved a snapshot.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use aws_sdk_kinesis::types::ShardIteratorType;

use application::ports::PortError;
use application::shard_state::{ReplayRecord, ShardStateStore, StreamReplay};
use domain::detection::snapshot::{Bucket, ShardMeta, SnapshotEntry, compare_seq};

use crate::attributes::{Item, n, number_attr, s, sdk_failure, string_attr};
use crate::state_store::DUE_INDEX;
use crate::table::{get_item, put_versioned};

const REGISTRY_KEY: &str = "detect-shards";

fn meta_key(shard: &str) -> String {
    format!("detect-shard#{shard}")
}

fn bucket_key(shard: &str, index: u32) -> String {
    format!("detect-bucket#{shard}#{index}")
}

/// Snapshot items in the detection state table.
pub struct DynamoShardStore {
    client: Client,
    table: String,
}

impl DynamoShardStore {
    pub fn new(config: &aws_config::SdkConfig, table: String) -> Self {
        DynamoShardStore {
            client: Client::new(config),
            table,
        }
    }
}

fn compress(patients: &BTreeMap<String, SnapshotEntry>) -> Result<Vec<u8>, PortError> {
    let json = serde_json::to_vec(patients)?;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder
        .write_all(&json)
        .and_then(|()| encoder.finish())
        .map_err(|e| PortError::backend("compressing a state bucket", e))
}

fn decompress(data: &[u8], key: &str) -> Result<BTreeMap<String, SnapshotEntry>, PortError> {
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut json)
        .map_err(|e| PortError::backend(&format!("decompressing {key}"), e))?;
    serde_json::from_slice(&json).map_err(|e| PortError::backend(&format!("decoding {key}"), e))
}

fn bucket_of_item(item: &Item) -> Result<Bucket, PortError> {
    let key = string_attr(item, "patientId")
        .unwrap_or_default()
        .to_string();
    let index = key
        .rsplit('#')
        .next()
        .and_then(|i| i.parse().ok())
        .ok_or_else(|| PortError::Backend(format!("bad bucket key {key}")))?;
    let patients = match item.get("data") {
        Some(AttributeValue::B(blob)) => decompress(blob.as_ref(), &key)?,
        _ => BTreeMap::new(),
    };
    Ok(Bucket {
        index,
        version: number_attr(item, "version").unwrap_or(0),
        patients,
    })
}

/// Largest bucket item written (DynamoDB's limit is 400 KB).
pub const BUCKET_BYTES_LIMIT: usize = 380 * 1024;

#[async_trait]
impl ShardStateStore for DynamoShardStore {
    async fn load_meta(&self, shard: &str) -> Result<Option<ShardMeta>, PortError> {
        let key = meta_key(shard);
        let Some(item) = get_item(&self.client, &self.table, "patientId", &key, true).await? else {
            return Ok(None);
        };
        Ok(Some(ShardMeta {
            version: number_attr(&item, "version").unwrap_or(0),
            watermark: string_attr(&item, "watermark").map(str::to_string),
            buckets: number_attr(&item, "buckets").unwrap_or(1),
            stream_arn: string_attr(&item, "streamArn")
                .unwrap_or_default()
                .to_string(),
            due_at: number_attr(&item, "dueAt"),
        }))
    }

    async fn load_bucket(&self, shard: &str, index: u32) -> Result<Option<Bucket>, PortError> {
        let key = bucket_key(shard, index);
        get_item(&self.client, &self.table, "patientId", &key, false)
            .await?
            .map(|item| bucket_of_item(&item))
            .transpose()
    }

    async fn load_buckets(&self, shard: &str, buckets: u32) -> Result<Vec<Bucket>, PortError> {
        let keys: Vec<String> = (0..buckets).map(|i| bucket_key(shard, i)).collect();
        let mut found = Vec::new();
        for chunk in keys.chunks(100) {
            let keys: Vec<Item> = chunk
                .iter()
                .map(|k| Item::from([("patientId".to_string(), s(k))]))
                .collect();
            let mut pending = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| PortError::backend("building a BatchGetItem request", e))?,
            );
            let mut attempt = 0u32;
            while let Some(request) = pending.take() {
                if attempt >= 5 {
                    return Err(PortError::Backend(format!(
                        "BatchGetItem {}: state buckets still unprocessed",
                        self.table
                    )));
                }
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(25 << attempt)).await;
                }
                attempt += 1;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| sdk_failure(&format!("BatchGetItem {}", self.table), &e))?;
                if let Some(mut responses) = out.responses {
                    found.extend(responses.remove(&self.table).unwrap_or_default());
                }
                pending = out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .filter(|k| !k.keys().is_empty());
            }
        }
        found.iter().map(bucket_of_item).collect()
    }

    async fn save_bucket(
        &self,
        shard: &str,
        expected_version: u64,
        bucket: &Bucket,
    ) -> Result<(), PortError> {
        let key = bucket_key(shard, bucket.index);
        let data = compress(&bucket.patients)?;
        if data.len() > BUCKET_BYTES_LIMIT {
            return Err(PortError::Backend(format!(
                "{key} is {} bytes compressed, over {BUCKET_BYTES_LIMIT}: raise DETECT_STATE_BUCKETS",
                data.len()
            )));
        }
        let item = Item::from([
            ("patientId".to_string(), s(&key)),
            ("version".to_string(), n(expected_version + 1)),
            ("patients".to_string(), n(bucket.patients.len())),
            ("data".to_string(), AttributeValue::B(Blob::new(data))),
        ]);
        put_versioned(
            &self.client,
            &self.table,
            ("patientId", &key),
            expected_version,
            item,
        )
        .await
    }

    async fn save_meta(
        &self,
        shard: &str,
        expected_version: u64,
        meta: &ShardMeta,
    ) -> Result<(), PortError> {
        let key = meta_key(shard);
        let mut item = Item::from([
            ("patientId".to_string(), s(&key)),
            ("version".to_string(), n(expected_version + 1)),
            ("buckets".to_string(), n(meta.buckets)),
            ("streamArn".to_string(), s(&meta.stream_arn)),
        ]);
        if let Some(w) = &meta.watermark {
            item.insert("watermark".to_string(), s(w));
        }
        if let Some(due) = meta.due_at {
            item.insert("dueAt".to_string(), n(due));
            item.insert(
                "dueShard".to_string(),
                n(domain::detection::due_shard(shard)),
            );
        }
        put_versioned(
            &self.client,
            &self.table,
            ("patientId", &key),
            expected_version,
            item,
        )
        .await
    }

    async fn due_shards(
        &self,
        sweep_shard: u32,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<String>, PortError> {
        let limit = i32::try_from(limit.max(1)).unwrap_or(i32::MAX);
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(DUE_INDEX)
            .key_condition_expression("dueShard = :shard AND dueAt <= :now")
            .expression_attribute_values(":shard", n(sweep_shard))
            .expression_attribute_values(":now", n(now_ms))
            .limit(limit)
            .send()
            .await
            .map_err(|e| sdk_failure(&format!("Query {DUE_INDEX}"), &e))?;
        Ok(out
            .items()
            .iter()
            .filter_map(|item| string_attr(item, "patientId"))
            .filter_map(|key| key.strip_prefix("detect-shard#"))
            .map(str::to_string)
            .collect())
    }

    async fn shards(&self) -> Result<Vec<String>, PortError> {
        let item = get_item(&self.client, &self.table, "patientId", REGISTRY_KEY, false).await?;
        Ok(match item.as_ref().and_then(|i| i.get("shards")) {
            Some(AttributeValue::Ss(shards)) => shards.clone(),
            _ => Vec::new(),
        })
    }

    async fn register(&self, shard: &str) -> Result<(), PortError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("patientId", s(REGISTRY_KEY))
            .update_expression("ADD shards :shard")
            .expression_attribute_values(":shard", AttributeValue::Ss(vec![shard.to_string()]))
            .send()
            .await
            .map_err(|e| sdk_failure(&format!("UpdateItem {}", self.table), &e))?;
        Ok(())
    }
}

/// Reads a shard of the readings stream back (`GetShardIterator` + `GetRecords`).
pub struct KinesisReplay {
    client: aws_sdk_kinesis::Client,
}

impl KinesisReplay {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        KinesisReplay {
            client: aws_sdk_kinesis::Client::new(config),
        }
    }
}

/// `GetRecords` calls one replay makes at most (10,000 records each).
const REPLAY_CALLS: usize = 1_000;

#[async_trait]
impl StreamReplay for KinesisReplay {
    async fn records(
        &self,
        stream_arn: &str,
        shard: &str,
        after: Option<&str>,
        until: Option<&str>,
    ) -> Result<Vec<ReplayRecord>, PortError> {
        let request = self
            .client
            .get_shard_iterator()
            .stream_arn(stream_arn)
            .shard_id(shard);
        let request = match after {
            Some(seq) => request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(seq),
            None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        let mut iterator = request
            .send()
            .await
            .map_err(|e| sdk_failure("GetShardIterator", &e))?
            .shard_iterator;
        let mut out = Vec::new();
        for _ in 0..REPLAY_CALLS {
            let Some(it) = iterator.take() else { break };
            let page = self
                .client
                .get_records()
                .stream_arn(stream_arn)
                .shard_iterator(it)
                .limit(10_000)
                .send()
                .await
                .map_err(|e| sdk_failure("GetRecords", &e))?;
            let empty = page.records().is_empty();
            for record in page.records() {
                let seq = record.sequence_number();
                if until.is_some_and(|u| compare_seq(seq, u).is_ge()) {
                    return Ok(out);
                }
                out.push(ReplayRecord {
                    sequence_number: seq.to_string(),
                    partition_key: record.partition_key().unwrap_or_default().to_string(),
                    data: record.data().as_ref().to_vec(),
                });
            }
            // Caught up: nothing more now (`until` not met means it is not in the stream
            // yet, which cannot happen for a record Lambda delivered; stop anyway).
            if empty && page.millis_behind_latest().is_none_or(|m| m == 0) {
                break;
            }
            iterator = page.next_shard_iterator;
        }
        Ok(out)
    }
}
