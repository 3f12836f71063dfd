//! Unit tests of the event sources: mappings, filters, event payloads and verdicts.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::*;
use crate::lambda::InvokeOutcome;

fn record(seq: &str) -> StreamRecord {
    StreamRecord {
        sequence_number: seq.to_string(),
        body: RecordBody::Kinesis {
            partition_key: "patient-1".to_string(),
            data: br#"{"hr":80}"#.to_vec(),
        },
        arrival_epoch_seconds: 1_700_000_000.25,
    }
}

fn dynamodb(seq: &str, event_name: &str, all_pk: &str) -> StreamRecord {
    StreamRecord {
        sequence_number: seq.to_string(),
        arrival_epoch_seconds: 1_700_000_000.0,
        body: RecordBody::DynamoDb(json!({
            "eventID": format!("e-{seq}"),
            "eventName": event_name,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": {
                "ApproximateCreationDateTime": 1_700_000_000.0,
                "Keys": {"streamId": {"S": "s-1"}, "version": {"N": "1"}},
                "NewImage": {"streamId": {"S": "s-1"}, "version": {"N": "1"}, "allPk": {"S": all_pk}},
                "SequenceNumber": seq,
                "SizeBytes": 50,
                "StreamViewType": "NEW_IMAGE",
            },
        })),
    }
}

#[test]
fn dynamodb_stream_event_deserializes_as_dynamodb_event() {
    let event = stream_event(
        &[dynamodb("11", "INSERT", "all")],
        "shardId-1",
        "arn:aws:dynamodb:us-east-1:1:table/t/stream/x",
        "1",
    );
    let parsed: aws_lambda_events::event::dynamodb::Event =
        serde_json::from_value(event).expect("valid DynamoDB event");
    let record = &parsed.records[0];
    assert_eq!(record.event_name, "INSERT");
    assert_eq!(record.change.sequence_number.as_deref(), Some("11"));
    assert_eq!(
        record.event_source_arn.as_deref(),
        Some("arn:aws:dynamodb:us-east-1:1:table/t/stream/x")
    );
    assert!(record.change.new_image.contains_key("allPk"));
}

#[test]
fn dynamodb_failure_record_has_ddb_stream_batch_info() {
    let value = stream_failure_record(
        &[
            dynamodb("3", "INSERT", "all"),
            dynamodb("4", "INSERT", "all"),
        ],
        "shardId-1",
        "arn:stream",
        "arn:function",
        "RetryAttemptsExhausted",
        6,
        "",
    );
    assert_eq!(value["DDBStreamBatchInfo"]["startSequenceNumber"], "3");
    assert_eq!(value["DDBStreamBatchInfo"]["endSequenceNumber"], "4");
    assert!(value.get("KinesisBatchInfo").is_none());
}

#[test]
fn filter_patterns_match_like_lambda_event_filtering() {
    let pattern =
        json!({"eventName": ["INSERT"], "dynamodb": {"NewImage": {"allPk": {"S": ["all"]}}}});
    let body = |r: StreamRecord| match r.body {
        RecordBody::DynamoDb(v) => v,
        RecordBody::Kinesis { .. } => unreachable!(),
    };
    assert!(filter_matches(
        &pattern,
        &body(dynamodb("1", "INSERT", "all"))
    ));
    assert!(!filter_matches(
        &pattern,
        &body(dynamodb("2", "MODIFY", "all"))
    ));
    assert!(!filter_matches(
        &pattern,
        &body(dynamodb("3", "INSERT", "other"))
    ));
    assert!(!filter_matches(
        &json!({"missing": ["x"]}),
        &body(dynamodb("4", "INSERT", "all"))
    ));
    // The event stores' filter (issue 15): event items are the ones with an eventType.
    let events = json!({"eventName": ["INSERT"], "dynamodb": {"NewImage": {"eventType": {"S": [{"exists": true}]}}}});
    let with_type = |seq: &str, name: &str| {
        let mut record = body(dynamodb(seq, name, "x"));
        record["dynamodb"]["NewImage"]["eventType"] = json!({"S": "AlertRaised"});
        record
    };
    assert!(filter_matches(&events, &with_type("5", "INSERT")));
    assert!(!filter_matches(&events, &with_type("6", "REMOVE")));
    assert!(!filter_matches(
        &events,
        &body(dynamodb("7", "INSERT", "all"))
    ));
    let absent = json!({"dynamodb": {"NewImage": {"eventType": [{"exists": false}]}}});
    assert!(filter_matches(
        &absent,
        &body(dynamodb("8", "INSERT", "all"))
    ));
    assert!(!filter_matches(&absent, &with_type("9", "INSERT")));
}

