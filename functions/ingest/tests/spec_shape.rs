//! Issue 16: `POST /readings` accepts the product spec's reading shape beside the original
//! one: `{patientId, type: "HeartRate" | "SpO2" | ..., value, timestamp}`, the unit and
//! `deviceId` optional (domain::reading::spec_shape).

use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use aws_lambda_events::encodings::Body;
use chrono::{DateTime, Utc};
use domain::access::DeviceBinding;
use domain::envelope::{Envelope, decode};
use domain::reading::{Reading, VitalType};
use serde_json::{Value, json};
use testkit::{MemoryDirectory, MemorySink, fixtures};

fn now() -> DateTime<Utc> {
    "2026-11-24T10:00:00Z".parse().unwrap()
}

/// p-1 is w-1's patient; the wearable `wearable-p-1` is bound to p-1.
fn directory() -> MemoryDirectory {
    MemoryDirectory::with([fixtures::directory_entry("p-1", "w-1", "+254700000001")]).with_device(
        "wearable-p-1",
        DeviceBinding::Wearable {
            bound_patient_id: "p-1".into(),
        },
    )
}

fn device(id: &str) -> Value {
    json!({"sub": id, "client_id": id, "scope": "vitals/readings.write", "token_use": "access"})
}

fn health_worker(id: &str) -> Value {
    json!({"sub": "uuid", "client_id": "people", "username": id,
           "cognito:groups": "[health-worker]", "token_use": "access"})
}

async fn post(claims: Value, body: Value) -> (ApiGatewayV2httpResponse, Vec<Reading>, Value) {
    let sink = MemorySink::default();
    let mut request = testkit::http::request_with_claims("POST", claims);
    request.body = Some(body.to_string());
    let response = ingest::handle(&sink, &directory(), &request, now()).await;
    let readings = sink
        .records
        .lock()
        .unwrap()
        .iter()
        .map(|r| decode::<Reading>(&r.data).unwrap())
        .map(|e: Envelope<Reading>| e.data)
        .collect();
    let json = match &response.body {
        Some(Body::Text(t)) => serde_json::from_str(t).unwrap(),
        other => panic!("unexpected body {other:?}"),
    };
    (response, readings, json)
}

fn spec_readings() -> Value {
    json!([
        {"patientId": "p-1", "type": "HeartRate", "value": 128, "timestamp": "2026-11-24T09:58:00Z"},
        {"patientId": "p-1", "type": "SpO2", "value": 91, "timestamp": "2026-11-24T09:58:00Z"},
        {"patientId": "p-1", "type": "BloodPressure", "value": "150/95", "timestamp": "2026-11-24T09:58:00Z"},
    ])
}

#[tokio::test]
async fn a_device_posts_spec_shaped_readings_as_itself_with_default_units() {
    let (response, readings, json) = post(device("wearable-p-1"), spec_readings()).await;
    assert_eq!(response.status_code, 202, "{json}");
    // The blood pressure is split: 3 objects, 4 readings.
    assert_eq!(json["accepted"], 4);
    let got: Vec<(VitalType, f64, &str, &str)> = readings
        .iter()
        .map(|r| (r.vital, r.value, r.unit.as_str(), r.device_id.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (VitalType::HeartRate, 128.0, "bpm", "wearable-p-1"),
            (VitalType::Spo2, 91.0, "%", "wearable-p-1"),
            (VitalType::SystolicBp, 150.0, "mmHg", "wearable-p-1"),
            (VitalType::DiastolicBp, 95.0, "mmHg", "wearable-p-1"),
        ]
    );
}

#[tokio::test]
async fn a_retried_spec_shaped_request_keeps_its_event_ids() {
    let (_, _, first) = post(health_worker("w-1"), spec_readings()).await;
    let (response, readings, second) = post(health_worker("w-1"), spec_readings()).await;
    assert_eq!(response.status_code, 202);
    assert_eq!(first["eventIds"], second["eventIds"]);
    // A person's readings are entered by hand: one device clock per person.
    assert!(readings.iter().all(|r| r.device_id == "manual:w-1"));
    // The same reading in the original shape, naming that device, is the same event.
    let original = json!({"patientId": "p-1", "type": "heart_rate", "value": 128, "unit": "bpm",
        "timestamp": "2026-11-24T09:58:00Z", "deviceId": "manual:w-1"});
    let (_, _, third) = post(health_worker("w-1"), original).await;
    assert_eq!(third["eventIds"][0], first["eventIds"][0]);
}

#[tokio::test]
async fn type_names_ignore_case_and_separators_and_bad_ones_are_400() {
    let body = json!([
        {"patientId": "p-1", "type": "heart-rate", "value": 80, "timestamp": "2026-11-24T09:58:00Z"},
        {"patientId": "p-1", "type": "TEMPERATURE", "value": 37.1, "unit": "°C", "timestamp": "2026-11-24T09:58:00Z"},
    ]);
    let (response, readings, _) = post(device("wearable-p-1"), body).await;
    assert_eq!(response.status_code, 202);
    assert_eq!(readings[1].unit, "celsius");

    let body = json!([
        {"patientId": "p-1", "type": "HeartRate", "value": 80, "timestamp": "2026-11-24T09:58:00Z"},
        {"patientId": "p-1", "type": "BloodPressure", "value": 120, "timestamp": "2026-11-24T09:58:00Z"},
    ]);
    let (response, readings, json) = post(device("wearable-p-1"), body).await;
    assert_eq!(response.status_code, 400);
    assert_eq!(json["errors"][0]["field"], "readings[1].value");
    assert!(readings.is_empty(), "nothing is written");
}
