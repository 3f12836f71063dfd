//! The API Gateway HTTP API payload format 2.0 event built from a request.

use std::collections::BTreeMap;

use axum::http::HeaderMap;
use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::routes::percent_decode;

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
    /// `requestContext.authorizer` (`{"jwt": {"claims", "scopes"}}`), if the route has an
    /// authorizer.
    pub authorizer: Option<&'a Value>,
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
        if let Some(authorizer) = input.authorizer
            && let Some(context) = object
                .get_mut("requestContext")
                .and_then(Value::as_object_mut)
        {
            context.insert("authorizer".to_string(), authorizer.clone());
        }
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

#[cfg(test)]
mod tests {
    use axum::http::{HeaderValue, Method};

    use super::*;

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
            authorizer: None,
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
            authorizer: None,
        });
        assert_eq!(event["isBase64Encoded"], true);
        assert_eq!(event["body"], "/wA=");
    }
}
