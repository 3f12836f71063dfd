//! Issue 13: bounded inputs. A rejection stays small whatever the body, and a reading
//! object may name each field once.

use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use aws_lambda_events::encodings::Body;
use chrono::{DateTime, Utc};
use serde_json::Value;
use testkit::MemorySink;

fn now() -> DateTime<Utc> {
    "2026-11-24T10:00:00Z".parse().unwrap()
}

async fn post(body: String) -> (ApiGatewayV2httpResponse, MemorySink) {
    let mut request = testkit::http::operator_post();
    request.body = Some(body);
    let sink = MemorySink::default();
    let response =
        ingest::handle(&sink, &testkit::MemoryDirectory::default(), &request, now()).await;
    (response, sink)
}

fn text(response: &ApiGatewayV2httpResponse) -> &str {
    match &response.body {
        Some(Body::Text(t)) => t,
        other => panic!("unexpected body {other:?}"),
    }
}

#[tokio::test]
async fn a_megabyte_of_unknown_keys_gets_a_short_400_listing_the_first_errors() {
    // 100,000 unknown keys in one reading object: just under the 1 MB body limit.
    let keys: Vec<String> = (0..100_000).map(|i| format!("\"{i}\":0")).collect();
    let body = format!("{{{}}}", keys.join(","));
    assert!(
        body.len() <= domain::reading::MAX_BODY_BYTES,
        "{}",
        body.len()
    );
    let (response, sink) = post(body).await;
    assert_eq!(response.status_code, 400);
    let text = text(&response);
    assert!(text.len() < 8 * 1024, "a {} byte 400", text.len());
    let json: Value = serde_json::from_str(text).unwrap();
    assert_eq!(json["error"], "ValidationFailed");
    let listed = json["errors"].as_array().unwrap();
    assert_eq!(listed.len(), ingest::MAX_LISTED_ERRORS);
    assert_eq!(listed[0]["field"], "0");
    // 100,000 unknown fields and 4 missing ones (patientId, type, value, timestamp; unit
    // and deviceId are optional, issue 16): the rest are counted, not listed.
    let total = 100_000 + 4;
    assert_eq!(json["truncated"], total - ingest::MAX_LISTED_ERRORS);
    assert!(
        json["message"]
            .as_str()
            .unwrap()
            .contains(&total.to_string())
    );
    assert!(sink.records.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_few_errors_are_all_listed_without_a_truncated_count() {
    let body = r#"{"patientId": "p-1", "type": "mood"}"#.to_string();
    let (response, _) = post(body).await;
    assert_eq!(response.status_code, 400);
    let json: Value = serde_json::from_str(text(&response)).unwrap();
    assert!(json["errors"].as_array().unwrap().len() < ingest::MAX_LISTED_ERRORS);
    assert!(json.get("truncated").is_none(), "{json}");
}

#[tokio::test]
async fn a_reading_naming_a_field_twice_is_rejected_naming_the_key() {
    let body = r#"[{"patientId": "p-1", "type": "heart_rate", "value": 72, "unit": "bpm",
                    "timestamp": "2026-11-24T09:59:00Z", "deviceId": "dev-1", "value": 250}]"#;
    let (response, sink) = post(body.to_string()).await;
    assert_eq!(response.status_code, 400);
    let json: Value = serde_json::from_str(text(&response)).unwrap();
    let message = json["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("duplicate") && message.contains("value"),
        "{message}"
    );
    assert!(sink.records.lock().unwrap().is_empty());
}
