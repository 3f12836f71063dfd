//! API Gateway (HTTP API, payload format 2.0) request and response glue: the request body
//! (base64 or text), the caller's correlation id, and JSON responses and errors that all
//! look alike.
//!
//! Every response carries `content-type: application/json` and the `x-correlation-id` of
//! the request; every error body is `{"error": <code>, "message": <text>, "correlationId":
//! <id>}` plus any extra fields the caller adds.

use std::borrow::Cow;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::{HeaderMap, HeaderValue};
use base64::Engine;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

/// Header carrying the caller's correlation id (case-insensitive).
pub const CORRELATION_HEADER: &str = "x-correlation-id";
/// The longest correlation id accepted from a caller.
pub const MAX_CORRELATION_ID_LEN: usize = 128;

/// An HTTP error: a status, a stable machine-readable code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct HttpError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl HttpError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> HttpError {
        HttpError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 `BadRequest`.
    pub fn bad_request(message: impl Into<String>) -> HttpError {
        HttpError::new(400, "BadRequest", message)
    }

    /// 401 `Unauthorized`: the request carries no identity the authorizer vouched for.
    pub fn unauthorized(message: impl Into<String>) -> HttpError {
        HttpError::new(401, "Unauthorized", message)
    }

    /// 403 `Forbidden`: the caller is known but may not do this.
    pub fn forbidden(message: impl Into<String>) -> HttpError {
        HttpError::new(403, "Forbidden", message)
    }

    /// 404 `NotFound`.
    pub fn not_found(message: impl Into<String>) -> HttpError {
        HttpError::new(404, "NotFound", message)
    }

    /// 500 `InternalError`.
    pub fn internal(message: impl Into<String>) -> HttpError {
        HttpError::new(500, "InternalError", message)
    }

    /// The JSON error response (see the module docs).
    pub fn response(&self, correlation_id: &str) -> ApiGatewayV2httpResponse {
        error_response(
            self.status,
            self.code,
            &self.message,
            Map::new(),
            correlation_id,
        )
    }
}

/// The value of header `name` if it is valid text.
pub fn header<'a>(request: &'a ApiGatewayV2httpRequest, name: &str) -> Option<&'a str> {
    request.headers.get(name).and_then(|v| v.to_str().ok())
}

/// Who made the request, as API Gateway's authorizer reports it: the IAM principal's ARN
/// (or caller id) of a SigV4-signed request, or the `sub` claim of a JWT. `None` when the
/// route has no authorizer (as on the local stack, which does not authenticate).
pub fn principal(request: &ApiGatewayV2httpRequest) -> Option<String> {
    let authorizer = request.request_context.authorizer.as_ref()?;
    let iam = authorizer
        .iam
        .as_ref()
        .and_then(|iam| iam.user_arn.clone().or_else(|| iam.caller_id.clone()));
    let jwt = || {
        authorizer
            .jwt
            .as_ref()
            .and_then(|jwt| jwt.claims.get("sub").cloned())
    };
    iam.or_else(jwt).filter(|p| !p.trim().is_empty())
}

/// Who is calling, as the authorizer vouched for it: the domain's caller (a role and an
/// id: a person's Cognito username = their directory id, a device's `client_id`, an IAM
/// caller's ARN), so the authorization rules (`domain::access`) take it as it is.
pub use domain::access::{Caller, Role};

/// The role of a Cognito group name, if it is one of ours: `health-worker`, `supervisor`,
/// `operator`. (A device has no group: a token without a username; an IAM caller is a
/// service.)
pub fn role_of_group(group: &str) -> Option<Role> {
    match group {
        "health-worker" => Some(Role::HealthWorker),
        "supervisor" => Some(Role::Supervisor),
        "operator" => Some(Role::Operator),
        _ => None,
    }
}

/// Which role wins when a person is in several groups (higher wins).
fn rank(role: Role) -> u8 {
    match role {
        Role::Operator => 3,
        Role::Supervisor => 2,
        Role::HealthWorker => 1,
        Role::Device | Role::Service => 0,
    }
}

