//! The Lambda Runtime API of one process incarnation: `/next` hands over an invocation,
//! `/response` and `/error` complete it, `/init/error` reports a failed init.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::InvokeOutcome;

/// Largest response a function may post (Lambda's synchronous limit is 6 MB).
const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024 + 1024;

/// State shared between one process incarnation and its Runtime API server.
pub(super) struct RuntimeState {
    pub(super) next: tokio::sync::Mutex<mpsc::UnboundedReceiver<Handoff>>,
    pub(super) results: Mutex<HashMap<String, oneshot::Sender<InvokeOutcome>>>,
    pub(super) init_error: Mutex<Option<String>>,
    pub(super) timeout: Duration,
    pub(super) function_arn: String,
}

/// An invocation offered to the runtime's `/next` long poll.
pub(super) struct Handoff {
    pub(super) request_id: String,
    pub(super) payload: Value,
    /// The invocation's `Lambda-Runtime-Trace-Id`.
    pub(super) trace_header: String,
    /// Told the deadline when the runtime takes the event.
    pub(super) delivered: oneshot::Sender<Instant>,
}

pub(super) fn take_init_error(state: &RuntimeState) -> Option<String> {
    state.init_error.lock().ok().and_then(|mut e| e.take())
}

pub(super) fn runtime_api_router(state: Arc<RuntimeState>) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
        .route(
            "/2018-06-01/runtime/invocation/{request_id}/response",
            post(invocation_response),
        )
        .route(
            "/2018-06-01/runtime/invocation/{request_id}/error",
            post(invocation_error),
        )
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .layer(DefaultBodyLimit::max(MAX_RESPONSE_BYTES))
        .with_state(state)
}

fn epoch_millis(at: SystemTime) -> u128 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
}

/// A fresh X-Ray trace header, as Lambda sends one (`Lambda-Runtime-Trace-Id`) for an
/// invocation that continues no trace: `Root=1-<epoch seconds, 8 hex>-<24 hex>;
/// Parent=<16 hex>;Sampled=1` (the functions trace actively: Tracing: Active).
pub(super) fn new_trace_header() -> String {
    let epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let root = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "Root=1-{epoch:08x}-{};Parent={};Sampled=1",
        &root[..24],
        segment_id()
    )
}

/// The trace header of an invocation that continues `upstream` (an SQS message's
/// `AWSTraceHeader`): the same `Root` and `Sampled`, the invocation's own segment as
/// `Parent`, as Lambda does. A header without a `Root` starts a fresh trace.
pub(super) fn continued_trace_header(upstream: &str) -> String {
    let part = |key: &str| {
        upstream
            .split(';')
            .find_map(|p| p.trim().strip_prefix(key))
            .filter(|v| !v.is_empty())
    };
    match part("Root=") {
        Some(root) => format!(
            "Root={root};Parent={};Sampled={}",
            segment_id(),
            part("Sampled=").unwrap_or("1")
        ),
        None => new_trace_header(),
    }
}

/// A fresh X-Ray segment id: 16 hex digits.
fn segment_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_string()
}

async fn next_invocation(State(state): State<Arc<RuntimeState>>) -> Response {
    let handoff = {
        let mut next = state.next.lock().await;
        next.recv().await
    };
    let Some(handoff) = handoff else {
        return (StatusCode::GONE, "function host stopped").into_response();
    };
    let deadline_epoch_ms = epoch_millis(SystemTime::now() + state.timeout);
    let _ = handoff.delivered.send(Instant::now() + state.timeout);
    let body = match serde_json::to_vec(&handoff.payload) {
        Ok(body) => body,
        Err(err) => return (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    };
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    set("lambda-runtime-aws-request-id", &handoff.request_id);
    set("lambda-runtime-deadline-ms", &deadline_epoch_ms.to_string());
    set("lambda-runtime-invoked-function-arn", &state.function_arn);
    set("lambda-runtime-trace-id", &handoff.trace_header);
    set("content-type", "application/json");
    (StatusCode::OK, headers, body).into_response()
}

fn accepted() -> Response {
    (StatusCode::ACCEPTED, axum::Json(json!({"status": "OK"}))).into_response()
}

fn complete(state: &RuntimeState, request_id: &str, outcome: InvokeOutcome) -> Response {
    let sender = state
        .results
        .lock()
        .ok()
        .and_then(|mut results| results.remove(request_id));
    match sender {
        Some(sender) => {
            let _ = sender.send(outcome);
            accepted()
        }
        None => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({
                "errorMessage": format!("unknown or already completed request id {request_id}"),
                "errorType": "InvalidRequestID"
            })),
        )
            .into_response(),
    }
}

async fn invocation_response(
    State(state): State<Arc<RuntimeState>>,
    Path(request_id): Path<String>,
    body: Bytes,
) -> Response {
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    complete(&state, &request_id, InvokeOutcome::Ok(value))
}

/// Reads `{errorType, errorMessage}` (falling back to the error-type header / raw body).
fn parse_error_report(headers: &HeaderMap, body: &[u8]) -> (String, String) {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(name))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let error_type = field("errorType")
        .or_else(|| {
            headers
                .get("lambda-runtime-function-error-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "Unhandled".to_string());
    let error_message =
        field("errorMessage").unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    (error_type, error_message)
}

async fn invocation_error(
    State(state): State<Arc<RuntimeState>>,
    Path(request_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (error_type, error_message) = parse_error_report(&headers, &body);
    complete(
        &state,
        &request_id,
        InvokeOutcome::FunctionError {
            error_type,
            error_message,
        },
    )
}

async fn init_error(
    State(state): State<Arc<RuntimeState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (error_type, error_message) = parse_error_report(&headers, &body);
    tracing::warn!(function_arn = %state.function_arn, %error_type, %error_message, "function reported an init error");
    if let Ok(mut slot) = state.init_error.lock() {
        *slot = Some(format!("{error_type}: {error_message}"));
    }
    accepted()
}

#[cfg(test)]
mod tests {
    use super::{continued_trace_header, new_trace_header};

    #[test]
    fn fresh_trace_headers_are_sampled_x_ray_headers() {
        let header = new_trace_header();
        let parts: Vec<&str> = header.split(';').collect();
        let [root, parent, sampled] = parts.as_slice() else {
            panic!("{header}");
        };
        let root: Vec<&str> = root.trim_start_matches("Root=").split('-').collect();
        assert_eq!(root.len(), 3, "{header}");
        assert_eq!(root[0], "1");
        let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
        assert!(hex(root[1], 8) && hex(root[2], 24), "{header}");
        assert!(hex(parent.trim_start_matches("Parent="), 16), "{header}");
        assert_eq!(*sampled, "Sampled=1");
        assert_ne!(new_trace_header(), header);
    }

    #[test]
    fn a_continued_trace_keeps_its_root_and_sampling_with_a_new_parent() {
        let upstream = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0";
        let header = continued_trace_header(upstream);
        assert!(
            header.starts_with("Root=1-5759e988-bd862e3fe1be46a994272793;Parent="),
            "{header}"
        );
        assert!(header.ends_with(";Sampled=0"), "{header}");
        assert!(!header.contains("53995c3f42cd8ad8"), "{header}");
        assert!(
            continued_trace_header("Root=1-a-b").ends_with(";Sampled=1"),
            "sampled unless told otherwise"
        );
        // No root: a fresh trace.
        assert!(continued_trace_header("Parent=53995c3f42cd8ad8").starts_with("Root=1-"));
    }
}
