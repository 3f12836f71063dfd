//! `ingest`: `POST /readings` (API Gateway HTTP API) -> readings stream (Kinesis).
//!
//! Accepts one reading or an array of up to 500. Either every reading is valid and all are
//! put on the stream (partition key = patient id), or the request is rejected with a JSON
//! body naming each problem and nothing is written.

use application::ports::{ReadingSink, StreamRecord};
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use chrono::{DateTime, Utc};
use domain::envelope::{Envelope, Lineage};
use domain::reading::{FieldError, RequestError, parse_readings};
use lambda_kit::{http, metrics};
use serde_json::json;
use tracing::Instrument;

mod listing;
pub use listing::MAX_LISTED_ERRORS;

/// The function name recorded as the `source` of the events it emits.
pub const SOURCE: &str = "ingest";
/// Header carrying the caller's correlation id (case-insensitive).
pub use lambda_kit::http::CORRELATION_HEADER;

/// Handles one HTTP request. Never fails: every outcome is an HTTP response.
pub async fn handle(
    sink: &dyn ReadingSink,
    request: &ApiGatewayV2httpRequest,
    now: DateTime<Utc>,
) -> ApiGatewayV2httpResponse {
    let correlation_id = http::correlation_id(request);
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
    let body = match http::body(request) {
        Ok(body) => body,
        Err(e) => return e.response(&correlation_id),
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
    lambda_kit::fault::crash_point("ingest.after_put");
    tracing::info!(accepted = count, "readings accepted");
    metrics::count(metrics::READINGS_INGESTED, count);
    http::json_response(
        202,
        &json!({"accepted": count, "eventIds": event_ids, "correlationId": correlation_id}),
        &correlation_id,
    )
}

fn error_response(
    status: u16,
    error: &str,
    message: &str,
    fields: &[FieldError],
    correlation_id: &str,
) -> ApiGatewayV2httpResponse {
    let mut extra = serde_json::Map::new();
    listing::add_errors(&mut extra, fields);
    http::error_response(status, error, message, extra, correlation_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::encodings::Body;
    use aws_lambda_events::http::HeaderValue;
    use base64::Engine;
    use domain::envelope::decode;
    use domain::reading::Reading;
    use serde_json::Value;
    use testkit::MemorySink;

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
