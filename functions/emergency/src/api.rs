//! HTTP API: `POST /emergencies`, `GET /emergencies/{id}`, `POST /emergencies/{id}/close`,
//! `POST /emergencies/{id}/ambulance`, `POST /alerts/{id}/ack`.
//!
//! HTTP requests get no redelivery, so a request handler does one side effect: it checks
//! the request against the saga's current state and puts the input on the saga queue (SQS
//! redelivers from there; the coordinator applies it). A client whose request failed (or
//! whose function died mid-request) retries it. `POST /emergencies` therefore requires an
//! `Idempotency-Key`: the emergency id derives from the caller and the key, and the input's
//! id from the emergency, so a retry is a duplicate input the coordinator recognises (and,
//! finding the latest fact is its own, re-sends what may not have been sent). Close and
//! ambulance requests are one per emergency and idempotent the same way.
//!
//! Every request is authorized (docs/security.md) before it queues or records anything:
//! the caller comes from the authorizer context ([`http::caller`]), the patient from the
//! body (`POST /emergencies`) or from the emergency's or alert's stream, and the decision
//! from [`application::access::check`]. A caller who may not act on the patient gets a 403
//! with the reason, and nothing is written or queued.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use chrono::{DateTime, Utc};
use domain::envelope::{Envelope, Lineage};
use domain::ids::deterministic_id;
use domain::saga::{EmergencyStarted, SagaInput, SagaState, Status};
use serde::Deserialize;
use serde_json::{Value, json};

use lambda_kit::http::{self, HttpError};
use tracing::Instrument;

use crate::ack::{self, AckOutcome};
use crate::{Deps, EmergencyError, SOURCE, coordinator};
use application::access;
use application::ports::{Channel, StoredEvent};
use domain::access::{Action, Caller};
use domain::events::alert_stream;
use domain::saga::SagaMessage;
use lambda_kit::fault::crash_point;

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
        let result = match http::caller(request) {
            Err(error) => Err(error),
            Ok(caller) => match (route, id) {
                _ if let Err(refused) = crate::validate::request(route, request) => Err(refused),
                ("POST /emergencies", _) => {
                    raise_emergency(deps, request, &caller, &correlation_id, now).await
                }
                ("GET /emergencies/{id}", Some(id)) => get_emergency(deps, &caller, &id).await,
                // The worker on site closes the emergency: released, the family told.
                ("POST /emergencies/{id}/close", Some(id)) => {
                    let input = SagaInput::Close {
                        closed_by: caller.id.clone(),
                    };
                    let done = |s: &SagaState| s.closed.is_some();
                    let what = ("close", input, done);
                    on_site_request(deps, &caller, &id, what, &correlation_id, now).await
                }
                // The worker on site asks for an ambulance: the saga dispatches one.
                ("POST /emergencies/{id}/ambulance", Some(id)) => {
                    let input = SagaInput::RequestAmbulance {
                        requested_by: caller.id.clone(),
                    };
                    let done = |s: &SagaState| s.ambulance_requested || s.ambulance_dispatched;
                    let what = ("ambulance", input, done);
                    on_site_request(deps, &caller, &id, what, &correlation_id, now).await
                }
                ("POST /alerts/{id}/ack", Some(id)) => acknowledge(deps, &caller, &id, now).await,
                _ => Err(HttpError::not_found(format!("no route {route}"))),
            },
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

/// The longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;

/// Refuses the request (403, with the reason) unless `caller` may do `action` to
/// `patient_id`.
async fn authorize(
    deps: &Deps<'_>,
    caller: &Caller,
    action: Action,
    patient_id: &str,
) -> Result<(), HttpError> {
    match access::check(deps.access, caller, action, [patient_id]).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(denied)) => Err(HttpError::forbidden(denied.reason)),
        Err(err) => Err(HttpError::new(
            503,
            "DirectoryUnavailable",
            format!("who may act on this patient could not be checked; retry: {err}"),
        )),
    }
}

/// The patient of a saga, if it has started; a saga without one is no emergency yet.
fn patient_of(state: &SagaState, emergency_id: &str) -> Result<String, HttpError> {
    state
        .started
        .as_ref()
        .map(|s| s.patient_id.clone())
        .ok_or_else(|| HttpError::not_found(format!("no emergency {emergency_id}")))
}

/// The stored events and state of an emergency `caller` may do `action` to: 404 when there
/// is no such emergency (nothing stored, or no start), 403 when the caller may not.
async fn authorized_emergency(
    deps: &Deps<'_>,
    caller: &Caller,
    emergency_id: &str,
    action: Action,
) -> Result<(Vec<StoredEvent>, SagaState), HttpError> {
    let (stored, events) = coordinator::load(deps, emergency_id)
        .await
        .map_err(internal)?;
    let state = SagaState::fold(&events);
    let patient_id = patient_of(&state, emergency_id)?;
    authorize(deps, caller, action, &patient_id).await?;
    Ok((stored, state))
}

