//! What API Gateway does before it invokes a route's function: throttling (the stage's
//! `DefaultRouteSettings` / `RouteSettings`, a token bucket per route: 429) and the JWT
//! authorizer (the HttpApi's `Auth`, the route event's `Auth`: 401 / 403), checked against
//! devstack's local token issuer (`crate::auth`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::response::message;
use crate::auth::{LocalIssuer, claims_as_strings, scopes_of};
use crate::template::scalar_to_string;

/// A JWT authorizer of the template (`Auth.Authorizers.<name>` with `JwtConfiguration`).
#[derive(Debug, Clone, PartialEq)]
pub struct JwtAuthorizer {
    /// Header holding the token (from `IdentitySource`, `$request.header.Authorization`).
    pub identity_header: String,
    /// The issuer in the template (locally, tokens are checked against the local issuer).
    pub template_issuer: String,
    /// The resolved audience list (client ids).
    pub audience: Vec<String>,
    /// The authorizer's own `AuthorizationScopes` (used when a route lists none).
    pub scopes: Vec<String>,
}

/// Burst and steady rate of a route (`ThrottlingBurstLimit`, `ThrottlingRateLimit`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throttle {
    /// Bucket size.
    pub burst: f64,
    /// Tokens per second.
    pub rate: f64,
}

/// An HTTP API's auth and throttling settings, from its resolved template properties.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiSettings {
    /// `Auth.DefaultAuthorizer`.
    pub default_authorizer: Option<String>,
    /// JWT authorizers by name.
    pub authorizers: BTreeMap<String, JwtAuthorizer>,
    /// `DefaultRouteSettings` throttle.
    pub default_throttle: Option<Throttle>,
    /// `RouteSettings` throttles by route key.
    pub route_throttles: BTreeMap<String, Throttle>,
}

fn strings(value: Option<&Value>) -> Result<Vec<String>> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(scalar_to_string).collect(),
        Some(Value::String(text)) => Ok(text
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()),
        Some(other) => bail!("expected a list of strings, found {other}"),
    }
}

fn number(value: Option<&Value>) -> Result<Option<f64>> {
    value
        .map(|v| scalar_to_string(v)?.parse::<f64>().context("not a number"))
        .transpose()
}

fn throttle(settings: &Value) -> Result<Option<Throttle>> {
    let burst = number(settings.get("ThrottlingBurstLimit")).context("ThrottlingBurstLimit")?;
    let rate = number(settings.get("ThrottlingRateLimit")).context("ThrottlingRateLimit")?;
    Ok(match (burst, rate) {
        (None, None) => None,
        (burst, rate) => Some(Throttle {
            burst: burst.unwrap_or(f64::INFINITY),
            rate: rate.unwrap_or(f64::INFINITY),
        }),
    })
}

impl ApiSettings {
    /// Reads `Auth`, `DefaultRouteSettings` and `RouteSettings` of resolved HttpApi
    /// properties. Only JWT authorizers are supported.
    pub fn from_properties(properties: &Value) -> Result<ApiSettings> {
        let mut settings = ApiSettings::default();
        if let Some(auth) = properties.get("Auth") {
            settings.default_authorizer = auth
                .get("DefaultAuthorizer")
                .map(scalar_to_string)
                .transpose()?;
            if let Some(authorizers) = auth.get("Authorizers").and_then(Value::as_object) {
                for (name, def) in authorizers {
                    let Some(jwt) = def.get("JwtConfiguration") else {
                        bail!("authorizer {name}: only JWT authorizers are supported by devstack");
                    };
                    let field =
                        |lower: &str, upper: &str| jwt.get(lower).or_else(|| jwt.get(upper));
                    let identity_source = def
                        .get("IdentitySource")
                        .map(scalar_to_string)
                        .transpose()?
                        .unwrap_or_else(|| "$request.header.Authorization".to_string());
                    let Some(header) = identity_source.strip_prefix("$request.header.") else {
                        bail!(
                            "authorizer {name}: IdentitySource {identity_source} is not a header"
                        );
                    };
                    settings.authorizers.insert(
                        name.clone(),
                        JwtAuthorizer {
                            identity_header: header.to_ascii_lowercase(),
                            template_issuer: field("issuer", "Issuer")
                                .map(scalar_to_string)
                                .transpose()?
                                .unwrap_or_default(),
                            audience: strings(field("audience", "Audience"))
                                .with_context(|| format!("authorizer {name} audience"))?,
                            scopes: strings(def.get("AuthorizationScopes"))?,
                        },
                    );
                }
            }
            if let Some(default) = &settings.default_authorizer
                && default != "NONE"
                && !settings.authorizers.contains_key(default)
            {
                bail!(
                    "DefaultAuthorizer {default} is not a JWT authorizer of the API (devstack supports JWT only)"
                );
            }
        }
        if let Some(defaults) = properties.get("DefaultRouteSettings") {
            settings.default_throttle = throttle(defaults).context("DefaultRouteSettings")?;
        }
        if let Some(routes) = properties.get("RouteSettings").and_then(Value::as_object) {
            for (route_key, route) in routes {
                if let Some(t) =
                    throttle(route).with_context(|| format!("RouteSettings {route_key}"))?
                {
                    settings.route_throttles.insert(route_key.clone(), t);
                }
            }
        }
        Ok(settings)
    }

