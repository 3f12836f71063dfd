//! End-to-end tests: real function binaries, real emulator (moto by default), driven
//! through the local HTTP API and the runner's event source mappings. Every assertion
//! reads the emulator: stream records, table items, queue messages.

use aws_sdk_kinesis::primitives::Blob;
use devstack::inspect;
use e2e::*;
use serde_json::{Value, json};

fn data_of<'a>(events: &'a [Value], field: &str) -> Vec<&'a str> {
    events
        .iter()
        .map(|e| e["data"][field].as_str().unwrap_or_default())
        .collect()
}

/// The patients of every `AlertRaised` in the store, sorted.
async fn alerted_patients(stack: &devstack::Stack) -> Vec<String> {
    let events = inspect::events_of_type(stack, "AlertRaised").await.unwrap();
    let mut alerted: Vec<String> = data_of(&events, "patientId")
        .into_iter()
        .map(str::to_string)
        .collect();
    alerted.sort();
    alerted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_flow_from_the_http_api_to_a_health_worker_notification() {
    let stack = start_stack("happy_path").await;
    inspect::seed_directory(
        &stack,
        &[
            entry("p-1", "w-1", "+254700000101"),
            entry("p-2", "w-2", "+254700000102"),
        ],
    )
    .await
    .unwrap();

    // Given p-1's heart races three readings in a row and p-2 is fine.
    let body = json!([
        reading("p-1", "heart_rate", 121.0, 3),
        reading("p-2", "heart_rate", 72.0, 3),
        reading("p-1", "heart_rate", 128.0, 2),
        reading("p-2", "spo2", 97.0, 2),
        reading("p-1", "heart_rate", 133.0, 1),
        reading("p-1", "spo2", 96.0, 1),
    ]);
    let (status, response) = post(&stack, &body, Some("corr-e2e-1")).await;
    assert_eq!(status, 202, "{response}");
    assert_eq!(response["accepted"], 6);
    stack.wait_idle(DRAIN).await.unwrap();

    // The readings are on the stream, partitioned by patient.
    let records = inspect::stream_records(&stack, "ReadingsStream")
        .await
        .unwrap();
    assert_eq!(records.len(), 6);
    assert_eq!(records.iter().filter(|(pk, _)| pk == "p-1").count(), 4);

    // One alert, for p-1, in the event table; routed to w-1; one notification.
    let alerts = inspect::events_of_type(&stack, "AlertRaised")
        .await
        .unwrap();
    assert_eq!(data_of(&alerts, "patientId"), ["p-1"]);
    assert_eq!(data_of(&alerts, "alertType"), ["tachycardia"]);
    let routed = inspect::events_of_type(&stack, "AlertRouted")
        .await
        .unwrap();
    assert_eq!(data_of(&routed, "workerId"), ["w-1"]);
    let sent = inspect::events_of_type(&stack, "NotificationSent")
        .await
        .unwrap();
    assert_eq!(sent.len(), 1);
    // The caller's correlation id followed every event.
    for e in alerts.iter().chain(&routed).chain(&sent) {
        assert_eq!(e["correlationId"], "corr-e2e-1", "{e}");
    }

    let outbox = inspect::scan(&stack, "OutboxTable").await.unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0]["status"], "sent");
    assert_eq!(outbox[0]["channel"], "outbox");
    assert_eq!(outbox[0]["recipientPhone"], "+254700000101");
    assert!(
        outbox[0]["message"]
            .as_str()
            .unwrap()
            .contains("heart_rate above 100")
    );

    for (queue, depth) in inspect::dead_letter_depths(&stack).await.unwrap() {
        assert_eq!(depth, 0, "{queue} is not empty");
    }

    // The dashboard projector (events table stream) built the alert's view.
    let views = inspect::scan(&stack, "DashboardTable").await.unwrap();
    assert_eq!(views.len(), 1, "{views:?}");
    let view = &views[0];
    assert_eq!(view["kind"], "alert");
    assert_eq!(view["board"], "open");
    assert_eq!(view["view"]["patientId"], "p-1");
    assert_eq!(view["view"]["routedTo"], "w-1");
    assert_eq!(view["view"]["notificationsSent"], 1);
    assert!(
        ["routed", "escalated"].contains(&view["status"].as_str().unwrap()),
        "{view}"
    );

    // The functions printed CloudWatch EMF metrics for all of it.
    let ingest = stack.metrics("IngestFunction");
    assert_eq!(ingest["ReadingsIngested"].sum, 6.0, "{ingest:?}");
    let detect = stack.metrics("DetectFunction");
    let rule = alerts[0]["data"]["ruleId"].as_str().unwrap();
    let severity = alerts[0]["data"]["severity"].as_str().unwrap();
    let key = format!("AlertsRaised{{Rule={rule},Severity={severity}}}");
    assert_eq!(detect.get(&key).map(|m| m.sum), Some(1.0), "{detect:?}");
    assert_eq!(detect["BatchItemFailures"].sum, 0.0);
    assert_eq!(detect["EndToEndLagMs"].unit, "Milliseconds");
    // The oldest reading was taken 3 minutes ago.
    assert!(detect["EndToEndLagMs"].max >= 170_000.0, "{detect:?}");
    let route = stack.metrics("RouteFunction");
    assert!(route["EndToEndLagMs"].max >= 50_000.0, "{route:?}");

    // Structured logs: every line of an invocation names the service, request, trace,
    // function and cold start, in snake_case, and the routing line carries the caller's
    // correlation id.
    let route_log = function_log(&stack, "RouteFunction");
    let routed_line = route_log
        .iter()
        .find(|l| l["message"] == "alert routed")
        .expect("an 'alert routed' log line");
    assert_eq!(routed_line["correlation_id"], "corr-e2e-1", "{routed_line}");
    for line in route_log.iter().filter(|l| l.get("_aws").is_none()) {
        assert_eq!(line["service"], "vitals", "{line}");
        assert!(line["function_name"].is_string(), "{line}");
        assert!(line["cold_start"].is_boolean(), "{line}");
        for key in line.as_object().unwrap().keys() {
            assert!(
                key.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{key} is not snake_case: {line}"
            );
        }
    }
    assert!(
        routed_line["function_request_id"].is_string(),
        "{routed_line}"
    );
    assert_eq!(routed_line["cold_start"], true);

    // X-Ray across the SQS hop: route's message to the notify queue carries its trace
    // header (AWSTraceHeader), and notify's invocation continues that trace.
    let trace_id = routed_line["xray_trace_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no xray_trace_id: {routed_line}"));
    assert!(trace_id.starts_with("1-"), "{trace_id}");
    let notified = stack
        .invocations("NotifyFunction")
        .into_iter()
        .find(|i| {
            i.payload["Records"][0]["body"]
                .to_string()
                .contains("corr-e2e-1")
        })
        .expect("notify received the routed alert's notification");
    let header = notified.payload["Records"][0]["attributes"]["AWSTraceHeader"]
        .as_str()
        .unwrap_or_else(|| panic!("no AWSTraceHeader: {}", notified.payload));
    assert!(header.starts_with(&format!("Root={trace_id};")), "{header}");
    let notify_lines: Vec<Value> = function_log(&stack, "NotifyFunction")
        .into_iter()
        .filter(|l| l["correlation_id"] == "corr-e2e-1")
        .collect();
    assert!(!notify_lines.is_empty());
    for line in &notify_lines {
        assert_eq!(line["xray_trace_id"], trace_id, "{line}");
        assert_ne!(
            line["function_request_id"], routed_line["function_request_id"],
            "{line}"
        );
    }
    stack.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivered_batches_and_messages_raise_one_alert_and_one_notification() {
    let stack = start_stack("redelivery").await;
    inspect::seed_directory(&stack, &[entry("p-7", "w-7", "+254700000107")])
        .await
        .unwrap();
    let (status, _) = post(&stack, &json!([reading("p-7", "spo2", 86.0, 1)]), None).await;
    assert_eq!(status, 202);
    stack.wait_idle(DRAIN).await.unwrap();

    // Redeliver every Kinesis batch and every SQS message each function received.
    for function in ["DetectFunction", "RouteFunction", "NotifyFunction"] {
        let delivered = stack.invocations(function);
        assert!(!delivered.is_empty(), "{function} was never invoked");
        for record in delivered {
            stack
                .invoke(function, record.payload.clone())
                .await
                .unwrap();
        }
    }
    stack.wait_idle(DRAIN).await.unwrap();

    assert_eq!(
        inspect::events_of_type(&stack, "AlertRaised")
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        inspect::events_of_type(&stack, "AlertRouted")
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        inspect::events_of_type(&stack, "NotificationSent")
            .await
            .unwrap()
            .len(),
        1
    );
    let outbox = inspect::scan(&stack, "OutboxTable").await.unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0]["status"], "sent");
    // The redelivered requests did reach notify; its idempotency guard answered them with
    // the stored result, so the outbox saw one attempt only.
    assert!(stack.invocations("NotifyFunction").len() >= 2);
    assert_eq!(outbox[0]["attempts"].as_u64(), Some(1), "{}", outbox[0]);
    stack.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_requests_get_4xx_naming_the_problem_and_nothing_reaches_the_stream() {
    let stack = start_stack("invalid_input").await;
    let good = reading("p-1", "heart_rate", 80.0, 1);
    let mut unknown_type = good.clone();
    unknown_type["type"] = json!("glucose");
    let mut out_of_range = good.clone();
    out_of_range["value"] = json!(-5);
    let mut no_patient = good.clone();
    no_patient.as_object_mut().unwrap().remove("patientId");

    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("bad JSON", "{\"patientId\": ".to_string(), 400, "body"),
        (
            "unknown type",
            json!([good, unknown_type]).to_string(),
            400,
            "readings[1].type",
        ),
        (
            "NaN value",
            good.to_string().replace("80.0", "NaN"),
            400,
            "body",
        ),
        ("out of range", out_of_range.to_string(), 400, "value"),
        ("missing patient", no_patient.to_string(), 400, "patientId"),
        (
            "501 readings",
            json!(vec![good.clone(); 501]).to_string(),
            413,
            "501",
        ),
    ];
    for (name, body, expected_status, names) in cases {
        let (status, response) = post_raw(&stack, body, None).await;
        assert_eq!(status, expected_status, "{name}: {response}");
        let text = response.to_string();
        assert!(
            text.contains(names),
            "{name}: response does not name {names:?}: {text}"
        );
    }
    stack.wait_idle(DRAIN).await.unwrap();
    let records = inspect::stream_records(&stack, "ReadingsStream")
        .await
        .unwrap();
    assert!(
        records.is_empty(),
        "{} records reached the stream",
        records.len()
    );
    stack.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_end_in_their_failure_destinations_and_the_rest_are_processed() {
    let stack = start_stack("poison").await;
    inspect::seed_directory(
        &stack,
        &[
            entry("p-1", "w-1", "+254700000101"),
            entry("p-2", "w-2", "+254700000102"),
        ],
    )
    .await
    .unwrap();
    let stream = stack.resource("ReadingsStream").unwrap().ref_value.clone();
    let kinesis = aws_sdk_kinesis::Client::new(stack.sdk_config());

    // Three records on one shard (one partition key), the middle one undecodable.
    let mut sequence_numbers = Vec::new();
    for data in [
        low_spo2_record("p-1"),
        "{\"this is\": not json".to_string(),
        low_spo2_record("p-2"),
    ] {
        let out = kinesis
            .put_record()
            .stream_name(&stream)
            .partition_key("same-shard")
            .data(Blob::new(data))
            .send()
            .await
            .unwrap();
        sequence_numbers.push(out.sequence_number().to_string());
    }
    // And a poison message straight into the alerts queue.
    let route_queue = stack.resource("RouteQueue").unwrap().ref_value.clone();
    aws_sdk_sqs::Client::new(stack.sdk_config())
        .send_message()
        .queue_url(&route_queue)
        .message_body("garbage alert")
        .send()
        .await
        .unwrap();

    stack.wait_idle(DRAIN).await.unwrap();

    // Both good readings raised their alerts and were notified.
    let alerted = alerted_patients(&stack).await;
    assert_eq!(alerted, ["p-1", "p-2"]);
    assert_eq!(inspect::scan(&stack, "OutboxTable").await.unwrap().len(), 2);

    // The poison record is in detect's failure queue, alone, with its payload.
    let failures = inspect::peek_queue(&stack, "DetectFailureQueue")
        .await
        .unwrap();
    assert_eq!(failures.len(), 1, "{failures:?}");
    let poison: Value = serde_json::from_str(&failures[0]).unwrap();
    assert_eq!(poison["kind"], "PoisonRecord");
    assert_eq!(
        poison["sequenceNumber"],
        sequence_numbers[1].as_str(),
        "{poison}"
    );
    use base64::Engine;
    let data = base64::engine::general_purpose::STANDARD
        .decode(poison["data"].as_str().unwrap())
        .unwrap();
    assert_eq!(data, b"{\"this is\": not json");

    // The poison message is in the route DLQ after its receives ran out.
    assert_eq!(
        inspect::peek_queue(&stack, "RouteDLQ").await.unwrap(),
        ["garbage alert"]
    );
    assert_eq!(inspect::queue_depth(&stack, "NotifyDLQ").await.unwrap(), 0);
    stack.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_keeps_failing_goes_to_the_on_failure_destination_and_other_shards_flow() {
    let stack = start_stack("retries_exhausted").await;
    inspect::seed_directory(&stack, &[entry("p-good", "w-1", "+254700000101")])
        .await
        .unwrap();
    // p-bad's stored detection state is corrupt: every attempt to process it fails. Per
    // shard (the default layout), that is the snapshot bucket holding p-bad on the first
    // shard: restoring the shard fails, so the whole shard stops (p-bad is alone on it).
    let state_table = stack
        .resource("PatientStateTable")
        .unwrap()
        .ref_value
        .clone();
    let stream = stack.resource("ReadingsStream").unwrap().ref_value.clone();
    let kinesis = aws_sdk_kinesis::Client::new(stack.sdk_config());
    let first_shard = kinesis
        .list_shards()
        .stream_name(&stream)
        .send()
        .await
        .unwrap()
        .shards()
        .iter()
        .find(|s| s.hash_key_range().map(|r| r.starting_hash_key()) == Some("0"))
        .expect("a shard from hash key 0")
        .shard_id()
        .to_string();
    let corrupt_key = format!(
        "detect-bucket#{first_shard}#{}",
        domain::detection::snapshot::bucket_of("p-bad", detect::shard::DEFAULT_BUCKETS)
    );
    use aws_sdk_dynamodb::types::AttributeValue;
    aws_sdk_dynamodb::Client::new(stack.sdk_config())
        .put_item()
        .table_name(&state_table)
        .item("patientId", AttributeValue::S(corrupt_key.clone()))
        .item("version", AttributeValue::N("1".into()))
        .item(
            "data",
            AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new("corrupt")),
        )
        .send()
        .await
        .unwrap();

    // p-bad's reading on the first shard, p-good's on the last (explicit hash keys).
    let put = |patient: &'static str, hash_key: String| {
        let data = low_spo2_record(patient);
        kinesis
            .put_record()
            .stream_name(&stream)
            .partition_key(patient)
            .explicit_hash_key(hash_key)
            .data(Blob::new(data))
            .send()
    };
    let bad = put("p-bad", "0".into()).await.unwrap();
    put("p-good", (u128::MAX / 4 * 3).to_string())
        .await
        .unwrap();
    assert_eq!(
        bad.shard_id(),
        first_shard,
        "p-bad's record is on the corrupt shard"
    );

    stack.wait_idle(DRAIN).await.unwrap();

    // The other shard flowed: p-good was alerted and notified.
    let alerts = inspect::events_of_type(&stack, "AlertRaised")
        .await
        .unwrap();
    assert_eq!(data_of(&alerts, "patientId"), ["p-good"]);
    assert_eq!(inspect::scan(&stack, "OutboxTable").await.unwrap().len(), 1);

    // p-bad's batch was retried, then its coordinates went to the on-failure destination.
    let failures = inspect::peek_queue(&stack, "DetectFailureQueue")
        .await
        .unwrap();
    assert_eq!(failures.len(), 1, "{failures:?}");
    let info: Value = serde_json::from_str(&failures[0]).unwrap();
    assert_eq!(
        info["requestContext"]["condition"], "RetryAttemptsExhausted",
        "{info}"
    );
    assert_eq!(info["KinesisBatchInfo"]["shardId"], bad.shard_id());
    assert_eq!(
        info["KinesisBatchInfo"]["startSequenceNumber"],
        bad.sequence_number()
    );
    // 1 attempt + MaximumRetryAttempts (3) from the template.
    assert_eq!(info["requestContext"]["approximateInvokeCount"], 4);

    // Issue 16, `devstack replay`: once the cause is fixed (the corrupt bucket removed),
    // the failed batch's range is read back from the stream and replayed through detect's
    // Lambda API: p-bad is alerted and the message leaves the queue.
    aws_sdk_dynamodb::Client::new(stack.sdk_config())
        .delete_item()
        .table_name(&state_table)
        .key("patientId", AttributeValue::S(corrupt_key))
        .send()
        .await
        .unwrap();
    let target = devstack::replay::ReplayTarget {
        sdk_config: stack.sdk_config().clone(),
        queue_url: stack
            .resource("DetectFailureQueue")
            .unwrap()
            .ref_value
            .clone(),
        lambda_url: stack.lambda_url(),
        function: "DetectFunction".to_string(),
    };
    let report = devstack::replay::replay(&target, 10).await.unwrap();
    assert_eq!(
        (report.replayed, report.records, report.left.len()),
        (1, 1, 0),
        "{report:?}"
    );
    stack.wait_idle(DRAIN).await.unwrap();
    let alerted = alerted_patients(&stack).await;
    assert_eq!(alerted, ["p-bad", "p-good"]);
    assert_eq!(
        inspect::queue_depth(&stack, "DetectFailureQueue")
            .await
            .unwrap(),
        0
    );
    // Replaying again finds nothing to do.
    let again = devstack::replay::replay(&target, 10).await.unwrap();
    assert_eq!(again, devstack::replay::ReplayReport::default());
    stack.shutdown().await.unwrap();
}

