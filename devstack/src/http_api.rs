//! API Gateway HTTP API (payload format 2.0) in front of the local functions.
//!
//! The template's API requires auth on AWS (`Auth` of the `HttpApi` resource: IAM). This
//! local server does not enforce it: it serves the template's routes to any caller on
//! 127.0.0.1, and the events it builds carry no authorizer context.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;

use crate::lambda::{FunctionHost, InvokeOutcome};

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

/// One segment of a route path.
#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    Param(String),
    Greedy(String),
}

#[derive(Debug)]
struct CompiledRoute {
    route: HttpRoute,
    /// None for `$default`.
    segments: Option<Vec<Segment>>,
}

fn split_path(path: &str) -> Vec<&str> {
    path.trim_start_matches('/').split('/').collect()
}

fn compile(route: HttpRoute) -> Result<CompiledRoute> {
    if route.path == "$default" {
        return Ok(CompiledRoute {
            route,
            segments: None,
        });
    }
    if !route.path.starts_with('/') {
        bail!("HttpApi path {:?} must start with /", route.path);
    }
    let parts = split_path(&route.path);
    let mut segments = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let segment = match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(name) => match name.strip_suffix('+') {
                Some(greedy) if i + 1 == parts.len() => Segment::Greedy(greedy.to_string()),
                Some(_) => bail!("greedy parameter must be last in {:?}", route.path),
                None => Segment::Param(name.to_string()),
            },
            None => Segment::Literal(part.to_string()),
        };
        segments.push(segment);
    }
    Ok(CompiledRoute {
        route,
        segments: Some(segments),
    })
}

/// Matches a request path against route segments, returning path parameters.
fn match_segments(segments: &[Segment], path: &str) -> Option<BTreeMap<String, String>> {
    let parts = split_path(path);
    let mut params = BTreeMap::new();
    for (i, segment) in segments.iter().enumerate() {
        match segment {
            Segment::Literal(text) => {
                if parts.get(i) != Some(&text.as_str()) {
                    return None;
                }
            }
            Segment::Param(name) => {
                let value = parts.get(i).filter(|p| !p.is_empty())?;
                params.insert(name.clone(), percent_decode(value));
            }
            Segment::Greedy(name) => {
                let rest = parts.get(i..)?.join("/");
                if rest.is_empty() {
                    return None;
                }
                params.insert(name.clone(), percent_decode(&rest));
                return Some(params);
            }
        }
    }
    (parts.len() == segments.len()).then_some(params)
}

/// Decodes `%XX` escapes (invalid escapes are kept as they are).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Specificity of a route match (higher wins): (not `$default`, literal segments,
/// no greedy parameter, specific method).
type RouteScore = (usize, usize, bool, bool);
/// Path parameters of a matched route.
type PathParameters = BTreeMap<String, String>;

struct ApiState {
    routes: Vec<CompiledRoute>,
    account_id: String,
}

impl ApiState {
    /// The most specific route for a request (literal segments beat parameters, which beat
    /// greedy parameters; a specific method beats ANY; `$default` comes last).
    fn find(
        &self,
        method: &Method,
        path: &str,
    ) -> Option<(&CompiledRoute, BTreeMap<String, String>)> {
        let mut best: Option<(RouteScore, &CompiledRoute, PathParameters)> = None;
        for compiled in &self.routes {
            let method_matches = compiled
                .route
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method.as_str()));
            if !method_matches {
                continue;
            }
            let (score, params) = match &compiled.segments {
                None => ((0, 0, false, false), BTreeMap::new()),
                Some(segments) => {
                    let Some(params) = match_segments(segments, path) else {
                        continue;
                    };
                    let literals = segments
                        .iter()
                        .filter(|s| matches!(s, Segment::Literal(_)))
                        .count();
                    let not_greedy = !segments.iter().any(|s| matches!(s, Segment::Greedy(_)));
                    (
                        (1, literals, not_greedy, compiled.route.method.is_some()),
                        params,
                    )
                }
            };
            if best.as_ref().is_none_or(|(s, _, _)| score > *s) {
                best = Some((score, compiled, params));
            }
        }
        best.map(|(_, route, params)| (route, params))
    }
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

fn message(status: StatusCode, text: &str) -> Response {
    (status, axum::Json(json!({ "message": text }))).into_response()
}