    /// The policy of one route: its event's `Auth` (`Authorizer`, `AuthorizationScopes`)
    /// over the API's default authorizer, and its throttle.
    pub fn policy(&self, route_key: &str, event_auth: Option<&Value>) -> Result<RoutePolicy> {
        let named = event_auth
            .and_then(|a| a.get("Authorizer"))
            .map(scalar_to_string)
            .transpose()?
            .or_else(|| self.default_authorizer.clone());
        let authorizer = match named.as_deref() {
            None | Some("NONE") => None,
            Some(name) => {
                let authorizer = self
                    .authorizers
                    .get(name)
                    .with_context(|| format!("route {route_key}: no JWT authorizer {name}"))?;
                let route_scopes = strings(event_auth.and_then(|a| a.get("AuthorizationScopes")))?;
                let scopes = if route_scopes.is_empty() {
                    authorizer.scopes.clone()
                } else {
                    route_scopes
                };
                Some((authorizer.clone(), scopes))
            }
        };
        let throttle = self
            .route_throttles
            .get(route_key)
            .copied()
            .or(self.default_throttle);
        Ok(RoutePolicy {
            authorizer,
            bucket: throttle.map(|t| {
                Mutex::new(Bucket {
                    throttle: t,
                    tokens: t.burst,
                    at: Instant::now(),
                })
            }),
        })
    }
}

#[derive(Debug)]
struct Bucket {
    throttle: Throttle,
    tokens: f64,
    at: Instant,
}

/// What is checked before a route's function runs.
#[derive(Debug, Default)]
pub struct RoutePolicy {
    /// The authorizer and the route's scopes (any one of them suffices; none = any token).
    pub authorizer: Option<(JwtAuthorizer, Vec<String>)>,
    bucket: Option<Mutex<Bucket>>,
}

/// The outcome of the checks.
pub(super) enum Verdict {
    /// No authorizer on the route.
    Open,
    /// `requestContext.authorizer` for the event.
    Allowed(Value),
    /// 429, 401 or 403.
    Refused(Response),
}

impl RoutePolicy {
    /// True if the route's bucket has a token (and takes it).
    fn admit(&self) -> bool {
        let Some(bucket) = &self.bucket else {
            return true;
        };
        let Ok(mut bucket) = bucket.lock() else {
            return true;
        };
        let now = Instant::now();
        let elapsed = now.duration_since(bucket.at).as_secs_f64();
        bucket.at = now;
        bucket.tokens = (bucket.tokens + elapsed * bucket.throttle.rate).min(bucket.throttle.burst);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Throttle, then authorize, as API Gateway does.
    pub(super) fn check(&self, issuer: &LocalIssuer, headers: &HeaderMap) -> Verdict {
        if !self.admit() {
            return Verdict::Refused(message(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests"));
        }
        let Some((authorizer, scopes)) = &self.authorizer else {
            return Verdict::Open;
        };
        let Some(value) = headers
            .get(authorizer.identity_header.as_str())
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
        else {
            return Verdict::Refused(unauthorized("the Authorization header is missing"));
        };
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => value,
        };
        let mut audience: BTreeSet<String> = authorizer.audience.iter().cloned().collect();
        audience.extend(issuer.registered_devices());
        let claims = match issuer.verify(token, &audience) {
            Ok(claims) => claims,
            Err(why) => return Verdict::Refused(unauthorized(&why)),
        };
        let token_scopes = scopes_of(&claims);
        if !scopes.is_empty() && !scopes.iter().any(|s| token_scopes.contains(s)) {
            let mut response = message(StatusCode::FORBIDDEN, "Forbidden");
            let header = format!(
                "Bearer scope=\"{}\" error=\"insufficient_scope\" error_description=\"the token has none of the route's scopes\"",
                scopes.join(" ")
            );
            if let Ok(value) = HeaderValue::from_str(&header) {
                response.headers_mut().insert("www-authenticate", value);
            }
            return Verdict::Refused(response);
        }
        let scopes_value = if token_scopes.is_empty() {
            Value::Null
        } else {
            json!(token_scopes)
        };
        Verdict::Allowed(json!({
            "jwt": {
                "claims": Value::Object(claims_as_strings(&claims)),
                "scopes": scopes_value,
            }
        }))
    }
}

fn unauthorized(why: &str) -> Response {
    let mut response = message(StatusCode::UNAUTHORIZED, "Unauthorized");
    let header = format!(
        "Bearer error=\"invalid_token\" error_description=\"{}\"",
        why.replace('"', "'")
    );
    if let Ok(value) = HeaderValue::from_str(&header) {
        response.headers_mut().insert("www-authenticate", value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_from_properties() {
        let settings = ApiSettings::from_properties(&json!({
            "Auth": {
                "DefaultAuthorizer": "Jwt",
                "Authorizers": {"Jwt": {
                    "IdentitySource": "$request.header.Authorization",
                    "JwtConfiguration": {"issuer": "https://x", "audience": ["people", "dev-1"]}
                }}
            },
            "DefaultRouteSettings": {"ThrottlingBurstLimit": "5", "ThrottlingRateLimit": 1},
            "RouteSettings": {"POST /readings": {"ThrottlingBurstLimit": 2, "ThrottlingRateLimit": "0.5"}}
        }))
        .unwrap();
        assert_eq!(
            settings.authorizers["Jwt"].audience,
            vec!["people", "dev-1"]
        );
        let policy = settings
            .policy(
                "POST /readings",
                Some(&json!({"AuthorizationScopes": ["a/b"]})),
            )
            .unwrap();
        let (authorizer, scopes) = policy.authorizer.as_ref().unwrap();
        assert_eq!(authorizer.identity_header, "authorization");
        assert_eq!(scopes, &vec!["a/b".to_string()]);
        assert!(policy.admit() && policy.admit() && !policy.admit());
        let open = settings
            .policy("GET /x", Some(&json!({"Authorizer": "NONE"})))
            .unwrap();
        assert!(open.authorizer.is_none());
    }
}
