//! The sample events in events/samples run through the handler as API Gateway sends them.

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use chrono::{DateTime, Utc};
use domain::access::DeviceBinding;
use testkit::{MemoryDirectory, MemorySink, fixtures};

/// Posts a sample request by the wearable of p-001 (a device token, bound to p-001);
/// returns the status and the stream records' envelopes.
async fn post_sample(text: &str) -> (i64, Vec<serde_json::Value>) {
    let request: ApiGatewayV2httpRequest = serde_json::from_str(text).unwrap();
    let now: DateTime<Utc> = "2026-11-24T08:00:00Z".parse().unwrap();
    let sink = MemorySink::default();
    let directory =
        MemoryDirectory::with([fixtures::directory_entry("p-001", "w-1", "+254700000001")])
            .with_device(
                "wearable-p-001",
                DeviceBinding::Wearable {
                    bound_patient_id: "p-001".into(),
                },
            );
    let response = ingest::handle(&sink, &directory, &request, now).await;
    let records = sink.records.lock().unwrap();
    let envelopes = records
        .iter()
        .map(|r| serde_json::from_slice(&r.data).unwrap())
        .collect();
    (response.status_code, envelopes)
}

#[tokio::test]
async fn sample_post_readings_event_is_accepted() {
    let text = include_str!("../../../events/samples/apigw-post-readings.json");
    let (status, records) = post_sample(text).await;
    assert_eq!(status, 202);
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["correlationId"], "clinic-upload-0042");
    assert_eq!(records[0]["causationId"], "Jx1sAiH4IAMEV0Q=");
}

/// Issue 16: the same request in the product spec's shape (no unit, no deviceId, a
/// "128/84" blood pressure) from the wearable: five readings, the wearable as their device.
#[tokio::test]
async fn sample_post_readings_event_in_the_spec_shape_is_accepted() {
    let text = include_str!("../../../events/samples/apigw-post-readings-spec-shape.json");
    let (status, records) = post_sample(text).await;
    assert_eq!(status, 202);
    let types: Vec<&str> = records
        .iter()
        .map(|r| r["data"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "heart_rate",
            "spo2",
            "temperature",
            "systolic_bp",
            "diastolic_bp"
        ]
    );
    assert!(
        records
            .iter()
            .all(|r| r["data"]["deviceId"] == "wearable-p-001")
    );
    assert!(records.iter().all(|r| r["data"]["unit"].is_string()));
}
