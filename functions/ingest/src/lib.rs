//! `ingest`: `POST /readings` (API Gateway HTTP API) -> readings stream (Kinesis).
//!
//! Accepts one reading or an array of up to 500, in the original shape or the product
//! spec's (`{patientId, type: "HeartRate", value, timestamp}`:
//! `domain::reading::spec_shape`). Either every reading is valid and all are put on the
//! stream (partition key = patient id), or the request is rejected with a JSON body naming
//! each problem and nothing is written.
//!
//! The caller must be allowed to post readings for every patient of the request
//! (docs/security.md): the directory facts are read in one batch, and one patient that is
//! not the caller's makes the whole request a 403 naming the patients; nothing is written.

pub mod canary;

use application::access;
use application::ports::{AccessDirectory, ReadingSink, StreamRecord};
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use chrono::{DateTime, Utc};
use domain::access::Action;
use domain::envelope::{Envelope, Lineage};
use domain::reading::{FieldError, Reading, RequestError, parse_readings, spec_shape};
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
    directory: &dyn AccessDirectory,
    request: &ApiGatewayV2httpRequest,
    now: DateTime<Utc>,
) -> ApiGatewayV2httpResponse {
    handle_until(sink, directory, request, now, None).await
}

/// [`handle`] within an invocation that ends at `deadline` (Lambda's): the stream is
/// retried only until shortly before it, so a stream that keeps refusing is answered with
/// the 503 below rather than a Lambda timeout.
pub async fn handle_until(
    sink: &dyn ReadingSink,
    directory: &dyn AccessDirectory,
    request: &ApiGatewayV2httpRequest,
    now: DateTime<Utc>,
    deadline: Option<DateTime<Utc>>,
) -> ApiGatewayV2httpResponse {
    let correlation_id = http::correlation_id(request);
    // Instrumented (not entered): the span must follow the future across awaits.
    let span = tracing::info_span!("ingest", correlation_id = %correlation_id);
    accept(sink, directory, request, now, deadline, correlation_id)
        .instrument(span)
        .await
}