async fn handle(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_string();
    let Some((compiled, path_parameters)) = state.find(&parts.method, &path) else {
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

/// Inputs of an HTTP API event.
pub struct EventInput<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// Path as received.
    pub raw_path: &'a str,
    /// Query string as received (without `?`).
    pub raw_query: &'a str,
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// Request body.
    pub body: &'a [u8],
    /// Matched route key.
    pub route_key: &'a str,
    /// Path parameters of the matched route.
    pub path_parameters: &'a BTreeMap<String, String>,
    /// API id.
    pub api_id: &'a str,
    /// Account id.
    pub account_id: &'a str,
    /// Client IP.
    pub source_ip: &'a str,
    /// Request id.
    pub request_id: &'a str,
    /// e.g. `HTTP/1.1`.
    pub protocol: &'a str,
}

/// Builds an API Gateway HTTP API payload format 2.0 event.
pub fn build_event(input: &EventInput<'_>) -> Value {
    let mut headers: Map<String, Value> = Map::new();
    let mut cookies: Vec<Value> = Vec::new();
    for name in input.headers.keys() {
        let values: Vec<String> = input
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        if name.as_str() == "cookie" {
            for value in &values {
                cookies.extend(
                    value
                        .split(';')
                        .map(str::trim)
                        .filter(|c| !c.is_empty())
                        .map(|c| Value::String(c.to_string())),
                );
            }
            continue;
        }
        headers.insert(name.as_str().to_string(), Value::String(values.join(",")));
    }
    let host = headers
        .get("host")
        .and_then(Value::as_str)
        .unwrap_or("127.0.0.1")
        .to_string();
    let user_agent = headers
        .get("user-agent")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();

    let mut query: Map<String, Value> = Map::new();
    for pair in input.raw_query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(key);
        let value = percent_decode(value);
        match query.get_mut(&key) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            _ => {
                query.insert(key, Value::String(value));
            }
        }
    }

    let now = chrono::Utc::now();
    let mut event = json!({
        "version": "2.0",
        "routeKey": input.route_key,
        "rawPath": input.raw_path,
        "rawQueryString": input.raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": input.account_id,
            "apiId": input.api_id,
            "domainName": host,
            "domainPrefix": host.split('.').next().unwrap_or(""),
            "http": {
                "method": input.method,
                "path": input.raw_path,
                "protocol": input.protocol,
                "sourceIp": input.source_ip,
                "userAgent": user_agent,
            },
            "requestId": input.request_id,
            "routeKey": input.route_key,
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": now.timestamp_millis(),
        },
        "isBase64Encoded": false,
    });
    if let Some(object) = event.as_object_mut() {
        if !cookies.is_empty() {
            object.insert("cookies".to_string(), Value::Array(cookies));
        }
        if !query.is_empty() {
            object.insert("queryStringParameters".to_string(), Value::Object(query));
        }
        if !input.path_parameters.is_empty() {
            let params: Map<String, Value> = input
                .path_parameters
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            object.insert("pathParameters".to_string(), Value::Object(params));
        }
        if !input.body.is_empty() {
            match std::str::from_utf8(input.body) {
                Ok(text) => {
                    object.insert("body".to_string(), Value::String(text.to_string()));
                }
                Err(_) => {
                    object.insert(
                        "body".to_string(),
                        Value::String(base64::engine::general_purpose::STANDARD.encode(input.body)),
                    );
                    object.insert("isBase64Encoded".to_string(), Value::Bool(true));
                }
            }
        }
    }
    event
}

