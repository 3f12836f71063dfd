//! The sample event in events/samples runs through the handler as API Gateway sends it.

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use chrono::{DateTime, Utc};
use domain::access::DeviceBinding;
use testkit::{MemoryDirectory, MemorySink, fixtures};

#[tokio::test]
async fn sample_post_readings_event_is_accepted() {
    let text = include_str!("../../../events/samples/apigw-post-readings.json");
    let request: ApiGatewayV2httpRequest = serde_json::from_str(text).unwrap();
    let now: DateTime<Utc> = "2026-11-24T08:00:00Z".parse().unwrap();
    let sink = MemorySink::default();
    // The sample's caller is the wearable of p-001 (a device token).
    let directory =
        MemoryDirectory::with([fixtures::directory_entry("p-001", "w-1", "+254700000001")])
            .with_device(
                "wearable-p-001",
                DeviceBinding::Wearable {
                    bound_patient_id: "p-001".into(),
                },
            );
    let response = ingest::handle(&sink, &directory, &request, now).await;
    assert_eq!(response.status_code, 202);
    let records = sink.records.lock().unwrap();
    assert_eq!(records.len(), 2);
    let first: serde_json::Value = serde_json::from_slice(&records[0].data).unwrap();
    assert_eq!(first["correlationId"], "clinic-upload-0042");
    assert_eq!(first["causationId"], "Jx1sAiH4IAMEV0Q=");
}

/// Issue 16: the same request in the product spec's shape (no unit, no deviceId, a
/// "128/84" blood pressure) from the wearable: five readings, the wearable as their device.
#[tokio::test]
async fn sample_post_readings_event_in_the_spec_shape_is_accepted() {
    let text = include_str!("../../../events/samples/apigw-post-readings-spec-shape.json");
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
    assert_eq!(response.status_code, 202, "{:?}", response.body);
    let records = sink.records.lock().unwrap();
    let data: Vec<serde_json::Value> = records
        .iter()
        .map(|r| serde_json::from_slice::<serde_json::Value>(&r.data).unwrap()["data"].clone())
        .collect();
    let types: Vec<&str> = data.iter().map(|d| d["type"].as_str().unwrap()).collect();
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
    assert!(data.iter().all(|d| d["deviceId"] == "wearable-p-001"));
}
