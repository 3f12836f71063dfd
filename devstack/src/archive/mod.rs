//! The archive's deliveries played locally (issue 14, docs/archive.md). On AWS, Firehose
//! reads the readings stream (`ReadingsArchive`) and an EventBridge pipe puts the events
//! table's stream on a DirectPut Firehose (`EventsArchive`); the emulator runs neither. Here
//! one task per shard reads the same stream and writes what Firehose writes to the
//! emulator's S3: gzip NDJSON objects (one record per line) under the delivery stream's
//! prefix, `<prefix>dt=YYYY-MM-DD/<stream>-1-<YYYY-MM-DD-HH-MM-SS>-<uuid>.gz`, buffered by
//! count and time like BufferingHints (shorter locally).
//!
//! - `spec`: the deliveries, read from the template (Firehose streams and pipes);
//! - `delivery`: a shard's buffer, its objects and their keys.
//!
//! Delivery is at least once, as Firehose's is: with [`ArchiveConfig::redeliver_every`] some
//! batches are written twice (a retried PutObject whose first attempt had succeeded), so a
//! test can prove that queries deduplicate.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::task::JoinHandle;

use crate::event_sources::stream_reader::StreamApi;
use crate::s3::S3;

mod delivery;
mod spec;

pub use delivery::{gzip, object_key};
pub use spec::{Delivery, Source, deliveries};

/// Environment variable that turns the archive's emulation on or off: `off`, `on`, or
/// `redeliver` (on, and every 2nd batch of each shard is written twice).
pub const ARCHIVE_ENV: &str = "DEVSTACK_ARCHIVE";

/// How the archive's deliveries are played.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveConfig {
    /// Play the deliveries at all (off by default in tests: two more stream readers).
    pub enabled: bool,
    /// Write a shard's buffer once its oldest record waited this long (Firehose:
    /// BufferingHints.IntervalInSeconds, 300 s in the template).
    pub buffer_interval: Duration,
    /// ... or once it holds this many records.
    pub buffer_records: usize,
    /// `Some(n)`: every n-th batch of each shard is written twice, as two objects.
    pub redeliver_every: Option<u32>,
}

impl ArchiveConfig {
    /// Not played.
    pub fn off() -> ArchiveConfig {
        ArchiveConfig {
            enabled: false,
            buffer_interval: Duration::from_secs(1),
            buffer_records: 500,
            redeliver_every: None,
        }
    }

    /// Played with a 1 s buffer, each batch written once.
    pub fn on() -> ArchiveConfig {
        ArchiveConfig {
            enabled: true,
            ..ArchiveConfig::off()
        }
    }

    /// Played, every `n`-th batch of each shard written twice.
    pub fn redelivering(n: u32) -> ArchiveConfig {
        ArchiveConfig {
            redeliver_every: Some(n.max(1)),
            ..ArchiveConfig::on()
        }
    }

    /// `off`, `on` or `redeliver` ([`ARCHIVE_ENV`]).
    pub fn parse(text: &str) -> Result<ArchiveConfig> {
        match text.trim().to_ascii_lowercase().as_str() {
            "off" | "0" | "false" => Ok(ArchiveConfig::off()),
            "on" | "1" | "true" => Ok(ArchiveConfig::on()),
            "redeliver" => Ok(ArchiveConfig::redelivering(2)),
            other => bail!("{ARCHIVE_ENV}={other:?}: expected off, on or redeliver"),
        }
    }

    /// [`ARCHIVE_ENV`] if set, else `default`.
    pub fn from_env_or(default: ArchiveConfig) -> Result<ArchiveConfig> {
        match std::env::var(ARCHIVE_ENV) {
            Ok(value) if !value.trim().is_empty() => ArchiveConfig::parse(&value),
            _ => Ok(default),
        }
    }
}

/// What the archive has written so far.
#[derive(Debug, Default)]
pub struct ArchiveStats {
    /// Objects written (redelivered copies included).
    pub objects: AtomicU64,
    /// Records written (a redelivered batch counts twice).
    pub records: AtomicU64,
    /// Batches written twice.
    pub redelivered_batches: AtomicU64,
}

/// The running deliveries of a stack.
#[derive(Debug)]
pub struct Archive {
    deliveries: Vec<Delivery>,
    idle: Vec<(String, Arc<AtomicBool>)>,
    tasks: Vec<JoinHandle<()>>,
    stats: Arc<ArchiveStats>,
}

