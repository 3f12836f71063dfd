//! Reading the shards of a Kinesis stream or a DynamoDB stream: shard ids, shard iterators
//! and GetRecords, turned into [`StreamRecord`]s.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde_json::{Map, json};

use super::payload::{RecordBody, StreamRecord};
use crate::template::REGION;

/// The stream API of a mapping.
pub(crate) enum StreamApi {
    /// A Kinesis stream.
    Kinesis {
        client: aws_sdk_kinesis::Client,
        stream_name: String,
    },
    /// A DynamoDB stream.
    DynamoDb {
        client: aws_sdk_dynamodbstreams::Client,
        stream_arn: String,
    },
}

/// Stream name from a stream ARN (`arn:aws:kinesis:REGION:ACCOUNT:stream/NAME`).
pub fn stream_name_from_arn(arn: &str) -> Result<String> {
    arn.rsplit_once(":stream/")
        .map(|(_, name)| name.to_string())
        .filter(|n| !n.is_empty())
        .with_context(|| format!("{arn} is not a Kinesis stream ARN"))
}

pub(super) fn now_epoch_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// Result of one GetRecords.
pub(crate) struct Fetched {
    pub(crate) records: Vec<StreamRecord>,
    pub(crate) caught_up: bool,
    pub(crate) closed: bool,
}

/// Lambda's view of a DynamoDB stream record (without `eventSourceARN`).
fn dynamodb_record(record: aws_sdk_dynamodbstreams::types::Record) -> Result<StreamRecord> {
    let item = |image: Option<HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>>| {
        image.map(|image| serde_json::to_value(serde_dynamo::Item::from(image)))
    };
    let change = record.dynamodb.context("stream record without dynamodb")?;
    let sequence_number = change
        .sequence_number
        .clone()
        .context("stream record without SequenceNumber")?;
    let created = change
        .approximate_creation_date_time
        .map(|t| t.as_secs_f64())
        .unwrap_or_else(now_epoch_seconds);
    let mut dynamodb = Map::new();
    dynamodb.insert("ApproximateCreationDateTime".into(), json!(created));
    for (key, image) in [
        ("Keys", item(change.keys)),
        ("NewImage", item(change.new_image)),
        ("OldImage", item(change.old_image)),
    ] {
        if let Some(image) = image {
            dynamodb.insert(key.into(), image.context("stream record image")?);
        }
    }
    dynamodb.insert("SequenceNumber".into(), json!(sequence_number));
    dynamodb.insert("SizeBytes".into(), json!(change.size_bytes));
    if let Some(view) = &change.stream_view_type {
        dynamodb.insert("StreamViewType".into(), json!(view.as_str()));
    }
    Ok(StreamRecord {
        sequence_number,
        arrival_epoch_seconds: created,
        body: RecordBody::DynamoDb(json!({
            "eventID": record.event_id,
            "eventName": record.event_name.as_ref().map(|n| n.as_str()),
            "eventVersion": record.event_version,
            "eventSource": "aws:dynamodb",
            "awsRegion": REGION,
            "dynamodb": dynamodb,
        })),
    })
}

impl StreamApi {
    /// The shards of the stream.
    pub(crate) async fn shard_ids(&self) -> Result<Vec<String>> {
        let mut shard_ids = Vec::new();
        match self {
            StreamApi::Kinesis {
                client,
                stream_name,
            } => {
                let mut next_token: Option<String> = None;
                loop {
                    let mut request = client.list_shards();
                    request = match &next_token {
                        Some(token) => request.next_token(token),
                        None => request.stream_name(stream_name),
                    };
                    let page = request
                        .send()
                        .await
                        .with_context(|| format!("ListShards {stream_name}"))?;
                    shard_ids.extend(page.shards().iter().map(|s| s.shard_id().to_string()));
                    match page.next_token {
                        Some(token) if !token.is_empty() => next_token = Some(token),
                        _ => break,
                    }
                }
            }
            StreamApi::DynamoDb { client, stream_arn } => {
                let arn = stream_arn;
                let mut start: Option<String> = None;
                loop {
                    let description = client
                        .describe_stream()
                        .stream_arn(arn)
                        .set_exclusive_start_shard_id(start.clone())
                        .send()
                        .await
                        .with_context(|| format!("DescribeStream {arn}"))?
                        .stream_description
                        .with_context(|| format!("DescribeStream {arn}: no description"))?;
                    shard_ids.extend(
                        description
                            .shards()
                            .iter()
                            .filter_map(|s| s.shard_id().map(str::to_string)),
                    );
                    match description.last_evaluated_shard_id {
                        Some(last) if !last.is_empty() => start = Some(last),
                        _ => break,
                    }
                }
            }
        }
        Ok(shard_ids)
    }

