//! One shard of a delivery: reads records, buffers them as NDJSON lines, and writes a gzip
//! object when the buffer is full or old enough, like Firehose.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};

use super::spec::{Delivery, Source};
use super::{ArchiveConfig, ArchiveStats};
use crate::event_sources::stream_reader::StreamApi;
use crate::event_sources::{ERROR_PAUSE, RecordBody, StreamRecord, filter_matches};
use crate::s3::S3;

/// Poll interval of a shard that returned nothing.
const IDLE_POLL: Duration = Duration::from_millis(250);

/// gzip of `bytes`.
pub fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).context("gzip")?;
    encoder.finish().context("gzip")
}

/// Firehose's object key: the prefix with its `!{timestamp:...}` expressions evaluated at
/// `oldest` (the oldest record of the batch), then
/// `<stream>-1-<YYYY-MM-DD-HH-MM-SS of written>-<uuid>.gz`.
pub fn object_key(
    prefix: &str,
    stream: &str,
    oldest: DateTime<Utc>,
    written: DateTime<Utc>,
) -> String {
    let mut expanded = String::new();
    let mut rest = prefix;
    while let Some(start) = rest.find("!{timestamp:") {
        expanded.push_str(&rest[..start]);
        let after = &rest[start + "!{timestamp:".len()..];
        let Some(end) = after.find('}') else {
            rest = after;
            break;
        };
        // Java's date pattern letters as chrono's.
        let format = after[..end]
            .replace("yyyy", "%Y")
            .replace("MM", "%m")
            .replace("dd", "%d")
            .replace("HH", "%H");
        expanded.push_str(&oldest.format(&format).to_string());
        rest = &after[end + 1..];
    }
    expanded.push_str(rest);
    format!(
        "{expanded}{stream}-1-{}-{}.gz",
        written.format("%Y-%m-%d-%H-%M-%S"),
        uuid::Uuid::new_v4()
    )
}

/// A shard of a delivery's source.
pub(super) struct Shard {
    pub(super) delivery: Delivery,
    pub(super) shard_id: String,
    pub(super) api: Arc<StreamApi>,
    pub(super) s3: S3,
    pub(super) config: ArchiveConfig,
    pub(super) stats: Arc<ArchiveStats>,
    pub(super) idle: Arc<AtomicBool>,
}

/// Records waiting to be written.
#[derive(Default)]
struct Buffer {
    lines: Vec<u8>,
    records: u64,
    since: Option<Instant>,
    oldest: Option<f64>,
}

impl Shard {
    /// The line Firehose writes for a record (its data, then the delimiter), or None when
    /// the pipe's filters drop it.
    fn line(&self, record: &StreamRecord) -> Option<Vec<u8>> {
        match (&record.body, &self.delivery.source) {
            (RecordBody::Kinesis { data, .. }, _) => {
                let mut line = data.clone();
                line.push(b'\n');
                Some(line)
            }
            (
                RecordBody::DynamoDb(value),
                Source::DynamoDbStream {
                    stream_arn,
                    filters,
                },
            ) => {
                if !filters.is_empty() && !filters.iter().any(|f| filter_matches(f, value)) {
                    return None;
                }
                let mut value: Value = value.clone();
                if let Some(fields) = value.as_object_mut() {
                    fields.insert("eventSourceARN".to_string(), json!(stream_arn));
                }
                let mut line = value.to_string().into_bytes();
                line.push(b'\n');
                Some(line)
            }
            (RecordBody::DynamoDb(_), Source::Kinesis { .. }) => None,
        }
    }

    /// Writes one object; retried until S3 takes it, as Firehose does.
    async fn put(&self, body: &[u8], oldest: DateTime<Utc>) {
        loop {
            let key = object_key(
                &self.delivery.prefix,
                &self.delivery.name,
                oldest,
                Utc::now(),
            );
            match self
                .s3
                .put_object(&self.delivery.bucket, &key, body.to_vec())
                .await
            {
                Ok(()) => return,
                Err(err) => {
                    tracing::warn!(delivery = %self.delivery.logical_id, error = %format!("{err:#}"), "archive object not written; retrying");
                    tokio::time::sleep(ERROR_PAUSE).await;
                }
            }
        }
    }

