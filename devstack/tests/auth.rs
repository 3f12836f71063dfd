//! The local HTTP API authorizes and throttles like API Gateway (docs/security.md): against
//! one stack (the real template and function binaries, on moto), every check in turn.
//!
//! - no token, an expired token, a token of a client outside the audience, a tampered
//!   signature, a token of another issuer's key: 401 with `www-authenticate`;
//! - a valid token without the route's scope: 403;
//! - a valid token: the function runs and sees the claims in `requestContext.authorizer.jwt`;
//! - the JWKS is served;
//! - a burst over a route's throttle: 429 before the authorizer runs.

use std::path::PathBuf;
use std::time::Duration;

use devstack::auth::{self, LocalIssuer};
use devstack::{Stack, StackConfig, TokenSpec};
use serde_json::{Value, json};

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".."))
}

async fn start() -> Stack {
    let root = workspace_root();
    let mut config = StackConfig::for_workspace(&root);
    if config.endpoint.is_some() {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        config.stack_name = format!("t{}-auth", &suffix[..6]);
    }
    let logs = config
        .bin_dir
        .with_file_name("e2e-logs")
        .join("devstack_auth");
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&logs).expect("log folder");
    config.function_log_dir = Some(logs);
    // A small throttle on the emergency routes, for the 429 check; POST /readings keeps
    // the template's.
    for (name, value) in [
        ("EmergencyThrottleBurst", "3"),
        ("EmergencyThrottleRate", "1"),
    ] {
        config
            .parameter_overrides
            .insert(name.to_string(), value.to_string());
    }
    match Stack::start(config).await {
        Ok(stack) => stack,
        Err(err) => panic!("starting the local stack failed: {err:#}"),
    }
}

fn readings() -> String {
    json!([{
        // The demo wearable's patient (its binding is seeded), unregistered otherwise.
        "patientId": "p-001",
        "type": "heart_rate",
        "value": 72,
        "unit": "bpm",
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "deviceId": "dev-auth-1",
    }])
    .to_string()
}

struct Answer {
    status: u16,
    www_authenticate: String,
    body: Value,
}

