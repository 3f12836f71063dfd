//! `ingest`: `POST /readings` (API Gateway HTTP API) -> readings stream (Kinesis).
//!
//! Accepts one reading or an array of up to 500. Either every reading is valid and all are
//! put on the stream (partition key = patient id), or the request is rejected with a JSON
//! body naming each problem and nothing is written.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::{HeaderMap, HeaderValue};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use domain::envelope::{Envelope, Lineage};
use domain::ids::random_id;
use lambda_kit::metrics;
use application::ports::{ReadingSink, StreamRecord};
use domain::reading::{FieldError, RequestError, parse_readings};
use tracing::Instrument;

/// The function name recorded as the `source` of the events it emits.
pub const SOURCE: &str = "ingest";
/// Header carrying the caller's correlation id (case-insensitive).
pub const CORRELATION_HEADER: &str = "x-correlation-id";

/// Handles one HTTP request. Never fails: every outcome is an HTTP response.
pub async fn handle(
    sink: &dyn ReadingSink,
    request: &ApiGatewayV2httpRequest,
    now: DateTime<Utc>,
) -> ApiGatewayV2httpResponse {
    let correlation_id = correlation_id(&request.headers);
    // Instrumented (not entered): the span must follow the future across awaits.
    let span = tracing::info_span!("ingest", correlation_id = %correlation_id);
    accept(sink, request, now, correlation_id)
        .instrument(span)
        .await
}

async fn accept(
    sink: &dyn ReadingSink,
    request: &ApiGatewayV2httpRequest,
    now: DateTime<Utc>,
    correlation_id: String,
) -> ApiGatewayV2httpResponse {
    let body = match request_body(request) {
        Ok(body) => body,
        Err(problem) => {
            return error_response(400, "InvalidBody", &problem, &[], &correlation_id);
        }
    };
    let readings = match parse_readings(&body, now) {
        Ok(readings) => readings,
        Err(RequestError::TooLarge(message)) => {
            tracing::info!(%message, "rejected: too large");
            return error_response(413, "PayloadTooLarge", &message, &[], &correlation_id);
        }
        Err(RequestError::Invalid(errors)) => {
            tracing::info!(problems = errors.len(), "rejected: invalid readings");
            let message = format!("{} invalid field(s); nothing was accepted", errors.len());
            return error_response(400, "ValidationFailed", &message, &errors, &correlation_id);
        }
    };

    let causation_id = request
        .request_context
        .request_id
        .clone()
        .unwrap_or_else(|| correlation_id.clone());
    let mut event_ids = Vec::with_capacity(readings.len());
    let mut records = Vec::with_capacity(readings.len());
    for reading in readings {
        let event_id = reading.event_id();
        let partition_key = reading.patient_id.clone();
        let lineage = Lineage {
            correlation_id: correlation_id.clone(),
            causation_id: causation_id.clone(),
        };
        let envelope = Envelope::new(event_id.clone(), SOURCE, lineage, now, reading);
        let data = match serde_json::to_vec(&envelope) {
            Ok(data) => data,
            Err(e) => {
                tracing::error!(error = %e, "could not serialise a reading");
                return error_response(
                    500,
                    "InternalError",
                    "could not encode a reading",
                    &[],
                    &correlation_id,
                );
            }
        };
        event_ids.push(event_id);
        records.push(StreamRecord {
            partition_key,
            data,
        });
    }

    let count = records.len();
    if let Err(e) = sink.put(records).await {
        tracing::error!(error = %e, "readings stream did not accept the readings");
        return error_response(
            503,
            "StreamUnavailable",
            "the readings could not be stored; retry the same request (readings are deduplicated by device, type and timestamp)",
            &[],
            &correlation_id,
        );
    }
    tracing::info!(accepted = count, "readings accepted");
    metrics::count(metrics::READINGS_INGESTED, count);
    json_response(
        202,
        &json!({"accepted": count, "eventIds": event_ids, "correlationId": correlation_id}),
        &correlation_id,
    )
}

/// The caller's correlation id if it is a sensible token, otherwise a new one.
fn correlation_id(headers: &HeaderMap) -> String {
    headers
        .get(CORRELATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
        })
        .map(str::to_string)
        .unwrap_or_else(random_id)
}

fn request_body(request: &ApiGatewayV2httpRequest) -> Result<Vec<u8>, String> {
    let body = request.body.as_deref().unwrap_or_default();
    if request.is_base64_encoded {
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|e| format!("body is marked base64 but does not decode: {e}"))
    } else {
        Ok(body.as_bytes().to_vec())
    }
}