    async fn flush(&self, buffer: &mut Buffer, batch: &mut u32) {
        let taken = std::mem::take(buffer);
        let oldest = taken
            .oldest
            .and_then(|s| DateTime::from_timestamp_millis((s * 1000.0) as i64))
            .unwrap_or_else(Utc::now);
        let body = match gzip(&taken.lines) {
            Ok(body) => body,
            Err(err) => {
                tracing::error!(error = %format!("{err:#}"), "archive batch not compressed; dropped");
                return;
            }
        };
        *batch += 1;
        let copies = match self.config.redeliver_every {
            Some(n) if (*batch).is_multiple_of(n) => 2,
            _ => 1,
        };
        for _ in 0..copies {
            self.put(&body, oldest).await;
            self.stats.objects.fetch_add(1, Ordering::SeqCst);
            self.stats
                .records
                .fetch_add(taken.records, Ordering::SeqCst);
        }
        if copies > 1 {
            self.stats
                .redelivered_batches
                .fetch_add(1, Ordering::SeqCst);
        }
        tracing::debug!(delivery = %self.delivery.logical_id, shard = %self.shard_id, records = taken.records, copies, "archive batch written");
    }

    /// Reads the shard until it closes (or the task is aborted).
    pub(super) async fn run(self, first_iterator: String) {
        let mut iterator = Some(first_iterator);
        let mut last_sequence: Option<String> = None;
        let mut buffer = Buffer::default();
        let mut batch = 0u32;
        loop {
            let fetched = match self.api.get_records(&mut iterator, 1000).await {
                Ok(fetched) => fetched,
                Err(err) => {
                    tracing::warn!(delivery = %self.delivery.logical_id, shard = %self.shard_id, error = %format!("{err:#}"), "archive read failed; resuming");
                    tokio::time::sleep(ERROR_PAUSE).await;
                    iterator = self
                        .api
                        .iterator(&self.shard_id, "TRIM_HORIZON", last_sequence.as_deref())
                        .await
                        .ok();
                    continue;
                }
            };
            for record in &fetched.records {
                last_sequence = Some(record.sequence_number.clone());
                if let Some(line) = self.line(record) {
                    buffer.lines.extend(line);
                    buffer.records += 1;
                    buffer.since.get_or_insert_with(Instant::now);
                    buffer.oldest.get_or_insert(record.arrival_epoch_seconds);
                }
            }
            let due = buffer.records as usize >= self.config.buffer_records
                || buffer
                    .since
                    .is_some_and(|since| since.elapsed() >= self.config.buffer_interval);
            if due {
                self.flush(&mut buffer, &mut batch).await;
            }
            self.idle
                .store(buffer.records == 0 && fetched.caught_up, Ordering::SeqCst);
            if fetched.closed && buffer.records == 0 {
                return;
            }
            if fetched.records.is_empty() {
                tokio::time::sleep(IDLE_POLL).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_firehose_keys_partitioned_by_the_oldest_record() {
        let oldest = DateTime::parse_from_rfc3339("2026-11-30T23:59:59Z")
            .unwrap()
            .with_timezone(&Utc);
        let written = DateTime::parse_from_rfc3339("2026-12-01T00:00:01Z")
            .unwrap()
            .with_timezone(&Utc);
        let key = object_key(
            "readings/dt=!{timestamp:yyyy-MM-dd}/",
            "vitals-local-ReadingsArchive",
            oldest,
            written,
        );
        let expected = "readings/dt=2026-11-30/vitals-local-ReadingsArchive-1-2026-12-01-00-00-01-";
        assert!(key.starts_with(expected), "{key}");
        assert!(key.ends_with(".gz"));
        assert_eq!(key.len(), expected.len() + 36 + 3);
    }

    #[test]
    fn gzip_round_trips() {
        use std::io::Read;
        let body = gzip(b"{\"a\":1}\n{\"a\":2}\n").unwrap();
        let mut text = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "{\"a\":1}\n{\"a\":2}\n");
    }
}
