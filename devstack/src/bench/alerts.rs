//! The alerts the bench waits for: every `AlertRaised` (and `NotificationSent`) read from
//! the events table's DynamoDB stream, with the time the emulator stored it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use devstack::Stack;

/// Records per GetRecords of the alert watcher, and its pause after a partial page.
const STREAM_PAGE: usize = 1000;
const STREAM_POLL: Duration = Duration::from_millis(250);

/// An `AlertRaised` seen in the events table's stream.
#[derive(Debug, Clone)]
pub(super) struct SeenAlert {
    /// The alert's id (its `NotificationSent` events name it).
    pub(super) alert_id: String,
    /// When the emulator stored it (the stream record's ApproximateCreationDateTime).
    pub(super) stored: DateTime<Utc>,
    /// The envelope's `timestamp`: the start of the detect invocation that raised it.
    pub(super) raised: DateTime<Utc>,
}

/// The first `AlertRaised` of each (patient, rule), filled by [`watch_alerts`].
#[derive(Debug, Clone, Default)]
pub(super) struct Alerts(
    Arc<Mutex<HashMap<(String, String), SeenAlert>>>,
    /// When the first `NotificationSent` of each alert id was stored (the load bench).
    Arc<Mutex<HashMap<String, DateTime<Utc>>>>,
);

impl Alerts {
    pub(super) fn get(&self, patient: &str, rule: &str) -> Option<SeenAlert> {
        self.0
            .lock()
            .expect("alerts lock")
            .get(&(patient.to_string(), rule.to_string()))
            .cloned()
    }

    /// When the first `NotificationSent` of `alert_id` was stored.
    pub(super) fn notified(&self, alert_id: &str) -> Option<DateTime<Utc>> {
        self.1.lock().expect("alerts lock").get(alert_id).copied()
    }

    fn record_notification(&self, alert_id: String, stored: DateTime<Utc>) {
        self.1
            .lock()
            .expect("alerts lock")
            .entry(alert_id)
            .or_insert(stored);
    }

    pub(super) fn record(&self, patient: String, rule: String, alert: SeenAlert) {
        self.0
            .lock()
            .expect("alerts lock")
            .entry((patient, rule))
            .or_insert(alert);
    }
}

/// Reads the events table's DynamoDB stream from its start, forever (abort the task to stop),
/// recording every `AlertRaised`.
pub(super) async fn watch_alerts(
    stack: &Stack,
    alerts: Alerts,
) -> Result<tokio::task::JoinHandle<()>> {
    use aws_sdk_dynamodbstreams::types::ShardIteratorType;

    let table = stack.resource("EventsTable")?.ref_value.clone();
    let dynamodb = aws_sdk_dynamodb::Client::new(stack.sdk_config());
    let stream_arn = dynamodb
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .with_context(|| format!("DescribeTable {table}"))?
        .table
        .and_then(|t| t.latest_stream_arn)
        .with_context(|| format!("table {table} has no stream"))?;
    let streams = aws_sdk_dynamodbstreams::Client::new(stack.sdk_config());
    let shards: Vec<String> = streams
        .describe_stream()
        .stream_arn(&stream_arn)
        .send()
        .await
        .with_context(|| format!("DescribeStream {stream_arn}"))?
        .stream_description
        .map(|d| {
            d.shards()
                .iter()
                .filter_map(|s| s.shard_id().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if shards.is_empty() {
        bail!("stream {stream_arn} has no shard");
    }
    Ok(tokio::spawn(async move {
        // Per shard: the current iterator and the last sequence number read.
        let mut cursors: Vec<(String, Option<String>, Option<String>)> =
            shards.into_iter().map(|s| (s, None, None)).collect();
        loop {
            // Poll again at once only after a full page, so the reader adds little load to
            // the emulator (whose DynamoDB requests are serialised) while alerts are raised.
            let mut full_page = false;
            for (shard, iterator, last) in &mut cursors {
                if iterator.is_none() {
                    let request = streams
                        .get_shard_iterator()
                        .stream_arn(&stream_arn)
                        .shard_id(shard.as_str());
                    let request = match last {
                        Some(sequence) => request
                            .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                            .sequence_number(sequence.as_str()),
                        None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
                    };
                    match request.send().await {
                        Ok(out) => *iterator = out.shard_iterator,
                        Err(err) => {
                            tracing::warn!(%shard, "bench: GetShardIterator failed: {err}");
                            continue;
                        }
                    }
                }
                let Some(current) = iterator.clone() else {
                    continue;
                };
                match streams
                    .get_records()
                    .shard_iterator(current)
                    .limit(STREAM_PAGE as i32)
                    .send()
                    .await
                {
                    Ok(out) => {
                        *iterator = out.next_shard_iterator;
                        let records = out.records.unwrap_or_default();
                        full_page |= records.len() >= STREAM_PAGE;
                        for record in records {
                            let Some(change) = record.dynamodb else {
                                continue;
                            };
                            last.clone_from(&change.sequence_number);
                            let (Some(created), Some(image)) =
                                (change.approximate_creation_date_time, change.new_image)
                            else {
                                continue;
                            };
                            let Ok(Some(event)) = aws_adapters::event_from_stream_image(
                                serde_dynamo::Item::from(image),
                            ) else {
                                continue;
                            };
                            let data = &event.event.data;
                            let Some(stored) =
                                DateTime::from_timestamp(created.secs(), created.subsec_nanos())
                            else {
                                continue;
                            };
                            let alert_id = data["alertId"].as_str().unwrap_or_default();
                            if event.event.event_type == "NotificationSent" {
                                alerts.record_notification(alert_id.to_string(), stored);
                                continue;
                            }
                            if event.event.event_type != "AlertRaised" {
                                continue;
                            }
                            let (Some(patient), Some(rule)) =
                                (data["patientId"].as_str(), data["ruleId"].as_str())
                            else {
                                continue;
                            };
                            alerts.record(
                                patient.to_string(),
                                rule.to_string(),
                                SeenAlert {
                                    alert_id: alert_id.to_string(),
                                    stored,
                                    raised: event.event.timestamp,
                                },
                            );
                        }
                    }
                    Err(err) => {
                        tracing::warn!(%shard, "bench: GetRecords failed: {err}");
                        *iterator = None;
                    }
                }
            }
            if !full_page {
                tokio::time::sleep(STREAM_POLL).await;
            }
        }
    }))
}

/// Prints progress to stderr every 10 s while waiting for `pending` alerts.
pub(super) async fn wait_for_alerts(
    label: &str,
    alerts: &Alerts,
    pending: &[(String, &'static str)],
    deadline: tokio::time::Instant,
) {
    let mut last_report = tokio::time::Instant::now();
    loop {
        let missing = pending
            .iter()
            .filter(|(p, r)| alerts.get(p, r).is_none())
            .count();
        if missing == 0 || tokio::time::Instant::now() >= deadline {
            return;
        }
        if last_report.elapsed() >= Duration::from_secs(10) {
            eprintln!(
                "    {label}: {}/{} alerts stored, waiting up to {:.0} s more",
                pending.len() - missing,
                pending.len(),
                deadline
                    .saturating_duration_since(tokio::time::Instant::now())
                    .as_secs_f64()
            );
            last_report = tokio::time::Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
