//! `directory`: the onboarding API (issue 14), so an operator never writes DynamoDB by hand.
//!
//! - `PUT /patients/{id}`: the patient's directory entry, family contact and wearables.
//! - `PUT /workers/{id}`: the worker (workers table) and their place on village rosters.
//! - `POST /import`: a CSV of patients and workers, all validated before anything is written.
//!
//! Operators only (`domain::access::Action::ManageDirectory`): any other caller is a 403
//! before the body is read, and nothing is read or written. Bad input is a 400 (not JSON or
//! CSV at all), a 413 (too large) or a 422 naming every bad field (`fields`) or line
//! (`lines`). Every write goes through [`DirectoryWriter::write_all`] (one transaction);
//! docs/onboarding.md has the routes, the CSV format and the crash argument.

use application::ports::{
    AccessDirectory, Contacts, Directory, DirectoryWriter, PortError, Workers,
};
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use domain::access::{Action, Caller, DeviceBinding, DirectoryFacts, Lookup, authorize};
use domain::onboarding::FieldError;
use lambda_kit::http::{self, HttpError};
use serde_json::{Map, Value, json};
use tracing::Instrument;

mod import;
mod patients;
mod workers;

pub use import::{MAX_IMPORT_BYTES, MAX_IMPORT_ROWS};

/// The function name (logs, metrics).
pub const SOURCE: &str = "directory";

/// The largest `PUT` body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What the onboarding API reads and writes.
pub struct Deps<'a> {
    /// Patient entries (who was there before a `PUT`).
    pub directory: &'a dyn Directory,
    /// Village rosters and family contacts.
    pub contacts: &'a dyn Contacts,
    /// Device bindings (is a wearable bound to another patient?).
    pub access: &'a dyn AccessDirectory,
    /// The workers table (does the assigned worker exist?).
    pub workers: &'a dyn Workers,
    pub writer: &'a dyn DirectoryWriter,
}

/// A refused or failed request: an HTTP error with extra body fields (`fields`, `lines`).
#[derive(Debug)]
pub struct ApiError {
    pub error: HttpError,
    pub extra: Map<String, Value>,
}

impl From<HttpError> for ApiError {
    fn from(error: HttpError) -> ApiError {
        ApiError {
            error,
            extra: Map::new(),
        }
    }
}

impl ApiError {
    /// 422 `ValidationFailed` naming every bad field.
    pub fn invalid(fields: Vec<FieldError>) -> ApiError {
        let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
        ApiError {
            error: HttpError::new(
                422,
                "ValidationFailed",
                format!("{} invalid field(s): {}", fields.len(), names.join(", ")),
            ),
            extra: Map::from_iter([("fields".to_string(), json!(fields))]),
        }
    }
}

/// The answer of a port failure: a roster changed under us (409, retry) or the tables could
/// not be read or written (503); nothing half-written either way (one transaction).
pub(crate) fn port_error(err: PortError) -> ApiError {
    match err {
        PortError::Conflict { .. } => HttpError::new(
            409,
            "Conflict",
            "a village roster changed while this request was applied; nothing was written, retry",
        )
        .into(),
        other => HttpError::new(
            503,
            "DirectoryUnavailable",
            format!(
                "the directory could not be read or written; nothing was written, retry: {other}"
            ),
        )
        .into(),
    }
}

pub(crate) type Reply = Result<(u16, Value), ApiError>;

/// Handles one HTTP request; every outcome is a JSON response with the correlation id.
pub async fn handle(
    deps: &Deps<'_>,
    request: &ApiGatewayV2httpRequest,
) -> ApiGatewayV2httpResponse {
    let correlation_id = http::correlation_id(request);
    let route = request.route_key.as_deref().unwrap_or_default();
    let span = tracing::info_span!("onboarding", correlation_id = %correlation_id, route);
    async {
        let result = match http::caller(request) {
            Err(error) => Err(error.into()),
            Ok(caller) => route_request(deps, request, route, &caller).await,
        };
        match result {
            Ok((status, body)) => http::json_response(status, &body, &correlation_id),
            Err(ApiError { error, extra }) => {
                if error.status >= 500 {
                    tracing::error!(%error, "request failed");
                } else {
                    tracing::info!(%error, "request refused");
                }
                http::error_response(
                    error.status,
                    error.code,
                    &error.message,
                    extra,
                    &correlation_id,
                )
            }
        }
    }
    .instrument(span)
    .await
}

async fn route_request(
    deps: &Deps<'_>,
    request: &ApiGatewayV2httpRequest,
    route: &str,
    caller: &Caller,
) -> Reply {
    // The role alone decides (operators only): nothing is read before it.
    authorize(
        caller,
        Action::ManageDirectory,
        [],
        &DirectoryFacts::default(),
    )
    .map_err(|denied| HttpError::forbidden(denied.reason))?;
    let id = request
        .path_parameters
        .get("id")
        .cloned()
        .unwrap_or_default();
    match route {
        "PUT /patients/{id}" => patients::put(deps, &id, json_body(request)?).await,
        "PUT /workers/{id}" => workers::put(deps, &id, json_body(request)?).await,
        "POST /import" => import::import(deps, &text_body(request, MAX_IMPORT_BYTES)?).await,
        _ => Err(HttpError::not_found(format!("no route {route}")).into()),
    }
}

/// The body as UTF-8 text, at most `limit` bytes (413 beyond).
fn text_body(request: &ApiGatewayV2httpRequest, limit: usize) -> Result<String, ApiError> {
    let bytes = http::body(request)?;
    if bytes.len() > limit {
        return Err(HttpError::new(
            413,
            "PayloadTooLarge",
            format!("the body has {} bytes; at most {limit}", bytes.len()),
        )
        .into());
    }
    String::from_utf8(bytes.into_owned())
        .map_err(|_| HttpError::new(400, "InvalidBody", "the body is not UTF-8 text").into())
}

/// The body as JSON into `T` (400 when it is not, naming the problem; 413 over
/// [`MAX_BODY_BYTES`]).
fn json_body<T: serde::de::DeserializeOwned>(
    request: &ApiGatewayV2httpRequest,
) -> Result<T, ApiError> {
    let text = text_body(request, MAX_BODY_BYTES)?;
    serde_json::from_str(&text).map_err(|e| {
        HttpError::new(400, "InvalidBody", format!("the body is not valid: {e}")).into()
    })
}

/// The binding of `client_id`, if any (one read).
pub(crate) async fn binding_of(
    deps: &Deps<'_>,
    client_id: &str,
) -> Result<Option<DeviceBinding>, ApiError> {
    let lookup = Lookup {
        device_id: Some(client_id.to_string()),
        ..Lookup::default()
    };
    Ok(deps.access.facts(&lookup).await.map_err(port_error)?.device)
}

/// Why `client_id` may not be bound to `patient_id`, if it may not: it is bound to another
/// patient (unbind it there first) or is a kiosk or phone.
pub(crate) fn binding_conflict(
    binding: Option<&DeviceBinding>,
    patient_id: &str,
) -> Option<String> {
    match binding {
        None => None,
        Some(DeviceBinding::Wearable { bound_patient_id }) if bound_patient_id == patient_id => {
            None
        }
        Some(DeviceBinding::Wearable { bound_patient_id }) => Some(format!(
            "is the wearable of patient {bound_patient_id}: remove it there first"
        )),
        Some(DeviceBinding::Kiosk { village }) => {
            Some(format!("is the kiosk of {village}, not a wearable"))
        }
        Some(DeviceBinding::Phone { worker_id }) => Some(format!(
            "is the phone of worker {worker_id}, not a wearable"
        )),
    }
}