async fn send(stack: &Stack, method: &str, path: &str, authorization: Option<&str>) -> Answer {
    let client = reqwest::Client::new();
    let url = format!("{}{path}", stack.api_url());
    let mut request = match method {
        "GET" => client.get(url),
        _ => client
            .post(url)
            .header("content-type", "application/json")
            .body(readings()),
    };
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    let response = request.send().await.expect("HTTP request");
    let status = response.status().as_u16();
    let www_authenticate = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let text = response.text().await.unwrap_or_default();
    Answer {
        status,
        www_authenticate,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

fn bearer(stack: &Stack, spec: &TokenSpec) -> String {
    stack.bearer(spec).expect("a token")
}

fn assert_unauthorized(answer: &Answer, what: &str, description: &str) {
    assert_eq!(answer.status, 401, "{what}: {}", answer.body);
    assert_eq!(answer.body, json!({"message": "Unauthorized"}), "{what}");
    assert!(
        answer.www_authenticate.starts_with("Bearer")
            && answer.www_authenticate.contains("error=\"invalid_token\"")
            && answer.www_authenticate.contains(description),
        "{what}: www-authenticate {:?}",
        answer.www_authenticate
    );
}

async fn refuses_bad_tokens(stack: &Stack) {
    let ingest_before = stack.invocations("IngestFunction").len();

    let answer = send(stack, "POST", "/readings", None).await;
    assert_unauthorized(&answer, "no token", "missing");

    let expired = bearer(
        stack,
        &TokenSpec::operator("op-1").with_lifetime_seconds(-60),
    );
    let answer = send(stack, "POST", "/readings", Some(&expired)).await;
    assert_unauthorized(&answer, "expired", "expired");

    let stranger = bearer(
        stack,
        &TokenSpec::device("test-device-1").with_client_id("someone-elses-app"),
    );
    let answer = send(stack, "POST", "/readings", Some(&stranger)).await;
    assert_unauthorized(&answer, "client outside the audience", "audience");

    let wrong_aud = bearer(
        stack,
        &TokenSpec::operator("op-1").with_audience("other-api"),
    );
    let answer = send(stack, "POST", "/readings", Some(&wrong_aud)).await;
    assert_unauthorized(&answer, "aud outside the audience", "audience");

    let valid = stack
        .issue_token(&TokenSpec::operator("op-1"))
        .expect("a token");
    let tampered = format!("Bearer {}", auth::tamper(&valid));
    let answer = send(stack, "POST", "/readings", Some(&tampered)).await;
    assert_unauthorized(&answer, "tampered signature", "signature");

    // Same claims, signed by a key the issuer's JWKS does not have.
    let other = LocalIssuer::generate(stack.token_issuer().issuer(), "x").expect("issuer");
    let forged = format!(
        "Bearer {}",
        other.issue(&TokenSpec::operator("op-1")).unwrap()
    );
    let answer = send(stack, "POST", "/readings", Some(&forged)).await;
    assert_unauthorized(&answer, "another key", "kid");

    let answer = send(stack, "POST", "/readings", Some("Bearer not-a-jwt")).await;
    assert_unauthorized(&answer, "garbage", "not a JWT");

    assert_eq!(
        stack.invocations("IngestFunction").len(),
        ingest_before,
        "a refused request never reaches the function"
    );
}

async fn refuses_missing_scopes(stack: &Stack) {
    // A device may post readings, nothing else (docs/security.md, "Scopes").
    let device = bearer(stack, &TokenSpec::device("test-device-2"));
    let answer = send(stack, "GET", "/emergencies/e-1", Some(&device)).await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert_eq!(answer.body, json!({"message": "Forbidden"}));
    assert!(
        answer.www_authenticate.contains("insufficient_scope"),
        "{:?}",
        answer.www_authenticate
    );
    // A person whose token lacks the route's scope.
    let narrow = bearer(
        stack,
        &TokenSpec::health_worker("w-01").with_scopes(&[auth::SCOPE_EMERGENCIES_READ]),
    );
    let answer = send(stack, "POST", "/readings", Some(&narrow)).await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    let none = bearer(stack, &TokenSpec::operator("op-1").with_scopes(&[]));
    let answer = send(stack, "POST", "/readings", Some(&none)).await;
    assert_eq!(answer.status, 403, "{}", answer.body);
}

async fn passes_valid_tokens_with_their_claims(stack: &Stack) {
    let before = stack.invocations("IngestFunction").len();
    let operator = bearer(stack, &TokenSpec::operator("op-1"));
    let answer = send(stack, "POST", "/readings", Some(&operator)).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    // A device of the parameter's audience (DeviceClientIds), with or without "Bearer ".
    let device = stack
        .issue_token(&TokenSpec::device(auth::DEMO_WEARABLE))
        .expect("a token");
    let answer = send(stack, "POST", "/readings", Some(&device)).await;
    assert_eq!(answer.status, 202, "{}", answer.body);

    let invocations = stack.invocations("IngestFunction");
    assert_eq!(invocations.len(), before + 2);
    let context = &invocations[before].payload["requestContext"]["authorizer"]["jwt"];
    let claims = &context["claims"];
    assert_eq!(claims["username"], "op-1", "{context}");
    assert_eq!(claims["cognito:groups"], "[operator]");
    assert_eq!(claims["client_id"], stack.token_issuer().people_client_id());
    assert_eq!(claims["token_use"], "access");
    assert_eq!(claims["iss"], stack.token_issuer().issuer());
    assert!(
        claims["exp"].is_string(),
        "every claim is a string: {claims}"
    );
    let scopes: Vec<&str> = context["scopes"]
        .as_array()
        .expect("scopes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(scopes.contains(&auth::SCOPE_READINGS_WRITE), "{scopes:?}");
    let device_claims =
        &invocations[before + 1].payload["requestContext"]["authorizer"]["jwt"]["claims"];
    assert_eq!(device_claims["client_id"], auth::DEMO_WEARABLE);
    assert_eq!(device_claims["sub"], auth::DEMO_WEARABLE);
    assert!(device_claims.get("username").is_none(), "{device_claims}");
    // As aws_lambda_events reads it.
    let request: aws_lambda_events::event::apigw::ApiGatewayV2httpRequest =
        serde_json::from_value(invocations[before].payload.clone()).expect("a v2 request");
    let jwt = request
        .request_context
        .authorizer
        .and_then(|a| a.jwt)
        .expect("jwt authorizer context");
    assert_eq!(jwt.claims.get("username").map(String::as_str), Some("op-1"));

    // A device minted for the first time is onboarded into the audience: the authorizer
    // lets it through, and ingest refuses it, as it has no binding yet.
    let new_device = bearer(stack, &TokenSpec::device("wearable-new-1"));
    let answer = send(stack, "POST", "/readings", Some(&new_device)).await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert_eq!(answer.body["error"], "Forbidden", "{}", answer.body);
    assert!(
        answer.body["message"]
            .as_str()
            .is_some_and(|m| m.contains("not bound")),
        "{}",
        answer.body
    );
}

async fn serves_the_jwks(stack: &Stack) {
    let jwks: Value = reqwest::get(format!("{}/.well-known/jwks.json", stack.api_url()))
        .await
        .expect("GET jwks")
        .json()
        .await
        .expect("JSON");
    assert_eq!(jwks["keys"][0]["alg"], "RS256");
    assert_eq!(jwks["keys"][0]["kty"], "RSA");
    assert!(jwks["keys"][0]["kid"].is_string());
}

async fn throttles_bursts_before_auth(stack: &Stack) {
    // EmergencyThrottleBurst = 3, rate 1/s: of 12 requests at once, most are throttled;
    // the rest reach the authorizer (no token: 401).
    let url = format!("{}/emergencies/e-1", stack.api_url());
    let handles: Vec<_> = (0..12)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let response = reqwest::get(url).await.expect("GET /emergencies/e-1");
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                (status, body)
            })
        })
        .collect();
    let mut answers = Vec::new();
    for handle in handles {
        answers.push(handle.await.expect("request task"));
    }
    let throttled = answers.iter().filter(|(status, _)| *status == 429).count();
    let unauthorized = answers.iter().filter(|(status, _)| *status == 401).count();
    assert!(throttled >= 6, "{throttled} of 12 throttled: {answers:?}");
    assert_eq!(throttled + unauthorized, 12, "{answers:?}");
    let (_, sample) = answers
        .iter()
        .find(|(status, _)| *status == 429)
        .expect("a 429");
    assert_eq!(sample, &json!({"message": "Too Many Requests"}));
    // Another route has its own bucket.
    let operator = bearer(stack, &TokenSpec::operator("op-1"));
    let answer = send(stack, "POST", "/readings", Some(&operator)).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    // The bucket refills at the route's rate.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let answer = send(stack, "GET", "/emergencies/e-1", None).await;
    assert_eq!(answer.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_api_authorizes_and_throttles_like_api_gateway() {
    let stack = start().await;
    devstack::inspect::seed_demo_devices(&stack)
        .await
        .expect("seeding the demo devices");
    serves_the_jwks(&stack).await;
    refuses_bad_tokens(&stack).await;
    refuses_missing_scopes(&stack).await;
    passes_valid_tokens_with_their_claims(&stack).await;
    throttles_bursts_before_auth(&stack).await;
    stack
        .wait_idle(Duration::from_secs(30))
        .await
        .expect("idle");
    stack.shutdown().await.expect("shutdown");
}
