//! HTTP API: `POST /emergencies`, `GET /emergencies/{id}`, `POST /alerts/{id}/ack`.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use chrono::{DateTime, Utc};
use domain::ids::{deterministic_id, random_id};
use domain::saga::{EmergencyStarted, SagaInput, SagaState};
use serde::Deserialize;
use serde_json::{Value, json};

use lambda_kit::http::{self, HttpError};
use tracing::Instrument;

use crate::ack::{self, AckOutcome};
use crate::{Deps, EmergencyError, coordinator};

/// Handles one HTTP request. Every outcome is an HTTP response; errors are JSON
/// (`lambda_kit::http`) and carry the request's correlation id.
pub async fn handle(
    deps: &Deps<'_>,
    request: &ApiGatewayV2httpRequest,
    now: DateTime<Utc>,
) -> ApiGatewayV2httpResponse {
    let correlation_id = http::correlation_id(request);
    let route = request.route_key.as_deref().unwrap_or_default();
    // Instrumented (not entered): the span must follow the future across awaits.
    let span = tracing::info_span!("api", correlation_id = %correlation_id, route);
    async {
        let id = request.path_parameters.get("id").cloned();
        let result = match (route, id) {
            ("POST /emergencies", _) => raise_emergency(deps, request, &correlation_id, now).await,
            ("GET /emergencies/{id}", Some(id)) => get_emergency(deps, &id).await,
            ("POST /alerts/{id}/ack", Some(id)) => acknowledge(deps, request, &id, now).await,
            _ => Err(HttpError::not_found(format!("no route {route}"))),
        };
        match result {
            Ok((status, body)) => http::json_response(status, &body, &correlation_id),
            Err(error) => {
                if error.status >= 500 {
                    tracing::error!(%error, "request failed");
                } else {
                    tracing::info!(%error, "request refused");
                }
                error.response(&correlation_id)
            }
        }
    }
    .instrument(span)
    .await
}

type Reply = Result<(u16, Value), HttpError>;

fn internal(err: impl std::fmt::Display) -> HttpError {
    HttpError::internal(err.to_string())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RaiseEmergency {
    patient_id: Option<String>,
    reason: Option<String>,
    reporter: Option<String>,
    #[serde(default)]
    ambulance_required: bool,
}

/// Starts a saga. The `Idempotency-Key` header makes a repeated request start nothing new.
async fn raise_emergency(
    deps: &Deps<'_>,
    request: &ApiGatewayV2httpRequest,
    correlation_id: &str,
    now: DateTime<Utc>,
) -> Reply {
    let body: RaiseEmergency = serde_json::from_value(http::json_body(request)?)
        .map_err(|e| HttpError::bad_request(format!("invalid emergency: {e}")))?;
    let mut missing = Vec::new();
    let mut field = |value: &Option<String>, name: &'static str| {
        let v = value
            .as_deref()
            .map(str::trim)
            .unwrap_or_default()
            .to_string();
        if v.is_empty() {
            missing.push(name);
        }
        v
    };
    let patient_id = field(&body.patient_id, "patientId");
    let reason = field(&body.reason, "reason");
    let reporter = field(&body.reporter, "reporter");
    if !missing.is_empty() {
        return Err(HttpError::bad_request(format!(
            "missing or empty fields: {}",
            missing.join(", ")
        )));
    }
    let entry = deps
        .directory
        .get(&patient_id)
        .await
        .map_err(internal)?
        .ok_or_else(|| {
            HttpError::not_found(format!("patient {patient_id} is not in the directory"))
        })?;
    let emergency_id = match http::header(request, "idempotency-key") {
        Some(key) if !key.trim().is_empty() => deterministic_id(&["emergency", "request", key]),
        _ => random_id(),
    };
    let started = EmergencyStarted {
        emergency_id: emergency_id.clone(),
        patient_id,
        village: entry.village,
        reason,
        reporter,
        ambulance_required: body.ambulance_required,
    };
    let input_id = deterministic_id(&["start", &emergency_id]);
    let state = coordinator::advance(
        deps,
        &emergency_id,
        &SagaInput::Start(started),
        &input_id,
        correlation_id,
        now,
    )
    .await
    .map_err(internal)?;
    Ok((
        202,
        json!({ "emergencyId": emergency_id, "status": state.status }),
    ))
}

/// The saga's current state and its history.
async fn get_emergency(deps: &Deps<'_>, emergency_id: &str) -> Reply {
    let (stored, events) = coordinator::load(deps, emergency_id)
        .await
        .map_err(internal)?;
    if stored.is_empty() {
        return Err(HttpError::not_found(format!("no emergency {emergency_id}")));
    }
    let state = SagaState::fold(&events);
    let history: Vec<Value> = stored
        .iter()
        .enumerate()
        .map(|(i, e)| {
            json!({
                "version": i + 1,
                "eventType": e.event_type,
                "timestamp": e.timestamp,
                "data": e.data,
            })
        })
        .collect();
    Ok((
        200,
        json!({ "emergencyId": emergency_id, "state": state, "history": history }),
    ))
}

/// Records `AlertAcknowledged` once ([`ack::acknowledge_alert`]); a repeat answers 200 with
/// `alreadyAcknowledged`.
async fn acknowledge(
    deps: &Deps<'_>,
    request: &ApiGatewayV2httpRequest,
    alert_id: &str,
    now: DateTime<Utc>,
) -> Reply {
    let body: Value = http::json_body(request)?;
    let by = body
        .get("workerId")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    let already = match ack::acknowledge_alert(deps, alert_id, by, now).await {
        Ok(AckOutcome::Acknowledged) => false,
        Ok(AckOutcome::AlreadyAcknowledged) => true,
        Ok(AckOutcome::NoAlert) => {
            return Err(HttpError::not_found(format!("no alert {alert_id}")));
        }
        Ok(AckOutcome::NotRouted) => {
            return Err(HttpError::new(
                409,
                "Conflict",
                format!("alert {alert_id} is not routed yet"),
            ));
        }
        Err(EmergencyError::Busy(message)) => return Err(HttpError::new(503, "Busy", message)),
        Err(err) => return Err(internal(err)),
    };
    Ok((
        200,
        json!({ "alertId": alert_id, "acknowledged": true, "alreadyAcknowledged": already }),
    ))
}