fn error_response(
    status: i64,
    error: &str,
    message: &str,
    fields: &[FieldError],
    correlation_id: &str,
) -> ApiGatewayV2httpResponse {
    let mut body = json!({"error": error, "message": message, "correlationId": correlation_id});
    if !fields.is_empty() {
        body["errors"] = json!(fields);
    }
    json_response(status, &body, correlation_id)
}

fn json_response(status: i64, body: &Value, correlation_id: &str) -> ApiGatewayV2httpResponse {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    if let Ok(value) = HeaderValue::from_str(correlation_id) {
        headers.insert(CORRELATION_HEADER, value);
    }
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = status;
    response.headers = headers;
    response.body = Some(Body::Text(body.to_string()));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::envelope::decode;
    use testkit::MemorySink;
    use domain::reading::Reading;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-24T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn request(body: &str, correlation: Option<&str>) -> ApiGatewayV2httpRequest {
        let mut req = ApiGatewayV2httpRequest::default();
        req.body = Some(body.to_string());
        req.request_context.request_id = Some("req-1".into());
        if let Some(c) = correlation {
            req.headers
                .insert(CORRELATION_HEADER, HeaderValue::from_str(c).unwrap());
        }
        req
    }

    fn reading(patient: &str, value: f64) -> Value {
        json!({"patientId": patient, "type": "heart_rate", "value": value, "unit": "bpm",
               "timestamp": "2026-11-24T09:59:00Z", "deviceId": "dev-1"})
    }

    fn body_json(resp: &ApiGatewayV2httpResponse) -> Value {
        match &resp.body {
            Some(Body::Text(t)) => serde_json::from_str(t).unwrap(),
            other => panic!("unexpected body {other:?}"),
        }
    }

    #[tokio::test]
    async fn accepted_readings_go_to_the_stream_by_patient_with_the_correlation_id() {
        let sink = MemorySink::default();
        let body = json!([reading("p-1", 80.0), reading("p-2", 90.0)]).to_string();
        let resp = handle(&sink, &request(&body, Some("corr-42")), now()).await;
        assert_eq!(resp.status_code, 202);
        let json = body_json(&resp);
        assert_eq!(json["accepted"], 2);
        assert_eq!(json["correlationId"], "corr-42");

        let records = sink.records.lock().unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].partition_key, "p-1");
        let env: Envelope<Reading> = decode(&records[1].data).unwrap();
        assert_eq!(env.correlation_id, "corr-42");
        assert_eq!(env.causation_id, "req-1");
        assert_eq!(env.data.patient_id, "p-2");
        assert_eq!(json["eventIds"][1], env.event_id);
    }

    #[tokio::test]
    async fn invalid_readings_get_400_naming_fields_and_nothing_is_written() {
        let sink = MemorySink::default();
        let mut bad = reading("p-1", 80.0);
        bad["type"] = json!("mood");
        let body = json!([reading("p-1", 80.0), bad]).to_string();
        let resp = handle(&sink, &request(&body, None), now()).await;
        assert_eq!(resp.status_code, 400);
        let json = body_json(&resp);
        assert_eq!(json["error"], "ValidationFailed");
        assert_eq!(json["errors"][0]["field"], "readings[1].type");
        assert!(sink.records.lock().unwrap().is_empty());
        // A fresh correlation id is made when the caller sends none.
        assert_eq!(json["correlationId"].as_str().unwrap().len(), 36);
    }

    #[tokio::test]
    async fn more_than_500_readings_is_413() {
        let sink = MemorySink::default();
        let body = json!(vec![reading("p-1", 80.0); 501]).to_string();
        let resp = handle(&sink, &request(&body, None), now()).await;
        assert_eq!(resp.status_code, 413);
        assert!(
            body_json(&resp)["message"]
                .as_str()
                .unwrap()
                .contains("501")
        );
        assert!(sink.records.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_stream_failure_is_503_and_a_bad_correlation_header_is_replaced() {
        let sink = MemorySink::default();
        *sink.fail_with.lock().unwrap() = Some("throttled".into());
        let body = reading("p-1", 80.0).to_string();
        let resp = handle(&sink, &request(&body, Some("bad id with spaces")), now()).await;
        assert_eq!(resp.status_code, 503);
        assert_ne!(body_json(&resp)["correlationId"], "bad id with spaces");
    }

    #[tokio::test]
    async fn base64_bodies_are_decoded() {
        let sink = MemorySink::default();
        let body =
            base64::engine::general_purpose::STANDARD.encode(reading("p-1", 80.0).to_string());
        let mut req = request(&body, None);
        req.is_base64_encoded = true;
        let resp = handle(&sink, &req, now()).await;
        assert_eq!(resp.status_code, 202);
    }
}
