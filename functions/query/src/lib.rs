//! `query`: the query API, the dashboard's read routes (HTTP API, payload format 2.0).
//!
//! Every list is served from one of the dashboard table's indexes (`application::views`,
//! `domain::dashboard::listing`), newest first, never from a scan. The shared request
//! helpers are [`paging`] (limit, opaque cursor, the paging loop that fills a page through
//! filters) and [`respond`] (ETag, `304` on `If-None-Match`, `Cache-Control`). Each route
//! is one module; [`handle`] dispatches on the route key.
//!
//! Routes: `GET /alerts` ([`alerts`]), `GET /alerts/{id}` ([`alert`], with the alert's
//! timeline from the event store), `GET /workers/{id}/inbox` ([`inbox`]),
//! `GET /emergencies` ([`emergencies`]); issue 14's read side (docs/read-side.md):
//! `GET /patients/{id}` ([`patients`]), `GET /patients/{id}/readings` ([`readings`]) and
//! `GET /villages/{id}/stats` ([`villages`]), with [`recent`] shared by the first two.
//!
//! Authorization (docs/security.md): the caller comes from the authorizer context; devices
//! and services read nothing (403). Lists keep only the items of the caller's patients
//! (`domain::access::permitted`, `Action::ReadAlerts` / `Action::ListEmergencies`), so an
//! operator sees everything, a supervisor their district, a health worker their assigned
//! and roster patients; a health worker reads only their own inbox.

use application::event_store::EventStreams;
use application::ports::{AccessDirectory, ReadModels};
use application::views::ViewQueries;
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use domain::access::{Caller, Role};
use domain::upcast::Upcasters;
use lambda_kit::http::{self, HttpError};
use serde_json::Value;
use tracing::Instrument;

pub mod alert;
pub mod alerts;
pub mod emergencies;
pub mod inbox;
pub mod paging;
pub mod patients;
pub mod readings;
pub mod recent;
pub mod respond;
pub mod summary;
pub mod villages;

/// The function name used in logs and metrics.
pub const SOURCE: &str = "query";

/// What the query API reads.
pub struct Deps<'a> {
    /// The dashboard table's indexes.
    pub views: &'a dyn ViewQueries,
    /// The dashboard table by key (`GET /alerts/{id}`).
    pub models: &'a dyn ReadModels,
    /// The event store (an alert's timeline).
    pub events: &'a dyn EventStreams,
    /// Who may read whose patients.
    pub access: &'a dyn AccessDirectory,
    pub upcasters: &'a Upcasters,
    /// Recent vitals: the hour blocks (docs/read-side.md).
    pub vitals: &'a dyn application::vitals::RecentVitals,
    /// Detect's state: the hours not written to the vitals table yet (read only).
    pub states: &'a dyn application::ports::PatientStateStore,
    /// The village statistics.
    pub stats: &'a dyn application::vitals::VillageStats,
    /// The request's time (the default windows end now).
    pub now: chrono::DateTime<chrono::Utc>,
}

/// A route's answer: the status, the JSON body, and how long a client may cache it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub max_age_seconds: u32,
}

/// `Cache-Control: private, max-age=5` for live lists and views.
pub const LIVE_MAX_AGE_SECONDS: u32 = 5;

impl Reply {
    pub fn live(body: Value) -> Reply {
        Reply {
            status: 200,
            body,
            max_age_seconds: LIVE_MAX_AGE_SECONDS,
        }
    }
}

/// Why an invocation is not an HTTP request this function answers.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("not an HTTP API request: {0}")]
    NotHttp(String),
}

/// Handles one invocation (an HTTP API request).
pub async fn invoke(deps: &Deps<'_>, payload: Value) -> Result<Value, QueryError> {
    let request: ApiGatewayV2httpRequest =
        serde_json::from_value(payload).map_err(|e| QueryError::NotHttp(e.to_string()))?;
    let response = handle(deps, &request).await;
    serde_json::to_value(response).map_err(|e| QueryError::NotHttp(e.to_string()))
}

/// The caller as the authorization rules know it; devices and services read nothing.
pub fn reader(request: &ApiGatewayV2httpRequest) -> Result<Caller, HttpError> {
    let caller = http::caller(request)?;
    match caller.role {
        Role::HealthWorker | Role::Supervisor | Role::Operator => Ok(caller),
        Role::Device | Role::Service => Err(HttpError::forbidden(format!(
            "{} may not read the dashboard (people only)",
            caller.id
        ))),
    }
}

/// Handles one HTTP request: every outcome is a response; errors are JSON
/// (`{"error","message","correlationId"}`) and carry the request's correlation id.
pub async fn handle(
    deps: &Deps<'_>,
    request: &ApiGatewayV2httpRequest,
) -> ApiGatewayV2httpResponse {
    let correlation_id = http::correlation_id(request);
    let route = request.route_key.as_deref().unwrap_or_default();
    let span = tracing::info_span!("query", correlation_id = %correlation_id, route);
    async {
        let id = request.path_parameters.get("id").map(String::as_str);
        let result = match reader(request) {
            Err(error) => Err(error),
            Ok(caller) => match (route, id) {
                ("GET /alerts", _) => alerts::list(deps, &caller, request).await,
                ("GET /alerts/{id}", Some(id)) => alert::get(deps, &caller, id).await,
                ("GET /workers/{id}/inbox", Some(id)) => {
                    inbox::list(deps, &caller, id, request).await
                }
                ("GET /emergencies", _) => emergencies::list(deps, &caller, request).await,
                ("GET /patients/{id}", Some(id)) => {
                    patients::get(deps, &caller, id, deps.now).await
                }
                ("GET /patients/{id}/readings", Some(id)) => {
                    readings::list(deps, &caller, id, request, deps.now).await
                }
                ("GET /villages/{id}/stats", Some(id)) => {
                    villages::stats(deps, &caller, id, request, deps.now).await
                }
                _ => Err(HttpError::not_found(format!("no route {route}"))),
            },
        };
        match result {
            Ok(reply) => respond::cacheable(request, &reply, &correlation_id),
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