async fn accept(
    sink: &dyn ReadingSink,
    directory: &dyn AccessDirectory,
    request: &ApiGatewayV2httpRequest,
    now: DateTime<Utc>,
    deadline: Option<DateTime<Utc>>,
    correlation_id: String,
) -> ApiGatewayV2httpResponse {
    let caller = match http::caller(request) {
        Ok(caller) => caller,
        Err(e) => {
            tracing::info!(error = %e, "rejected: no usable identity");
            return e.response(&correlation_id);
        }
    };
    let body = match http::body(request) {
        Ok(body) => body,
        Err(e) => return e.response(&correlation_id),
    };
    // A reading without `deviceId` (the product spec's shape) is the caller's: the device
    // itself, or `manual:{id}` for a person (domain::reading::spec_shape).
    let default_device = spec_shape::default_device_id(&caller);
    let readings = match parse_readings(&body, now, &default_device) {
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

    let patients = readings.iter().map(|r| r.patient_id.as_str());
    match access::check(directory, &caller, Action::PostReadings, patients).await {
        Ok(Ok(())) => {}
        Ok(Err(denied)) => {
            tracing::info!(caller = %caller.id, reason = %denied.reason, "rejected: forbidden");
            let mut extra = serde_json::Map::new();
            extra.insert("patientIds".into(), json!(denied.patient_ids));
            return http::error_response(403, "Forbidden", &denied.reason, extra, &correlation_id);
        }
        Err(e) => {
            tracing::error!(error = %e, "the directory could not be read");
            return error_response(
                503,
                "DirectoryUnavailable",
                "who may post these readings could not be checked; retry the same request",
                &[],
                &correlation_id,
            );
        }
    }

    let causation_id = request
        .request_context
        .request_id
        .clone()
        .unwrap_or_else(|| correlation_id.clone());
    let mut event_ids = Vec::with_capacity(readings.len());
    let mut records = Vec::with_capacity(readings.len());
    for reading in readings {
        let event_id = reading.event_id();
        let lineage = Lineage {
            correlation_id: correlation_id.clone(),
            causation_id: causation_id.clone(),
        };
        let record = match stream_record(reading, SOURCE, lineage, now) {
            Ok(record) => record,
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
        records.push(record);
    }

    let count = records.len();
    if let Err(e) = sink.put(records, deadline).await {
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

/// A reading as the stream carries it: its envelope (event id = the reading's id) as JSON,
/// partitioned by patient. The heartbeat's readings (`canary`) are put the same way.
pub fn stream_record(
    reading: Reading,
    source: &str,
    lineage: Lineage,
    now: DateTime<Utc>,
) -> Result<StreamRecord, serde_json::Error> {
    let partition_key = reading.patient_id.clone();
    let envelope = Envelope::new(reading.event_id(), source, lineage, now, reading);
    Ok(StreamRecord {
        partition_key,
        data: serde_json::to_vec(&envelope)?,
    })
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
    use domain::access::DeviceBinding;
    use domain::envelope::decode;
    use domain::escalation::VillageRoster;
    use domain::reading::Reading;
    use serde_json::Value;
    use testkit::{MemoryDirectory, MemorySink, fixtures};

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-24T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    /// A request by the operator `op-1` (who may post for any patient).
    fn request(body: &str, correlation: Option<&str>) -> ApiGatewayV2httpRequest {
        let claims = json!({"username": "op-1", "cognito:groups": "[operator]"});
        request_by(claims, body, correlation)
    }

    /// A request whose token has these claims (as API Gateway's JWT authorizer passes them).
    fn request_by(claims: Value, body: &str, correlation: Option<&str>) -> ApiGatewayV2httpRequest {
        let mut req = testkit::http::request_with_claims("POST", claims);
        req.body = Some(body.to_string());
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
        let resp = handle(
            &sink,
            &MemoryDirectory::default(),
            &request(&body, Some("corr-42")),
            now(),
        )
        .await;
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
        let resp = handle(
            &sink,
            &MemoryDirectory::default(),
            &request(&body, None),
            now(),
        )
        .await;
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
        let resp = handle(
            &sink,
            &MemoryDirectory::default(),
            &request(&body, None),
            now(),
        )
        .await;
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
        let resp = handle(
            &sink,
            &MemoryDirectory::default(),
            &request(&body, Some("bad id with spaces")),
            now(),
        )
        .await;
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
        let resp = handle(&sink, &MemoryDirectory::default(), &req, now()).await;
        assert_eq!(resp.status_code, 202);
    }

    // ---- Authorization (docs/security.md): the whole request, before anything is written.

    /// Given: Bondo (roster w-1, w-2; supervisor s-1) with p-1 (w-1) and p-2 (w-2); p-3 of
    /// Kibera (w-3); kiosk-3 in Bondo; p-9 not registered.
    fn directory() -> MemoryDirectory {
        let entry = |p: &str, village: &str, w: &str| {
            let mut e = fixtures::directory_entry(p, w, "+254700000001");
            e.village = village.into();
            e
        };
        MemoryDirectory::with([
            entry("p-1", "Bondo", "w-1"),
            entry("p-2", "Bondo", "w-2"),
            entry("p-3", "Kibera", "w-3"),
        ])
        .with_roster(VillageRoster {
            village: "Bondo".into(),
            worker_ids: vec!["w-1".into(), "w-2".into()],
            supervisor_id: "s-1".into(),
        })
        .with_device(
            "kiosk-3",
            DeviceBinding::Kiosk {
                village: "Bondo".into(),
            },
        )
    }

    fn person(id: &str, group: &str) -> Value {
        json!({"sub": "uuid", "client_id": "people", "username": id,
               "cognito:groups": format!("[{group}]"), "token_use": "access"})
    }

    fn device(id: &str) -> Value {
        json!({"sub": id, "client_id": id, "scope": "vitals/readings.write", "token_use": "access"})
    }

    async fn post(
        dir: &MemoryDirectory,
        claims: Value,
        patients: &[&str],
    ) -> (MemorySink, ApiGatewayV2httpResponse) {
        let sink = MemorySink::default();
        let body: Vec<Value> = patients.iter().map(|p| reading(p, 80.0)).collect();
        let resp = handle(
            &sink,
            dir,
            &request_by(claims, &json!(body).to_string(), None),
            now(),
        )
        .await;
        (sink, resp)
    }

    #[tokio::test]
    async fn without_an_authorizer_context_the_request_is_401_and_nothing_is_written() {
        let sink = MemorySink::default();
        let dir = directory();
        let mut req = ApiGatewayV2httpRequest::default();
        req.body = Some(reading("p-1", 80.0).to_string());
        let resp = handle(&sink, &dir, &req, now()).await;
        assert_eq!(resp.status_code, 401);
        assert_eq!(body_json(&resp)["error"], "Unauthorized");
        assert!(sink.records.lock().unwrap().is_empty());
        assert_eq!(dir.lookup_count(), 0);
    }

    #[tokio::test]
    async fn a_person_in_no_known_group_is_403_and_nothing_is_written() {
        let dir = directory();
        let (sink, resp) = post(&dir, person("w-1", "admins"), &["p-1"]).await;
        assert_eq!(resp.status_code, 403);
        assert!(sink.records.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_health_worker_posts_for_assigned_roster_and_unregistered_patients() {
        let dir = directory();
        let (sink, resp) = post(&dir, person("w-1", "health-worker"), &["p-1", "p-2", "p-9"]).await;
        assert_eq!(resp.status_code, 202, "{:?}", resp.body);
        assert_eq!(sink.records.lock().unwrap().len(), 3);
        assert_eq!(dir.lookup_count(), 2, "the patients, then Bondo's roster");
    }

    #[tokio::test]
    async fn one_foreign_patient_makes_the_whole_request_403_naming_it_and_nothing_is_written() {
        let dir = directory();
        let (sink, resp) = post(&dir, person("w-1", "health-worker"), &["p-1", "p-3", "p-1"]).await;
        assert_eq!(resp.status_code, 403);
        let json = body_json(&resp);
        assert_eq!(json["error"], "Forbidden");
        assert_eq!(json["patientIds"], json!(["p-3"]));
        assert!(json["message"].as_str().unwrap().contains("p-3"), "{json}");
        assert!(json["correlationId"].is_string());
        assert!(sink.records.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn five_hundred_readings_of_own_patients_cost_one_directory_read() {
        let dir = directory();
        let ids: Vec<String> = (0..500).map(|i| format!("q-{i}")).collect();
        for id in &ids {
            let e = fixtures::directory_entry(id, "w-1", "+254700000001");
            dir.entries.lock().unwrap().insert(id.clone(), e);
        }
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let (sink, resp) = post(&dir, person("w-1", "health-worker"), &refs).await;
        assert_eq!(resp.status_code, 202);
        assert_eq!(sink.records.lock().unwrap().len(), 500);
        assert_eq!(dir.lookup_count(), 1);
        assert_eq!(dir.lookups.lock().unwrap()[0].patient_ids.len(), 500);
    }

    #[tokio::test]
    async fn a_kiosk_posts_for_its_village_only() {
        let dir = directory();
        let (sink, resp) = post(&dir, device("kiosk-3"), &["p-1", "p-2"]).await;
        assert_eq!(resp.status_code, 202);
        assert_eq!(sink.records.lock().unwrap().len(), 2);
        let (sink, resp) = post(&dir, device("kiosk-3"), &["p-1", "p-3"]).await;
        assert_eq!(resp.status_code, 403);
        assert_eq!(body_json(&resp)["patientIds"], json!(["p-3"]));
        assert!(sink.records.lock().unwrap().is_empty());
        let (sink, resp) = post(&dir, device("unbound-1"), &["p-9"]).await;
        assert_eq!(resp.status_code, 403);
        assert!(sink.records.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_supervisor_may_not_post_readings() {
        let dir = directory();
        let (sink, resp) = post(&dir, person("s-1", "supervisor"), &["p-1"]).await;
        assert_eq!(resp.status_code, 403);
        assert!(sink.records.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_operator_posts_for_any_patient_without_reading_the_directory() {
        let dir = directory();
        let (sink, resp) = post(&dir, person("op-1", "operator"), &["p-1", "p-3", "p-9"]).await;
        assert_eq!(resp.status_code, 202);
        assert_eq!(sink.records.lock().unwrap().len(), 3);
        assert_eq!(dir.lookup_count(), 0);
    }

    struct DownDirectory;

    #[async_trait::async_trait]
    impl AccessDirectory for DownDirectory {
        async fn facts(
            &self,
            _: &domain::access::Lookup,
        ) -> Result<domain::access::DirectoryFacts, application::ports::PortError> {
            Err(application::ports::PortError::Backend("throttled".into()))
        }
    }

    #[tokio::test]
    async fn when_the_directory_cannot_be_read_the_request_is_503_and_nothing_is_written() {
        let sink = MemorySink::default();
        let body = reading("p-1", 80.0).to_string();
        let req = request_by(person("w-1", "health-worker"), &body, None);
        let resp = handle(&sink, &DownDirectory, &req, now()).await;
        assert_eq!(resp.status_code, 503);
        assert_eq!(body_json(&resp)["error"], "DirectoryUnavailable");
        assert!(sink.records.lock().unwrap().is_empty());
    }
}
