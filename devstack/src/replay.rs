//! `devstack replay` (issue 16): re-runs the batches whose retries ran out.
//!
//! When detect fails a batch past its retries, Lambda sends the batch's coordinates
//! (`KinesisBatchInfo`: shard, first and last sequence number) to `DetectFailureQueue`, and
//! the readings stay on the stream for its retention (24 h by default). Once the cause is
//! fixed, each such message is replayed: the shard's records from the first to the last
//! sequence number are read back (`GetShardIterator` `AT_SEQUENCE_NUMBER` + `GetRecords`),
//! handed to detect as one Kinesis event through the Lambda Invoke API, and the message is
//! deleted when detect took every record (no function error, no `batchItemFailures`).
//! Detect is idempotent per record, so a record it had already handled is a no-op.
//!
//! Other messages (detect's own `PoisonRecord` reports: a payload that does not decode)
//! are left in the queue: replaying them would fail the same way.

use anyhow::{Context, Result, bail};
use aws_sdk_kinesis::types::ShardIteratorType;
use serde_json::Value;

use crate::event_sources::{RecordBody, StreamRecord, stream_event};

/// Where the replay reads and sends.
#[derive(Debug, Clone)]
pub struct ReplayTarget {
    /// SDK configuration of the emulator (or AWS).
    pub sdk_config: aws_config::SdkConfig,
    /// URL of DetectFailureQueue.
    pub queue_url: String,
    /// The Lambda service API (`devstack up` serves it).
    pub lambda_url: String,
    /// The function to replay into.
    pub function: String,
}

/// What one replay did.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayReport {
    /// Batch messages replayed and deleted.
    pub replayed: usize,
    /// Records handed to the function.
    pub records: usize,
    /// Messages left in the queue, with why.
    pub left: Vec<String>,
}

/// Sequence numbers are decimal strings (56 digits on Kinesis, more than a u128 holds):
/// compared by value, that is by length, then digit by digit.
fn seq_le(a: &str, b: &str) -> bool {
    (a.len(), a) <= (b.len(), b)
}

/// The shard range a failure message names: (stream ARN, shard, first, last).
fn batch_range(body: &str) -> Result<(String, String, String, String)> {
    let value: Value = serde_json::from_str(body).context("the message is not JSON")?;
    let Some(info) = value.get("KinesisBatchInfo") else {
        bail!(
            "not a batch (kind {})",
            value
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
        );
    };
    let field = |name: &str| {
        info.get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
            .with_context(|| format!("KinesisBatchInfo.{name} missing"))
    };
    Ok((
        field("streamArn")?,
        field("shardId")?,
        field("startSequenceNumber")?,
        field("endSequenceNumber")?,
    ))
}

/// The records of `shard` from `first` to `last` (inclusive).
async fn read_range(
    kinesis: &aws_sdk_kinesis::Client,
    stream_arn: &str,
    shard: &str,
    first: &str,
    last: &str,
) -> Result<Vec<StreamRecord>> {
    // By name: moto's iterators of a GetShardIterator by ARN do not resolve.
    let stream_name = crate::event_sources::stream_name_from_arn(stream_arn)?;
    let mut iterator = kinesis
        .get_shard_iterator()
        .stream_name(stream_name)
        .shard_id(shard)
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .starting_sequence_number(first)
        .send()
        .await
        .context("GetShardIterator")?
        .shard_iterator
        .context("GetShardIterator returned no iterator")?;
    let mut records = Vec::new();
    // Bounded: a range holds at most one batch (10,000 records).
    for _ in 0..100 {
        let out = kinesis
            .get_records()
            .shard_iterator(&iterator)
            .limit(1_000)
            .send()
            .await
            .context("GetRecords")?;
        let page = out.records();
        for record in page {
            if !seq_le(record.sequence_number(), last) {
                return Ok(records);
            }
            records.push(StreamRecord {
                sequence_number: record.sequence_number().to_string(),
                arrival_epoch_seconds: record
                    .approximate_arrival_timestamp()
                    .map(|t| t.as_secs_f64())
                    .unwrap_or(0.0),
                body: RecordBody::Kinesis {
                    partition_key: record.partition_key().unwrap_or_default().to_string(),
                    data: record.data().as_ref().to_vec(),
                },
            });
        }
        let caught_up = out.millis_behind_latest() == Some(0) && page.is_empty();
        match out.next_shard_iterator {
            Some(next) if !caught_up => iterator = next,
            _ => break,
        }
    }
    Ok(records)
}