#[test]
fn filter_criteria_are_parsed_and_unsupported_rules_refused() {
    let props = |pattern: &str| {
        json!({
            "Stream": "arn:aws:dynamodb:us-east-1:1:table/t/stream/x",
            "StartingPosition": "TRIM_HORIZON",
            "FilterCriteria": {"Filters": [{"Pattern": pattern}]},
        })
    };
    let mapping = EventSourceMapping::from_event(
        "E",
        SourceKind::DynamoDb,
        &props(r#"{"eventName": ["INSERT"]}"#),
    )
    .unwrap();
    assert_eq!(mapping.filters, [json!({"eventName": ["INSERT"]})]);
    assert_eq!(mapping.batch_size, 100);
    let err = EventSourceMapping::from_event(
        "E",
        SourceKind::DynamoDb,
        &props(r#"{"eventName": [{"prefix": "IN"}]}"#),
    )
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("not supported by devstack"),
        "{err:#}"
    );
}

#[test]
fn kinesis_event_deserializes_as_kinesis_event() {
    let event = stream_event(
        &[record("1"), record("2")],
        "shardId-000000000000",
        "arn:aws:kinesis:us-east-1:123456789012:stream/s",
        "123456789012",
    );
    let parsed: aws_lambda_events::event::kinesis::KinesisEvent =
        serde_json::from_value(event).expect("valid KinesisEvent");
    assert_eq!(parsed.records.len(), 2);
    let first = &parsed.records[0];
    assert_eq!(first.kinesis.sequence_number, "1");
    assert_eq!(first.kinesis.partition_key, "patient-1");
    assert_eq!(first.kinesis.data.0, br#"{"hr":80}"#.to_vec());
    assert_eq!(first.event_id.as_deref(), Some("shardId-000000000000:1"));
    assert_eq!(
        first.kinesis.approximate_arrival_timestamp.0.timestamp(),
        1_700_000_000
    );
}

#[test]
fn kinesis_failure_record_has_batch_info() {
    let value = stream_failure_record(
        &[record("5"), record("9")],
        "shardId-000000000001",
        "arn:stream",
        "arn:function",
        "RetryAttemptsExhausted",
        4,
        "Unhandled",
    );
    assert_eq!(value["KinesisBatchInfo"]["startSequenceNumber"], "5");
    assert_eq!(value["KinesisBatchInfo"]["endSequenceNumber"], "9");
    assert_eq!(value["KinesisBatchInfo"]["batchSize"], 2);
    assert_eq!(value["requestContext"]["approximateInvokeCount"], 4);
    assert_eq!(value["responseContext"]["functionError"], "Unhandled");
    assert!(
        value["KinesisBatchInfo"]["approximateArrivalOfFirstRecord"]
            .as_str()
            .unwrap()
            .starts_with("2023-11-14T22:13:20.250")
    );
}

const TRACE: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

#[test]
fn sqs_event_deserializes_as_sqs_event() {
    use aws_sdk_sqs::primitives::Blob;
    use aws_sdk_sqs::types::{Message, MessageAttributeValue, MessageSystemAttributeName};
    let message = Message::builder()
        .message_id("m-1")
        .receipt_handle("rh")
        .body("{\"x\":1}")
        .md5_of_body("abc")
        .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "1")
        .attributes(MessageSystemAttributeName::SentTimestamp, "1700000000000")
        .attributes(MessageSystemAttributeName::AwsTraceHeader, TRACE)
        .message_attributes(
            "eventType",
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value("AlertRaised")
                .build()
                .unwrap(),
        )
        .message_attributes(
            "bin",
            MessageAttributeValue::builder()
                .data_type("Binary")
                .binary_value(Blob::new(vec![1, 2, 3]))
                .build()
                .unwrap(),
        )
        .build();
    // The batch's invocation continues the first message's trace.
    let untraced = Message::builder().message_id("m-2").body("{}").build();
    assert_eq!(
        batch_trace_header(&[message.clone(), untraced.clone()]).as_deref(),
        Some(TRACE)
    );
    assert_eq!(batch_trace_header(&[untraced, message.clone()]), None);
    assert_eq!(batch_trace_header(&[]), None);
    let event = sqs_event(&[message], "arn:aws:sqs:us-east-1:123456789012:q");
    let parsed: aws_lambda_events::event::sqs::SqsEvent =
        serde_json::from_value(event).expect("valid SqsEvent");
    let record = &parsed.records[0];
    assert_eq!(record.message_id.as_deref(), Some("m-1"));
    assert_eq!(record.attributes["ApproximateReceiveCount"], "1");
    assert_eq!(record.attributes["AWSTraceHeader"], TRACE);
    assert_eq!(
        record.message_attributes["eventType"]
            .string_value
            .as_deref(),
        Some("AlertRaised")
    );
    assert_eq!(
        record.message_attributes["bin"]
            .binary_value
            .as_ref()
            .map(|b| b.0.clone()),
        Some(vec![1, 2, 3])
    );
    assert_eq!(record.event_source.as_deref(), Some("aws:sqs"));
}

#[test]
fn classify_follows_lambda_rules() {
    let ids: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    let ok = |v: Value| InvokeOutcome::Ok(v);
    assert_eq!(
        classify(&ok(Value::Null), &ids, true),
        BatchVerdict::Success
    );
    assert_eq!(classify(&ok(json!({})), &ids, true), BatchVerdict::Success);
    assert_eq!(
        classify(&ok(json!({"batchItemFailures": []})), &ids, true),
        BatchVerdict::Success
    );
    assert_eq!(
        classify(
            &ok(json!({"batchItemFailures": [{"itemIdentifier": "c"}, {"itemIdentifier": "b"}]})),
            &ids,
            true
        ),
        BatchVerdict::Partial(BTreeSet::from([1, 2]))
    );
    for invalid in [json!(null), json!(""), json!("zzz")] {
        assert_eq!(
            classify(
                &ok(json!({"batchItemFailures": [{"itemIdentifier": invalid}]})),
                &ids,
                true
            ),
            BatchVerdict::Failed
        );
    }
    // Without ReportBatchItemFailures the response is ignored.
    assert_eq!(
        classify(
            &ok(json!({"batchItemFailures": [{"itemIdentifier": "a"}]})),
            &ids,
            false
        ),
        BatchVerdict::Success
    );
    assert_eq!(
        classify(&InvokeOutcome::Timeout, &ids, true),
        BatchVerdict::Failed
    );
}

#[test]
fn stream_name_comes_from_the_arn() {
    assert_eq!(
        stream_name_from_arn("arn:aws:kinesis:us-east-1:1:stream/vitals-ReadingsStream").unwrap(),
        "vitals-ReadingsStream"
    );
    assert!(stream_name_from_arn("arn:aws:sqs:us-east-1:1:q").is_err());
}