/// The names in a `cognito:groups` claim as API Gateway renders it (`"[a b]"`), or as a
/// JSON array string (`"[\"a\",\"b\"]"`), or a bare name.
pub fn claim_list(value: &str) -> Vec<String> {
    let value = value.trim();
    if let Ok(list) = serde_json::from_str::<Vec<String>>(value) {
        return list.into_iter().map(|g| g.trim().to_string()).collect();
    }
    value
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(|c: char| c.is_whitespace() || c == ',')
        .map(|g| g.trim_matches('"').trim())
        .filter(|g| !g.is_empty())
        .map(str::to_string)
        .collect()
}

/// The caller of a request from `requestContext.authorizer` (the contract of
/// docs/security.md): a JWT with a `username` is a person whose role is their highest
/// group; a JWT without one is a device (id = `client_id`); an IAM principal is a service
/// (id = its ARN). No authorizer context (or no id in it) is 401; a person in none of the
/// known groups is 403.
pub fn caller(request: &ApiGatewayV2httpRequest) -> Result<Caller, HttpError> {
    let unauthorized = || HttpError::unauthorized("the request carries no verified identity");
    let authorizer = request
        .request_context
        .authorizer
        .as_ref()
        .ok_or_else(unauthorized)?;
    if let Some(jwt) = &authorizer.jwt {
        let claim = |name: &str| {
            jwt.claims
                .get(name)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
        };
        if let Some(username) = claim("username") {
            let role = claim("cognito:groups")
                .map(claim_list)
                .unwrap_or_default()
                .iter()
                .filter_map(|g| role_of_group(g))
                .max_by_key(|r| rank(*r))
                .ok_or_else(|| {
                    HttpError::forbidden(format!(
                        "user {username} is in none of the groups health-worker, supervisor, operator"
                    ))
                })?;
            return Ok(Caller::new(role, username));
        }
        if let Some(client) = claim("client_id").or_else(|| claim("sub")) {
            return Ok(Caller::new(Role::Device, client));
        }
        return Err(unauthorized());
    }
    if let Some(iam) = &authorizer.iam {
        let id = iam
            .user_arn
            .as_deref()
            .or(iam.caller_id.as_deref())
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .ok_or_else(unauthorized)?;
        return Ok(Caller::new(Role::Service, id));
    }
    Err(unauthorized())
}

/// Whether `value` is a correlation id a caller may choose: 1 to 128 characters of ASCII
/// letters, digits and `-_.:` (so it is safe in logs, headers and ids).
pub fn is_valid_correlation_id(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_CORRELATION_ID_LEN
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
}

/// The caller's `x-correlation-id` (trimmed) if it is valid, otherwise a new random one.
pub fn correlation_id(request: &ApiGatewayV2httpRequest) -> String {
    header(request, CORRELATION_HEADER)
        .map(str::trim)
        .filter(|v| is_valid_correlation_id(v))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// The request body as bytes: base64-decoded when API Gateway marked it so (binary media
/// types, or a body that is not UTF-8), as is otherwise. No body is an empty one.
pub fn body(request: &ApiGatewayV2httpRequest) -> Result<Cow<'_, [u8]>, HttpError> {
    let body = request.body.as_deref().unwrap_or_default();
    if request.is_base64_encoded {
        base64::engine::general_purpose::STANDARD
            .decode(body.trim())
            .map(Cow::Owned)
            .map_err(|e| {
                HttpError::new(
                    400,
                    "InvalidBody",
                    format!("body is marked base64 but does not decode: {e}"),
                )
            })
    } else {
        Ok(Cow::Borrowed(body.as_bytes()))
    }
}

/// The request body decoded as JSON into `T`; an empty (or blank) body is `T` decoded from
/// `{}`.
pub fn json_body<T: DeserializeOwned>(request: &ApiGatewayV2httpRequest) -> Result<T, HttpError> {
    let bytes = body(request)?;
    let bytes: &[u8] = if bytes.trim_ascii().is_empty() {
        b"{}"
    } else {
        &bytes
    };
    serde_json::from_slice(bytes)
        .map_err(|e| HttpError::new(400, "InvalidBody", format!("body is not valid: {e}")))
}