/// Issue 16: the product spec's reading shape (`type: "HeartRate"`, no unit, no deviceId,
/// a `"120/80"` blood pressure) from a wearable's token: accepted, put on the stream as the
/// wearable's readings (its client id is the device), and processed: p-1's racing heart
/// raises an alert that reaches the health worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_shaped_readings_from_a_wearable_raise_an_alert() {
    let stack = start_stack("spec_shape").await;
    inspect::seed_directory(&stack, &[entry("p-1", "w-1", "+254700000101")])
        .await
        .unwrap();
    inspect::seed_devices(
        &stack,
        &[(
            "test-device-1",
            domain::access::DeviceBinding::Wearable {
                bound_patient_id: "p-1".into(),
            },
        )],
    )
    .await
    .unwrap();
    let at = |minutes_ago: i64| {
        (chrono::Utc::now() - chrono::Duration::minutes(minutes_ago))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let body = json!([
        {"patientId": "p-1", "type": "HeartRate", "value": 121, "timestamp": at(3)},
        {"patientId": "p-1", "type": "HeartRate", "value": 128, "timestamp": at(2)},
        {"patientId": "p-1", "type": "heart_rate", "value": 133, "timestamp": at(1)},
        {"patientId": "p-1", "type": "BloodPressure", "value": "122/81", "timestamp": at(1)},
    ]);
    let device = devstack::TokenSpec::device("test-device-1");
    let (status, response) = post_as(&stack, &device, &body, Some("corr-spec-1")).await;
    assert_eq!(status, 202, "{response}");
    assert_eq!(
        response["accepted"], 5,
        "the blood pressure is two readings"
    );
    stack.wait_idle(DRAIN).await.unwrap();

    let records = inspect::stream_records(&stack, "ReadingsStream")
        .await
        .unwrap();
    let readings: Vec<Value> = records
        .iter()
        .map(|(_, data)| serde_json::from_slice::<Value>(data).unwrap()["data"].clone())
        .collect();
    let shapes: Vec<(&str, &str, &str)> = readings
        .iter()
        .map(|r| {
            (
                r["type"].as_str().unwrap_or_default(),
                r["unit"].as_str().unwrap_or_default(),
                r["deviceId"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        shapes,
        [
            ("heart_rate", "bpm", "test-device-1"),
            ("heart_rate", "bpm", "test-device-1"),
            ("heart_rate", "bpm", "test-device-1"),
            ("systolic_bp", "mmHg", "test-device-1"),
            ("diastolic_bp", "mmHg", "test-device-1"),
        ]
    );

    let alerts = inspect::events_of_type(&stack, "AlertRaised")
        .await
        .unwrap();
    assert_eq!(data_of(&alerts, "patientId"), ["p-1"]);
    assert_eq!(data_of(&alerts, "alertType"), ["tachycardia"]);
    let sent = inspect::events_of_type(&stack, "NotificationSent")
        .await
        .unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["correlationId"], "corr-spec-1");
    stack.shutdown().await.unwrap();
}