/// Clients the deliveries read and write with.
pub struct ArchiveClients {
    /// Kinesis (readings stream).
    pub kinesis: aws_sdk_kinesis::Client,
    /// DynamoDB Streams (events table).
    pub dynamodb_streams: aws_sdk_dynamodbstreams::Client,
    /// S3 of the emulator.
    pub s3: S3,
}

impl Archive {
    /// Starts one task per shard of each delivery's source, reading from the start of the
    /// stream (the stack was just created).
    pub async fn start(
        config: &ArchiveConfig,
        deliveries: Vec<Delivery>,
        clients: ArchiveClients,
    ) -> Result<Archive> {
        let stats = Arc::new(ArchiveStats::default());
        let mut idle = Vec::new();
        let mut tasks = Vec::new();
        for delivery in &deliveries {
            let api = match &delivery.source {
                Source::Kinesis { stream_name } => StreamApi::Kinesis {
                    client: clients.kinesis.clone(),
                    stream_name: stream_name.clone(),
                },
                Source::DynamoDbStream { stream_arn, .. } => StreamApi::DynamoDb {
                    client: clients.dynamodb_streams.clone(),
                    stream_arn: stream_arn.clone(),
                },
            };
            let api = Arc::new(api);
            for shard_id in api
                .shard_ids()
                .await
                .with_context(|| delivery.name.clone())?
            {
                let iterator = api
                    .iterator(&shard_id, "TRIM_HORIZON", None)
                    .await
                    .with_context(|| format!("{} {shard_id}", delivery.name))?;
                let flag = Arc::new(AtomicBool::new(false));
                idle.push((format!("{}:{shard_id}", delivery.logical_id), flag.clone()));
                let shard = delivery::Shard {
                    delivery: delivery.clone(),
                    shard_id,
                    api: api.clone(),
                    s3: clients.s3.clone(),
                    config: config.clone(),
                    stats: stats.clone(),
                    idle: flag,
                };
                tasks.push(tokio::spawn(shard.run(iterator)));
            }
        }
        tracing::info!(
            deliveries = ?deliveries.iter().map(|d| d.logical_id.as_str()).collect::<Vec<_>>(),
            shards = tasks.len(),
            "archive deliveries played locally"
        );
        Ok(Archive {
            deliveries,
            idle,
            tasks,
            stats,
        })
    }

    /// The deliveries played.
    pub fn deliveries(&self) -> &[Delivery] {
        &self.deliveries
    }

    /// The bucket the deliveries write to (the first delivery's).
    pub fn bucket(&self) -> Option<&str> {
        self.deliveries.first().map(|d| d.bucket.as_str())
    }

    /// What was written so far.
    pub fn stats(&self) -> &ArchiveStats {
        &self.stats
    }

    /// Waits until every shard has caught up with its stream and written its buffer, twice
    /// in a row ~200 ms apart. Call it after `Stack::wait_idle`, so nothing new arrives.
    pub async fn wait_delivered(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut idle_once = false;
        loop {
            let busy: Vec<&str> = self
                .idle
                .iter()
                .filter(|(_, idle)| !idle.load(Ordering::SeqCst))
                .map(|(name, _)| name.as_str())
                .collect();
            if busy.is_empty() {
                if idle_once {
                    return Ok(());
                }
                idle_once = true;
            } else {
                idle_once = false;
            }
            if Instant::now() >= deadline {
                bail!("archive not delivered after {timeout:?}; busy: {busy:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops the tasks (what is still buffered is not written).
    pub async fn shutdown(mut self) {
        for task in &self.tasks {
            task.abort();
        }
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
    }
}

impl Drop for Archive {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_switch_reads_off_on_and_redeliver() {
        assert!(!ArchiveConfig::parse("off").unwrap().enabled);
        assert_eq!(ArchiveConfig::parse(" ON ").unwrap(), ArchiveConfig::on());
        let redeliver = ArchiveConfig::parse("redeliver").unwrap();
        assert!(redeliver.enabled);
        assert_eq!(redeliver.redeliver_every, Some(2));
        assert!(ArchiveConfig::parse("sometimes").is_err());
    }
}
