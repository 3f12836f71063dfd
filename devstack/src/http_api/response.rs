//! A function's answer as an HTTP response, mapped the way API Gateway maps it (a
//! `statusCode` response, a bare JSON value, or an error status).

use anyhow::{Context, Result, bail};
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};

use crate::lambda::InvokeOutcome;

pub(super) fn message(status: StatusCode, text: &str) -> Response {
    (status, axum::Json(json!({ "message": text }))).into_response()
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
