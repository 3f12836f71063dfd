//! API Gateway HTTP API (payload format 2.0) in front of the local functions.
//!
//! The template's API requires auth on AWS (`Auth` of the `HttpApi` resource: IAM). This
//! local server does not enforce it: it serves the template's routes to any caller on
//! 127.0.0.1, and the events it builds carry no authorizer context.
//!
//! - this module: the server, from request to function and back;
//! - `routes`: route keys and matching a request to the most specific route;
//! - `event`: the payload format 2.0 event a function receives;
//! - `response`: the function's answer as an HTTP response.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use tokio::task::JoinHandle;

use crate::lambda::FunctionHost;

mod event;
mod response;
mod routes;

pub use event::{EventInput, build_event};
use response::message;
pub use response::to_http_response;
use routes::{CompiledRoute, compile};

/// API Gateway's payload limit.
pub const MAX_REQUEST_BYTES: usize = 10 * 1024 * 1024;

/// A route declared by a function's `HttpApi` event.
#[derive(Debug, Clone)]
pub struct HttpRoute {
    /// `Method` (upper case), or None for ANY.
    pub method: Option<String>,
    /// `Path`, e.g. `/alerts/{id}`, or `$default`.
    pub path: String,
    /// The API id the route belongs to.
    pub api_id: String,
    /// The function serving the route.
    pub function: Arc<FunctionHost>,
}

impl HttpRoute {
    /// API Gateway's route key, e.g. `POST /readings`, `ANY /{proxy+}` or `$default`.
    pub fn route_key(&self) -> String {
        if self.path == "$default" {
            return "$default".to_string();
        }
        format!("{} {}", self.method.as_deref().unwrap_or("ANY"), self.path)
    }
}

struct ApiState {
    routes: Vec<CompiledRoute>,
    account_id: String,
}

/// The running HTTP API server.
#[derive(Debug)]
pub struct HttpApiServer {
    /// Port on 127.0.0.1.
    pub port: u16,
    task: JoinHandle<()>,
}

impl HttpApiServer {
    /// Stops the server.
    pub fn abort(&self) {
        self.task.abort();
    }
}

impl Drop for HttpApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the HTTP API on 127.0.0.1:`port` (0 = any free port).
pub async fn start(port: u16, routes: Vec<HttpRoute>, account_id: &str) -> Result<HttpApiServer> {
    let routes = routes
        .into_iter()
        .map(compile)
        .collect::<Result<Vec<_>>>()?;
    for compiled in &routes {
        tracing::info!(route = %compiled.route.route_key(), function = %compiled.route.function.spec().logical_id, "HTTP API route");
    }
    let state = Arc::new(ApiState {
        routes,
        account_id: account_id.to_string(),
    });
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("binding the HTTP API to 127.0.0.1:{port}"))?;
    let port = listener
        .local_addr()
        .context("reading the HTTP API address")?
        .port();
    let router = Router::new().fallback(handle).with_state(state);
    let task = tokio::spawn(async move {
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(err) = axum::serve(listener, service).await {
            tracing::error!(error = %err, "HTTP API server failed");
        }
    });
    Ok(HttpApiServer { port, task })
}

async fn handle(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_string();
    let Some((compiled, path_parameters)) = routes::find(&state.routes, &parts.method, &path)
    else {
        return message(StatusCode::NOT_FOUND, "Not Found");
    };
    let body = match axum::body::to_bytes(body, MAX_REQUEST_BYTES).await {
        Ok(body) => body,
        Err(_) => return message(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large"),
    };
    let request_id = uuid::Uuid::new_v4().to_string();
    let event = build_event(&EventInput {
        method: parts.method.as_str(),
        raw_path: &path,
        raw_query: parts.uri.query().unwrap_or(""),
        headers: &parts.headers,
        body: &body,
        route_key: &compiled.route.route_key(),
        path_parameters: &path_parameters,
        api_id: &compiled.route.api_id,
        account_id: &state.account_id,
        source_ip: &peer.ip().to_string(),
        request_id: &request_id,
        protocol: &format!("{:?}", parts.version),
    });
    let outcome = compiled.route.function.invoke(event, "api").await;
    let mut response = to_http_response(outcome);
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("apigw-requestid", value);
    }
    response
}
