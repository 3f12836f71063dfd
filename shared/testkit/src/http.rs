//! HTTP API requests as API Gateway hands them to a function, with the caller's identity
//! as its JWT authorizer passes it (`requestContext.authorizer.jwt`, docs/security.md).

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use serde_json::{Value, json};

/// A `method` request whose token has `claims` (every claim a string, as API Gateway passes
/// them), with no body.
pub fn request_with_claims(method: &str, claims: Value) -> ApiGatewayV2httpRequest {
    serde_json::from_value(json!({
        "requestContext": {
            "authorizer": {"jwt": {"claims": claims, "scopes": null}},
            "http": {"method": method},
            "requestId": "req-1",
        },
        "isBase64Encoded": false,
    }))
    .expect("a valid API Gateway request")
}

/// A `POST` by an operator (`op-1`): may post readings for any patient.
pub fn operator_post() -> ApiGatewayV2httpRequest {
    request_with_claims(
        "POST",
        json!({"username": "op-1", "cognito:groups": "[operator]"}),
    )
}