/// Replays up to `max_messages` batch messages of the queue (see the module docs).
pub async fn replay(target: &ReplayTarget, max_messages: usize) -> Result<ReplayReport> {
    let sqs = aws_sdk_sqs::Client::new(&target.sdk_config);
    let kinesis = aws_sdk_kinesis::Client::new(&target.sdk_config);
    let http = reqwest::Client::new();
    let mut report = ReplayReport::default();
    let mut seen = 0;
    while seen < max_messages {
        let received = sqs
            .receive_message()
            .queue_url(&target.queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(60)
            .send()
            .await
            .context("ReceiveMessage")?;
        let messages = received.messages();
        if messages.is_empty() {
            break;
        }
        for message in messages {
            seen += 1;
            let id = message.message_id().unwrap_or("?").to_string();
            let range = batch_range(message.body().unwrap_or(""));
            let (stream_arn, shard, first, last) = match range {
                Ok(range) => range,
                Err(err) => {
                    report.left.push(format!("{id}: {err:#}"));
                    continue;
                }
            };
            let records = read_range(&kinesis, &stream_arn, &shard, &first, &last).await?;
            if records.is_empty() {
                report.left.push(format!(
                    "{id}: no record of {shard} {first}..{last} is still on the stream"
                ));
                continue;
            }
            let account = stream_arn.split(':').nth(4).unwrap_or("000000000000");
            let event = stream_event(&records, &shard, &stream_arn, account);
            let url = format!(
                "{}/2015-03-31/functions/{}/invocations",
                target.lambda_url.trim_end_matches('/'),
                target.function
            );
            let response = http
                .post(&url)
                .json(&event)
                .send()
                .await
                .with_context(|| format!("POST {url}"))?;
            let failed = response.headers().contains_key("x-amz-function-error");
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let item_failures = body
                .get("batchItemFailures")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            if !status.is_success() || failed || item_failures > 0 {
                report.left.push(format!(
                    "{id}: {} failed again ({status}, {item_failures} item failures): {body}",
                    target.function
                ));
                continue;
            }
            if let Some(handle) = message.receipt_handle() {
                sqs.delete_message()
                    .queue_url(&target.queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .context("DeleteMessage")?;
            }
            report.replayed += 1;
            report.records += records.len();
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_compare_by_value() {
        assert!(seq_le("9", "10"));
        assert!(!seq_le("10", "9"));
        assert!(seq_le(
            "49590000000000000000000000000000000000000000000000000001",
            "49590000000000000000000000000000000000000000000000000002"
        ));
    }

    #[test]
    fn only_batch_messages_have_a_range() {
        let batch = r#"{"KinesisBatchInfo":{"streamArn":"arn:s","shardId":"shardId-0","startSequenceNumber":"1","endSequenceNumber":"4"}}"#;
        assert_eq!(
            batch_range(batch).unwrap(),
            (
                "arn:s".to_string(),
                "shardId-0".to_string(),
                "1".to_string(),
                "4".to_string()
            )
        );
        let poison = r#"{"kind":"PoisonRecord","data":"e30="}"#;
        assert!(
            batch_range(poison)
                .unwrap_err()
                .to_string()
                .contains("PoisonRecord")
        );
        assert!(batch_range("not json").is_err());
    }
}
