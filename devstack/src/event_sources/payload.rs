//! The JSON Lambda hands to a function for a batch (Kinesis, DynamoDB stream and SQS events)
//! and the record it sends to a stream mapping's OnFailure destination.

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::template::REGION;

/// What a shard record carries.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordBody {
    /// A Kinesis record.
    Kinesis {
        /// Partition key.
        partition_key: String,
        /// Payload.
        data: Vec<u8>,
    },
    /// A DynamoDB stream record, as Lambda's event shows it (without `eventSourceARN`).
    DynamoDb(Value),
}

/// A record read from a shard of a Kinesis stream or a DynamoDB stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRecord {
    /// Sequence number.
    pub sequence_number: String,
    /// Approximate arrival (Kinesis) or creation (DynamoDB), epoch seconds.
    pub arrival_epoch_seconds: f64,
    /// The record itself.
    pub body: RecordBody,
}

impl StreamRecord {
    /// The record as Lambda puts it in the event.
    fn lambda_record(&self, shard_id: &str, source_arn: &str, account_id: &str) -> Value {
        match &self.body {
            RecordBody::Kinesis {
                partition_key,
                data,
            } => json!({
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": partition_key,
                    "sequenceNumber": self.sequence_number,
                    "data": base64::engine::general_purpose::STANDARD.encode(data),
                    "approximateArrivalTimestamp": self.arrival_epoch_seconds,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": format!("{shard_id}:{}", self.sequence_number),
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": format!("arn:aws:iam::{account_id}:role/devstack"),
                "awsRegion": REGION,
                "eventSourceARN": source_arn,
            }),
            RecordBody::DynamoDb(record) => {
                let mut record = record.clone();
                if let Some(fields) = record.as_object_mut() {
                    fields.insert("eventSourceARN".to_string(), json!(source_arn));
                }
                record
            }
        }
    }
}

/// Lambda's event for a batch of one shard (Kinesis or DynamoDB stream).
pub fn stream_event(
    records: &[StreamRecord],
    shard_id: &str,
    source_arn: &str,
    account_id: &str,
) -> Value {
    let records: Vec<Value> = records
        .iter()
        .map(|r| r.lambda_record(shard_id, source_arn, account_id))
        .collect();
    json!({ "Records": records })
}

fn iso8601_from_epoch(seconds: f64) -> String {
    let millis = (seconds * 1000.0).round() as i64;
    chrono::DateTime::from_timestamp_millis(millis)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Lambda's on-failure destination record for a batch of a stream: `KinesisBatchInfo` or
/// `DDBStreamBatchInfo`, by the kind of the records.
pub fn stream_failure_record(
    records: &[StreamRecord],
    shard_id: &str,
    stream_arn: &str,
    function_arn: &str,
    condition: &str,
    invoke_count: u32,
    function_error: &str,
) -> Value {
    let first = records.first();
    let last = records.last();
    let info_key = match first.map(|r| &r.body) {
        Some(RecordBody::DynamoDb(_)) => "DDBStreamBatchInfo",
        _ => "KinesisBatchInfo",
    };
    json!({
        "requestContext": {
            "requestId": uuid::Uuid::new_v4().to_string(),
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": invoke_count,
        },
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": function_error,
        },
        "version": "1.0",
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        info_key: {
            "shardId": shard_id,
            "startSequenceNumber": first.map(|r| r.sequence_number.clone()),
            "endSequenceNumber": last.map(|r| r.sequence_number.clone()),
            "approximateArrivalOfFirstRecord": first.map(|r| iso8601_from_epoch(r.arrival_epoch_seconds)),
            "approximateArrivalOfLastRecord": last.map(|r| iso8601_from_epoch(r.arrival_epoch_seconds)),
            "batchSize": records.len(),
            "streamArn": stream_arn,
        }
    })
}

/// Lambda's SQS event for received messages.
pub fn sqs_event(messages: &[aws_sdk_sqs::types::Message], queue_arn: &str) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attributes: Map<String, Value> = m
                .attributes()
                .map(|attrs| {
                    attrs
                        .iter()
                        .map(|(k, v)| (k.as_str().to_string(), Value::String(v.clone())))
                        .collect()
                })
                .unwrap_or_default();
            let message_attributes: Map<String, Value> = m
                .message_attributes()
                .map(|attrs| {
                    attrs
                        .iter()
                        .map(|(name, a)| {
                            let b64 = |b: &aws_sdk_sqs::primitives::Blob| {
                                Value::String(base64::engine::general_purpose::STANDARD.encode(b.as_ref()))
                            };
                            (
                                name.clone(),
                                json!({
                                    "stringValue": a.string_value(),
                                    "binaryValue": a.binary_value().map(b64),
                                    "stringListValues": a.string_list_values(),
                                    "binaryListValues": a.binary_list_values().iter().map(b64).collect::<Vec<_>>(),
                                    "dataType": a.data_type(),
                                }),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body().unwrap_or_default(),
                "attributes": attributes,
                "messageAttributes": message_attributes,
                "md5OfBody": m.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            })
        })
        .collect();
    json!({ "Records": records })
}