/// A JSON response with `status`, echoing `correlation_id` in the `x-correlation-id` header.
pub fn json_response(status: u16, body: &Value, correlation_id: &str) -> ApiGatewayV2httpResponse {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    if let Ok(value) = HeaderValue::from_str(correlation_id) {
        headers.insert(CORRELATION_HEADER, value);
    }
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = i64::from(status);
    response.headers = headers;
    response.body = Some(Body::Text(body.to_string()));
    response
}

/// A JSON error response: `{"error": code, "message": message, "correlationId": ...}` plus
/// the `extra` fields.
pub fn error_response(
    status: u16,
    code: &str,
    message: &str,
    extra: Map<String, Value>,
    correlation_id: &str,
) -> ApiGatewayV2httpResponse {
    let mut body = json!({"error": code, "message": message, "correlationId": correlation_id});
    if let Value::Object(fields) = &mut body {
        fields.extend(extra);
    }
    json_response(status, &body, correlation_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: &str, base64: bool) -> ApiGatewayV2httpRequest {
        let mut request = ApiGatewayV2httpRequest::default();
        request.body = Some(body.to_string());
        request.is_base64_encoded = base64;
        request
    }

    #[test]
    fn bodies_are_decoded_from_base64_when_marked() {
        assert_eq!(&*body(&request("{\"a\":1}", false)).unwrap(), b"{\"a\":1}");
        assert_eq!(
            &*body(&request("eyJhIjoxfQ==", true)).unwrap(),
            b"{\"a\":1}"
        );
        let err = body(&request("not base64!", true)).unwrap_err();
        assert_eq!((err.status, err.code), (400, "InvalidBody"));
        let value: Value = json_body(&request("eyJhIjoxfQ==", true)).unwrap();
        assert_eq!(value, json!({"a": 1}));
        let empty: Value = json_body(&request("  ", false)).unwrap();
        assert_eq!(empty, json!({}));
        assert_eq!(
            json_body::<Value>(&request("{", false)).unwrap_err().code,
            "InvalidBody"
        );
    }

    #[test]
    fn only_sensible_correlation_ids_are_kept() {
        let with = |value: &str| {
            let mut request = ApiGatewayV2httpRequest::default();
            request
                .headers
                .insert(CORRELATION_HEADER, HeaderValue::from_str(value).unwrap());
            correlation_id(&request)
        };
        assert_eq!(with(" corr-1:a.b_c "), "corr-1:a.b_c");
        for bad in ["", "has space", "semi;colon", &"x".repeat(129), "é"] {
            let Ok(value) = HeaderValue::from_str(bad) else {
                continue;
            };
            let mut request = ApiGatewayV2httpRequest::default();
            request.headers.insert(CORRELATION_HEADER, value);
            let id = correlation_id(&request);
            assert_ne!(id, bad.trim());
            assert!(uuid::Uuid::parse_str(&id).is_ok(), "{bad:?} -> {id}");
        }
        let fresh = correlation_id(&ApiGatewayV2httpRequest::default());
        assert!(uuid::Uuid::parse_str(&fresh).is_ok());
    }

    fn with_authorizer(authorizer: Value) -> ApiGatewayV2httpRequest {
        serde_json::from_value(json!({
            "version": "2.0",
            "routeKey": "POST /readings",
            "rawPath": "/readings",
            "requestContext": {"authorizer": authorizer, "http": {"method": "POST"}},
            "isBase64Encoded": false,
        }))
        .unwrap()
    }

    fn jwt(claims: Value) -> ApiGatewayV2httpRequest {
        with_authorizer(json!({"jwt": {"claims": claims, "scopes": null}}))
    }

    fn person(groups: &str) -> Result<Caller, HttpError> {
        caller(&jwt(json!({
            "sub": "5f0c-uuid", "client_id": "people-client", "username": "w-1",
            "cognito:groups": groups, "token_use": "access",
        })))
    }

    #[test]
    fn given_the_api_gateway_rendering_of_groups_when_parsed_then_the_group_is_the_role() {
        let w = person("[health-worker]").unwrap();
        assert_eq!(
            w,
            Caller {
                role: Role::HealthWorker,
                id: "w-1".into()
            }
        );
        assert_eq!(person("[supervisor]").unwrap().role, Role::Supervisor);
        assert_eq!(person("[operator]").unwrap().role, Role::Operator);
    }

    #[test]
    fn given_a_json_array_string_of_groups_when_parsed_then_the_highest_group_wins() {
        assert_eq!(
            person(r#"["health-worker","supervisor"]"#).unwrap().role,
            Role::Supervisor
        );
        assert_eq!(
            person(r#"["operator", "health-worker"]"#).unwrap().role,
            Role::Operator
        );
        assert_eq!(
            person("[health-worker supervisor operator]").unwrap().role,
            Role::Operator
        );
        assert_eq!(person("health-worker").unwrap().role, Role::HealthWorker);
    }

    #[test]
    fn given_a_username_without_a_known_group_when_parsed_then_403() {
        for groups in ["[]", "[admins]", "", r#"["admins"]"#] {
            let err = person(groups).unwrap_err();
            assert_eq!((err.status, err.code), (403, "Forbidden"), "{groups:?}");
        }
        let err = caller(&jwt(json!({"username": "w-1", "client_id": "c"}))).unwrap_err();
        assert_eq!(err.status, 403);
        let body = match err.response("corr-1").body {
            Some(Body::Text(text)) => serde_json::from_str::<Value>(&text).unwrap(),
            other => panic!("{other:?}"),
        };
        assert_eq!(body["error"], "Forbidden");
        assert_eq!(body["correlationId"], "corr-1");
        assert!(body["message"].as_str().unwrap().contains("w-1"));
    }

    #[test]
    fn given_a_token_without_username_when_parsed_then_a_device_named_by_its_client_id() {
        let device = caller(&jwt(json!({
            "sub": "kiosk-3", "client_id": "kiosk-3", "scope": "vitals/readings.write",
            "token_use": "access",
        })))
        .unwrap();
        assert_eq!(
            device,
            Caller {
                role: Role::Device,
                id: "kiosk-3".into()
            }
        );
        let by_sub = caller(&jwt(json!({"sub": "wearable-7"}))).unwrap();
        assert_eq!(by_sub.id, "wearable-7");
        assert_eq!(caller(&jwt(json!({}))).unwrap_err().status, 401);
    }

    #[test]
    fn given_an_iam_principal_when_parsed_then_a_service_named_by_its_arn() {
        let service = caller(&with_authorizer(json!({"iam": {
            "accountId": "000000000000", "callerId": "AIDA1",
            "userArn": "arn:aws:iam::000000000000:user/replayer",
        }})))
        .unwrap();
        assert_eq!(service.role, Role::Service);
        assert_eq!(service.id, "arn:aws:iam::000000000000:user/replayer");
        let by_caller_id = caller(&with_authorizer(json!({"iam": {"callerId": "AIDA1"}}))).unwrap();
        assert_eq!(by_caller_id.id, "AIDA1");
    }

    #[test]
    fn given_no_authorizer_context_when_parsed_then_401() {
        let err = caller(&ApiGatewayV2httpRequest::default()).unwrap_err();
        assert_eq!((err.status, err.code), (401, "Unauthorized"));
        assert_eq!(caller(&with_authorizer(json!({}))).unwrap_err().status, 401);
    }

    #[test]
    fn claim_lists_in_every_rendering() {
        assert_eq!(claim_list("[a b]"), ["a", "b"]);
        assert_eq!(claim_list(r#"["a","b"]"#), ["a", "b"]);
        assert_eq!(claim_list("[a]"), ["a"]);
        assert_eq!(claim_list("[]"), Vec::<String>::new());
        assert_eq!(claim_list("a,b"), ["a", "b"]);
    }

    #[test]
    fn errors_are_json_with_code_message_and_correlation_id() {
        let response = HttpError::not_found("no emergency e-1").response("corr-1");
        assert_eq!(response.status_code, 404);
        assert_eq!(response.headers[CORRELATION_HEADER], "corr-1");
        assert_eq!(response.headers["content-type"], "application/json");
        let Some(Body::Text(text)) = response.body else {
            panic!("text body expected");
        };
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            body,
            json!({"error": "NotFound", "message": "no emergency e-1", "correlationId": "corr-1"})
        );
    }
}