/// Starts a saga. The `Idempotency-Key` header is required and scoped to the caller: the
/// same caller and key name the same emergency, and a repeat with another payload is a 409.
async fn raise_emergency(
    deps: &Deps<'_>,
    request: &ApiGatewayV2httpRequest,
    caller: &Caller,
    correlation_id: &str,
    now: DateTime<Utc>,
) -> Reply {
    let key = http::header(request, "idempotency-key")
        .map(str::trim)
        .unwrap_or_default();
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN {
        return Err(HttpError::bad_request(format!(
            "an Idempotency-Key header of 1 to {MAX_IDEMPOTENCY_KEY_LEN} characters is required (a retry with the same key never starts a second emergency)"
        )));
    }
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
    authorize(deps, caller, Action::RaiseEmergency, &patient_id).await?;
    let emergency_id = deterministic_id(&["emergency", "request", &caller.id, key]);
    let ambulance = if body.ambulance_required { "1" } else { "0" };
    let request_hash = deterministic_id(&[&patient_id, &reason, &reporter, ambulance]);
    let (stored, events) = coordinator::load(deps, &emergency_id)
        .await
        .map_err(internal)?;
    if !stored.is_empty() {
        let state = SagaState::fold(&events);
        let same = state
            .started
            .as_ref()
            .is_some_and(|s| s.request_hash.as_deref() == Some(request_hash.as_str()));
        if !same {
            return Err(HttpError::new(
                409,
                "Conflict",
                "this Idempotency-Key was used for another emergency; use a new key".to_string(),
            ));
        }
        // A retry of a request whose emergency has started: nothing to queue again.
        return Ok((
            202,
            json!({ "emergencyId": emergency_id, "status": state.status }),
        ));
    }
    let entry = deps
        .directory
        .get(&patient_id)
        .await
        .map_err(internal)?
        .ok_or_else(|| {
            HttpError::not_found(format!("patient {patient_id} is not in the directory"))
        })?;
    let started = EmergencyStarted {
        emergency_id: emergency_id.clone(),
        patient_id,
        village: entry.village,
        reason,
        reporter,
        ambulance_required: body.ambulance_required,
        request_hash: Some(request_hash),
    };
    let input = SagaInput::Start(started);
    enqueue(deps, &emergency_id, "start", input, correlation_id, now).await?;
    Ok((
        202,
        json!({ "emergencyId": emergency_id, "status": "accepted" }),
    ))
}

/// Puts `input` for the saga on the saga queue, as the message `{what}` of this emergency
/// (one per emergency: a retry is a duplicate).
async fn enqueue(
    deps: &Deps<'_>,
    emergency_id: &str,
    what: &str,
    input: SagaInput,
    correlation_id: &str,
    now: DateTime<Utc>,
) -> Result<(), HttpError> {
    let message = Envelope::new(
        deterministic_id(&[what, emergency_id]),
        SOURCE,
        Lineage {
            correlation_id: correlation_id.to_string(),
            causation_id: correlation_id.to_string(),
        },
        now,
        SagaMessage {
            emergency_id: emergency_id.to_string(),
            input,
        },
    );
    let body = serde_json::to_string(&message).map_err(internal)?;
    deps.bus
        .send(Channel::Saga, &message.event_type, &body, 0)
        .await
        .map_err(internal)?;
    crash_point("api.after_enqueue");
    tracing::info!(emergency_id, what, "saga input queued");
    Ok(())
}

/// A request for an emergency on site (one of each per emergency): 202 when queued, 200 when
/// it was already done, 404 for no emergency, 409 when the emergency is not on site.
async fn on_site_request(
    deps: &Deps<'_>,
    caller: &Caller,
    emergency_id: &str,
    (what, input, already_done): (&str, SagaInput, impl Fn(&SagaState) -> bool),
    correlation_id: &str,
    now: DateTime<Utc>,
) -> Reply {
    let (_, state) =
        authorized_emergency(deps, caller, emergency_id, Action::UpdateEmergency).await?;
    let reply = |status: u16, done: bool| {
        Ok((
            status,
            json!({ "emergencyId": emergency_id, "status": state.status, "alreadyDone": done }),
        ))
    };
    if already_done(&state) {
        return reply(200, true);
    }
    if state.status != Status::OnSite {
        return Err(HttpError::new(
            409,
            "Conflict",
            format!(
                "emergency {emergency_id} is {}, not on site: nothing to {what}",
                serde_json::to_value(state.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            ),
        ));
    }
    enqueue(deps, emergency_id, what, input, correlation_id, now).await?;
    reply(202, false)
}

/// The saga's current state and its history.
async fn get_emergency(deps: &Deps<'_>, caller: &Caller, emergency_id: &str) -> Reply {
    let (stored, state) =
        authorized_emergency(deps, caller, emergency_id, Action::ReadEmergency).await?;
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

/// Records `AlertAcknowledged` by the caller once ([`ack::acknowledge_alert`]); a repeat
/// answers 200 with `alreadyAcknowledged`. Who acknowledged is the caller, never the body.
async fn acknowledge(
    deps: &Deps<'_>,
    caller: &Caller,
    alert_id: &str,
    now: DateTime<Utc>,
) -> Reply {
    let stored = deps
        .reader
        .read_stream(&alert_stream(alert_id))
        .await
        .map_err(internal)?;
    let patient_id = stored
        .first()
        .and_then(|raised| raised.data.get("patientId"))
        .and_then(Value::as_str)
        .ok_or_else(|| HttpError::not_found(format!("no alert {alert_id}")))?;
    authorize(deps, caller, Action::AcknowledgeAlert, patient_id).await?;
    let already = match ack::acknowledge_alert(deps, alert_id, &caller.id, now).await {
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
