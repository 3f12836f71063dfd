//! The Lambda service API for the local functions (issue 16): what `aws lambda invoke
//! --endpoint-url`, `aws lambda list-functions`, `cargo lambda invoke` and the AWS SDKs call.
//!
//! - `POST /2015-03-31/functions/{name}/invocations`: `X-Amz-Invocation-Type`
//!   `RequestResponse` (default: the handler's response, or `X-Amz-Function-Error:
//!   Unhandled` with `{errorType, errorMessage}`), `Event` (202, runs in the background),
//!   `DryRun` (204);
//! - `GET /2015-03-31/functions` (ListFunctions), `GET /2015-03-31/functions/{name}`
//!   (GetFunction), `GET /2015-03-31/functions/{name}/configuration`;
//! - `GET /devstack/trace/{correlationId}`: the hops of an alert ([`crate::trace`]).
//!
//! `{name}` is the function's logical id (`IngestFunction`), its physical name, its ARN
//! (with `:$LATEST` or no qualifier), or its binary's name when one function runs that
//! binary (`ingest`). Unknown: 404 `ResourceNotFoundException`, as Lambda answers.
//! Not emulated: `X-Amz-Log-Type: Tail`, aliases and versions, client context.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::lambda::{FunctionHost, InvokeOutcome};

/// The journal source of invocations through this API.
pub const INVOKE_SOURCE: &str = "invoke";

type Functions = Arc<BTreeMap<String, Arc<FunctionHost>>>;

/// The running server; stops when dropped.
#[derive(Debug)]
pub struct LambdaApiServer {
    pub port: u16,
    task: JoinHandle<()>,
}

impl Drop for LambdaApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves the API for `functions` (by logical id) on 127.0.0.1:`port` (0: any free port).
pub async fn start(port: u16, functions: Functions) -> Result<LambdaApiServer> {
    let router = Router::new()
        .route("/2015-03-31/functions", get(list_functions))
        .route("/2015-03-31/functions/", get(list_functions))
        .route("/2015-03-31/functions/{name}", get(get_function))
        .route(
            "/2015-03-31/functions/{name}/configuration",
            get(get_configuration),
        )
        .route("/2015-03-31/functions/{name}/invocations", post(invoke))
        .route("/devstack/trace/{correlation_id}", get(trace))
        .with_state(functions);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("binding the Lambda API to 127.0.0.1:{port}"))?;
    let port = listener
        .local_addr()
        .context("reading the Lambda API address")?
        .port();
    // `cargo lambda invoke` connects to [::1] by default: serve there too when we can.
    let v6 = tokio::net::TcpListener::bind(SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], port)))
        .await
        .ok();
    let task = tokio::spawn(async move {
        let served = match v6 {
            Some(v6) => {
                let (a, b) = tokio::join!(
                    axum::serve(listener, router.clone()).into_future(),
                    axum::serve(v6, router).into_future()
                );
                a.and(b)
            }
            None => axum::serve(listener, router).await,
        };
        if let Err(err) = served {
            tracing::error!(error = %err, "Lambda API server failed");
        }
    });
    Ok(LambdaApiServer { port, task })
}

/// The function `name` designates (see the module docs).
pub fn resolve<'a>(
    functions: &'a BTreeMap<String, Arc<FunctionHost>>,
    name: &str,
) -> Option<&'a Arc<FunctionHost>> {
    // An ARN (arn:aws:lambda:region:account:function:name[:qualifier]) or name:qualifier.
    let name = match name.strip_prefix("arn:") {
        Some(_) => name.split(':').nth(6).unwrap_or(""),
        None => name.split(':').next().unwrap_or(""),
    };
    if let Some(host) = functions.get(name) {
        return Some(host);
    }
    if let Some(host) = functions.values().find(|h| h.spec().name == name) {
        return Some(host);
    }
    let mut by_binary = functions
        .values()
        .filter(|h| h.spec().binary.file_name().is_some_and(|f| f == name));
    match (by_binary.next(), by_binary.next()) {
        (Some(host), None) => Some(host),
        _ => None,
    }
}

/// The qualifier of an ARN or `name:qualifier`, if any.
fn qualifier(name: &str) -> Option<&str> {
    let parts: Vec<&str> = name.split(':').collect();
    match name.starts_with("arn:") {
        true => parts.get(7).copied(),
        false => parts.get(1).copied(),
    }
}

fn not_found(name: &str) -> Response {
    let mut response = (
        StatusCode::NOT_FOUND,
        axum::Json(json!({
            "Type": "User",
            "Message": format!("Function not found: {name}"),
        })),
    )
        .into_response();
    response.headers_mut().insert(
        "x-amzn-ErrorType",
        axum::http::HeaderValue::from_static("ResourceNotFoundException"),
    );
    response
}

