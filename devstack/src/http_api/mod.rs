//! API Gateway HTTP API (payload format 2.0) in front of the local functions.
//!
//! Like API Gateway, every request is first throttled (the HttpApi's `DefaultRouteSettings`
//! and `RouteSettings`: 429), then checked by the route's JWT authorizer (the HttpApi's
//! `Auth` and the route event's `Auth`: 401 / 403, docs/security.md) against devstack's
//! local token issuer (`crate::auth`), whose JWKS is served at `/.well-known/jwks.json`.
//! An authorized request's event carries `requestContext.authorizer.jwt`. Routes without an
//! authorizer are open.
//!
//! - this module: the server, from request to function and back;
//! - `authorizer`: throttling and the JWT authorizer;
//! - `routes`: route keys and matching a request to the most specific route;
//! - `event`: the payload format 2.0 event a function receives;
//! - `response`: the function's answer as an HTTP response;
//! - `web`: the dashboard page (`web/`) at `/` and its local-only sign-in.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::task::JoinHandle;

use crate::auth::LocalIssuer;
use crate::lambda::FunctionHost;

mod authorizer;
mod event;
mod response;
mod routes;
mod web;

use authorizer::Verdict;
pub use authorizer::{ApiSettings, JwtAuthorizer, Throttle};
pub use event::{EventInput, build_event};
use response::message;
pub use response::to_http_response;
use routes::{CompiledRoute, compile};
pub use web::{SIGN_IN_PATH, WebSite};

/// Where the local issuer's JWKS is served (`{issuer}/.well-known/jwks.json`, as Cognito).
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

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
    /// The route event's `Auth` (`Authorizer`, `AuthorizationScopes`).
    pub auth: Option<serde_json::Value>,
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
    issuer: Arc<LocalIssuer>,
    web: Option<WebSite>,
}

/// The running HTTP API server.
#[derive(Debug)]
pub struct HttpApiServer {
    /// Port on 127.0.0.1.
    pub port: u16,
    /// The local token issuer its authorizers trust.
    pub issuer: Arc<LocalIssuer>,
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

/// How the HTTP API is started.
#[derive(Debug)]
pub struct ApiConfig<'a> {
    /// Port on 127.0.0.1 (0 = any free port).
    pub port: u16,
    /// Account id of the events.
    pub account_id: &'a str,
    /// Auth and throttling settings by API id (APIs not listed: open, unthrottled).
    pub apis: &'a BTreeMap<String, ApiSettings>,
    /// The local people client's id (the template's `!Ref PeopleClient`).
    pub people_client_id: &'a str,
    /// The dashboard page served at `/` (None: no page).
    pub web: Option<WebSite>,
}

/// Starts the HTTP API on 127.0.0.1 with a fresh local token issuer (issuer URL = the API's
/// base URL).
pub async fn start(config: ApiConfig<'_>, routes: Vec<HttpRoute>) -> Result<HttpApiServer> {
    let ApiConfig {
        port,
        account_id,
        apis,
        people_client_id,
        web,
    } = config;
    let mut compiled_routes = Vec::new();
    for route in routes {
        let mut compiled = compile(route)?;
        let route_key = compiled.route.route_key();
        if let Some(settings) = apis.get(&compiled.route.api_id) {
            compiled.policy = settings
                .policy(&route_key, compiled.route.auth.as_ref())
                .with_context(|| format!("route {route_key}"))?;
        }
        let scopes = compiled
            .policy
            .authorizer
            .as_ref()
            .map(|(_, scopes)| scopes.join(" "));
        tracing::info!(route = %route_key, function = %compiled.route.function.spec().logical_id, scopes = ?scopes, "HTTP API route");
        compiled_routes.push(compiled);
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("binding the HTTP API to 127.0.0.1:{port}"))?;
    let port = listener
        .local_addr()
        .context("reading the HTTP API address")?
        .port();
    let issuer = Arc::new(LocalIssuer::generate(
        &format!("http://127.0.0.1:{port}"),
        people_client_id,
    )?);
    let state = Arc::new(ApiState {
        routes: compiled_routes,
        account_id: account_id.to_string(),
        issuer: issuer.clone(),
        web,
    });
    let router = Router::new().fallback(handle).with_state(state);
    let task = tokio::spawn(async move {
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(err) = axum::serve(listener, service).await {
            tracing::error!(error = %err, "HTTP API server failed");
        }
    });
    Ok(HttpApiServer { port, issuer, task })
}

async fn handle(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_string();
    if path == JWKS_PATH && parts.method == axum::http::Method::GET {
        return (StatusCode::OK, axum::Json(state.issuer.jwks().clone())).into_response();
    }
    if let Some(site) = &state.web {
        if path == SIGN_IN_PATH {
            let Ok(body) = axum::body::to_bytes(body, 16 * 1024).await else {
                return message(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
            };
            return web::sign_in(site, &state.issuer, &parts.method, &body);
        }
        if let Some(response) = web::serve(site, &parts.method, &path) {
            return response;
        }
    }
    let Some((compiled, path_parameters)) = routes::find(&state.routes, &parts.method, &path)
    else {
        return message(StatusCode::NOT_FOUND, "Not Found");
    };
    let authorizer = match compiled.policy.check(&state.issuer, &parts.headers) {
        Verdict::Open => None,
        Verdict::Allowed(context) => Some(context),
        Verdict::Refused(response) => return response,
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
        authorizer: authorizer.as_ref(),
    });
    let outcome = compiled.route.function.invoke(event, "api").await;
    let mut response = to_http_response(outcome);
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("apigw-requestid", value);
    }
    response
}