    /// A shard iterator at `position` (TRIM_HORIZON or LATEST), or right after `after`.
    pub(crate) async fn iterator(
        &self,
        shard_id: &str,
        position: &str,
        after: Option<&str>,
    ) -> Result<String> {
        let iterator = match self {
            StreamApi::Kinesis {
                client,
                stream_name,
            } => {
                use aws_sdk_kinesis::types::ShardIteratorType;
                let request = client
                    .get_shard_iterator()
                    .stream_name(stream_name)
                    .shard_id(shard_id);
                let request = match after {
                    Some(sequence) => request
                        .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                        .starting_sequence_number(sequence),
                    None => request.shard_iterator_type(ShardIteratorType::from(position)),
                };
                request
                    .send()
                    .await
                    .with_context(|| format!("GetShardIterator {stream_name} {shard_id}"))?
                    .shard_iterator
            }
            StreamApi::DynamoDb { client, stream_arn } => {
                use aws_sdk_dynamodbstreams::types::ShardIteratorType;
                let request = client
                    .get_shard_iterator()
                    .stream_arn(stream_arn)
                    .shard_id(shard_id);
                let request = match after {
                    Some(sequence) => request
                        .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                        .sequence_number(sequence),
                    None => request.shard_iterator_type(ShardIteratorType::from(position)),
                };
                request
                    .send()
                    .await
                    .with_context(|| format!("GetShardIterator {stream_arn} {shard_id}"))?
                    .shard_iterator
            }
        };
        iterator.with_context(|| format!("GetShardIterator {shard_id}: no iterator"))
    }

    /// One GetRecords at `iterator` (advanced to the next one; None once the shard is closed).
    pub(crate) async fn get_records(
        &self,
        iterator: &mut Option<String>,
        limit: usize,
    ) -> Result<Fetched> {
        let Some(current) = iterator.as_ref() else {
            return Ok(Fetched {
                records: Vec::new(),
                caught_up: true,
                closed: true,
            });
        };
        let (records, next, behind) = match self {
            StreamApi::Kinesis { client, .. } => {
                let output = client
                    .get_records()
                    .shard_iterator(current)
                    .limit(i32::try_from(limit.min(10_000)).unwrap_or(10_000))
                    .send()
                    .await
                    .context("GetRecords")?;
                let records: Vec<StreamRecord> = output
                    .records
                    .into_iter()
                    .map(|r| StreamRecord {
                        arrival_epoch_seconds: r
                            .approximate_arrival_timestamp
                            .map(|t| t.as_secs_f64())
                            .unwrap_or_else(now_epoch_seconds),
                        sequence_number: r.sequence_number,
                        body: RecordBody::Kinesis {
                            partition_key: r.partition_key.unwrap_or_default(),
                            data: r.data.into_inner(),
                        },
                    })
                    .collect();
                (
                    records,
                    output.next_shard_iterator,
                    output.millis_behind_latest.unwrap_or(0),
                )
            }
            StreamApi::DynamoDb { client, .. } => {
                let output = client
                    .get_records()
                    .shard_iterator(current)
                    .limit(i32::try_from(limit.min(1_000)).unwrap_or(1_000))
                    .send()
                    .await
                    .context("GetRecords")?;
                let records = output
                    .records
                    .unwrap_or_default()
                    .into_iter()
                    .map(dynamodb_record)
                    .collect::<Result<Vec<_>>>()?;
                (records, output.next_shard_iterator, 0)
            }
        };
        *iterator = next;
        let caught_up = records.is_empty() && behind == 0;
        Ok(Fetched {
            caught_up,
            closed: iterator.is_none(),
            records,
        })
    }
}