/// Maps a function outcome to an HTTP response the way API Gateway does.
pub fn to_http_response(outcome: InvokeOutcome) -> Response {
    match outcome {
        InvokeOutcome::Ok(value) => match structured_response(&value) {
            Ok(Some(response)) => response,
            Ok(None) => {
                // No statusCode: the whole response is the JSON body.
                let mut response = (StatusCode::OK, value.to_string()).into_response();
                response.headers_mut().insert(
                    axum::http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                response
            }
            Err(err) => {
                tracing::warn!(error = %format!("{err:#}"), "malformed function response for the HTTP API");
                message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
            }
        },
        InvokeOutcome::Timeout => message(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable"),
        InvokeOutcome::FunctionError { .. } | InvokeOutcome::Crashed(_) => {
            message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
    }
}

/// A `{statusCode, headers, body, isBase64Encoded, cookies}` response, or None if the value
/// has no statusCode.
fn structured_response(value: &Value) -> Result<Option<Response>> {
    let Some(object) = value.as_object() else {
        return Ok(None);
    };
    let Some(status) = object.get("statusCode") else {
        return Ok(None);
    };
    let status = match status {
        Value::Number(n) => n.as_u64().context("statusCode is not a positive integer")?,
        Value::String(s) => s.parse().context("statusCode is not an integer")?,
        other => bail!("statusCode must be a number, found {other}"),
    };
    let status = StatusCode::from_u16(u16::try_from(status).context("statusCode out of range")?)
        .context("invalid statusCode")?;

    let base64_encoded = object
        .get("isBase64Encoded")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let body: Vec<u8> = match object.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text)) if base64_encoded => base64::engine::general_purpose::STANDARD
            .decode(text)
            .context("body is not valid base64")?,
        Some(Value::String(text)) => text.clone().into_bytes(),
        Some(other) => other.to_string().into_bytes(),
    };

    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    if let Some(headers) = object.get("headers").and_then(Value::as_object) {
        for (name, value) in headers {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Null => continue,
                other => other.to_string(),
            };
            let name = HeaderName::from_bytes(name.as_bytes())
                .with_context(|| format!("invalid header name {name:?}"))?;
            let value = HeaderValue::from_str(&text)
                .with_context(|| format!("invalid value of header {name}"))?;
            response.headers_mut().insert(name, value);
        }
    }
    if let Some(cookies) = object.get("cookies").and_then(Value::as_array) {
        for cookie in cookies.iter().filter_map(Value::as_str) {
            let value = HeaderValue::from_str(cookie).context("invalid cookie")?;
            response
                .headers_mut()
                .append(axum::http::header::SET_COOKIE, value);
        }
    }
    Ok(Some(response))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_matching_with_parameters() {
        let segments = vec![
            Segment::Literal("alerts".into()),
            Segment::Param("id".into()),
        ];
        let params = match_segments(&segments, "/alerts/a%2Fb").unwrap();
        assert_eq!(params.get("id").map(String::as_str), Some("a/b"));
        assert!(match_segments(&segments, "/alerts").is_none());
        assert!(match_segments(&segments, "/alerts/1/x").is_none());
        let greedy = vec![Segment::Greedy("proxy".into())];
        assert_eq!(
            match_segments(&greedy, "/a/b")
                .unwrap()
                .get("proxy")
                .map(String::as_str),
            Some("a/b")
        );
    }

    #[test]
    fn event_deserializes_as_api_gateway_v2_request() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.insert("host", HeaderValue::from_static("127.0.0.1:3000"));
        headers.append("x-multi", HeaderValue::from_static("a"));
        headers.append("x-multi", HeaderValue::from_static("b"));
        headers.insert("cookie", HeaderValue::from_static("a=1; b=2"));
        let params = BTreeMap::from([("id".to_string(), "42".to_string())]);
        let event = build_event(&EventInput {
            method: "POST",
            raw_path: "/alerts/42",
            raw_query: "x=1&x=2&y=%20z",
            headers: &headers,
            body: br#"{"a":1}"#,
            route_key: "POST /alerts/{id}",
            path_parameters: &params,
            api_id: "abc",
            account_id: "123456789012",
            source_ip: "127.0.0.1",
            request_id: "rid",
            protocol: "HTTP/1.1",
        });
        assert_eq!(event["headers"]["x-multi"], "a,b");
        assert_eq!(event["queryStringParameters"]["x"], "1,2");
        assert_eq!(event["cookies"], json!(["a=1", "b=2"]));
        let parsed: aws_lambda_events::event::apigw::ApiGatewayV2httpRequest =
            serde_json::from_value(event).expect("valid ApiGatewayV2httpRequest");
        assert_eq!(parsed.route_key.as_deref(), Some("POST /alerts/{id}"));
        assert_eq!(
            parsed.path_parameters.get("id").map(String::as_str),
            Some("42")
        );
        assert_eq!(parsed.body.as_deref(), Some(r#"{"a":1}"#));
        assert_eq!(parsed.request_context.http.method, Method::POST);
        assert_eq!(parsed.query_string_parameters.first("y"), Some(" z"));
    }

    #[test]
    fn binary_body_is_base64() {
        let headers = HeaderMap::new();
        let event = build_event(&EventInput {
            method: "POST",
            raw_path: "/",
            raw_query: "",
            headers: &headers,
            body: &[0xff, 0x00],
            route_key: "$default",
            path_parameters: &BTreeMap::new(),
            api_id: "abc",
            account_id: "1",
            source_ip: "127.0.0.1",
            request_id: "rid",
            protocol: "HTTP/1.1",
        });
        assert_eq!(event["isBase64Encoded"], true);
        assert_eq!(event["body"], "/wA=");
    }

    #[test]
    fn responses_map_like_api_gateway() {
        let response = to_http_response(InvokeOutcome::Ok(json!({
            "statusCode": 202, "headers": {"x-a": "1"}, "body": "ok", "cookies": ["c=1"]
        })));
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert_eq!(response.headers()["x-a"], "1");
        assert_eq!(response.headers()["set-cookie"], "c=1");
        let response = to_http_response(InvokeOutcome::Ok(json!({"hello": "world"})));
        assert_eq!(response.status(), StatusCode::OK);
        let response = to_http_response(InvokeOutcome::Timeout);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let response = to_http_response(InvokeOutcome::Crashed("x".into()));
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