fn client_error(error_type: &'static str, message: String) -> Response {
    let mut response = (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"Type": "User", "message": message})),
    )
        .into_response();
    response.headers_mut().insert(
        "x-amzn-ErrorType",
        axum::http::HeaderValue::from_static(error_type),
    );
    response
}

/// A function's `FunctionConfiguration`, as Lambda describes it.
pub fn configuration(host: &FunctionHost) -> Value {
    let spec = host.spec();
    let code_size = std::fs::metadata(&spec.binary)
        .map(|m| m.len())
        .unwrap_or(0);
    json!({
        "FunctionName": spec.name,
        "FunctionArn": spec.arn,
        "Runtime": "provided.al2023",
        "Handler": "bootstrap",
        "CodeSize": code_size,
        "Description": format!("devstack: {} running {}", spec.logical_id, spec.binary.display()),
        "Timeout": spec.timeout.as_secs(),
        "MemorySize": spec.memory_mb,
        "Version": "$LATEST",
        "PackageType": "Zip",
        "State": "Active",
        "LastUpdateStatus": "Successful",
        "Environment": {"Variables": spec.environment},
    })
}

async fn list_functions(State(functions): State<Functions>) -> Response {
    let list: Vec<Value> = functions.values().map(|h| configuration(h)).collect();
    axum::Json(json!({"Functions": list})).into_response()
}

async fn get_function(State(functions): State<Functions>, Path(name): Path<String>) -> Response {
    match resolve(&functions, &name) {
        Some(host) => axum::Json(json!({
            "Configuration": configuration(host),
            "Code": {"RepositoryType": "Local", "Location": host.spec().binary.display().to_string()},
            "Tags": {"devstack:logical-id": host.spec().logical_id},
        }))
        .into_response(),
        None => not_found(&name),
    }
}

async fn get_configuration(
    State(functions): State<Functions>,
    Path(name): Path<String>,
) -> Response {
    match resolve(&functions, &name) {
        Some(host) => axum::Json(configuration(host)).into_response(),
        None => not_found(&name),
    }
}

async fn invoke(
    State(functions): State<Functions>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(host) = resolve(&functions, &name).cloned() else {
        return not_found(&name);
    };
    if qualifier(&name).is_some_and(|q| q != "$LATEST") {
        return not_found(&name);
    }
    let payload: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(payload) => payload,
            Err(err) => {
                return client_error(
                    "InvalidRequestContentException",
                    format!("Could not parse request body into json: {err}"),
                );
            }
        }
    };
    let invocation_type = headers
        .get("x-amz-invocation-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("RequestResponse");
    match invocation_type {
        "RequestResponse" => {}
        "Event" => {
            tokio::spawn(async move { host.invoke(payload, INVOKE_SOURCE).await });
            return StatusCode::ACCEPTED.into_response();
        }
        "DryRun" => return StatusCode::NO_CONTENT.into_response(),
        other => {
            return client_error(
                "InvalidParameterValueException",
                format!("X-Amz-Invocation-Type {other:?} is not RequestResponse, Event or DryRun"),
            );
        }
    }
    let timeout = host.spec().timeout.as_secs();
    let (body, function_error) = match host.invoke(payload, INVOKE_SOURCE).await {
        InvokeOutcome::Ok(value) => (value, false),
        InvokeOutcome::FunctionError {
            error_type,
            error_message,
        } => (
            json!({"errorType": error_type, "errorMessage": error_message}),
            true,
        ),
        InvokeOutcome::Timeout => (
            json!({"errorType": "Sandbox.Timedout", "errorMessage": format!("Task timed out after {timeout}.00 seconds")}),
            true,
        ),
        InvokeOutcome::Crashed(reason) => (
            json!({"errorType": "Runtime.ExitError", "errorMessage": reason}),
            true,
        ),
    };
    let mut response = (StatusCode::OK, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        "X-Amz-Executed-Version",
        axum::http::HeaderValue::from_static("$LATEST"),
    );
    if function_error {
        headers.insert(
            "X-Amz-Function-Error",
            axum::http::HeaderValue::from_static("Unhandled"),
        );
    }
    response
}

async fn trace(State(functions): State<Functions>, Path(correlation_id): Path<String>) -> Response {
    let hops = crate::trace::hops(functions.values(), &correlation_id);
    axum::Json(json!({"correlationId": correlation_id, "hops": hops})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualifiers_are_read_from_names_and_arns() {
        assert_eq!(qualifier("IngestFunction"), None);
        assert_eq!(qualifier("IngestFunction:$LATEST"), Some("$LATEST"));
        assert_eq!(
            qualifier("arn:aws:lambda:us-east-1:123456789012:function:f"),
            None
        );
        assert_eq!(
            qualifier("arn:aws:lambda:us-east-1:123456789012:function:f:prod"),
            Some("prod")
        );
    }
}
