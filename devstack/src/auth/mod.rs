//! The local token issuer: devstack's stand-in for the Cognito user pool
//! (docs/security.md, "Local tokens (devstack)").
//!
//! At stack start a fresh RSA 2048 key is generated; its public half is served as a JWKS at
//! `<api url>/.well-known/jwks.json` and the issuer (`iss`) is the API's base URL, so the
//! JWKS sits where Cognito puts it (`<issuer>/.well-known/jwks.json`). Tokens are shaped like
//! Cognito access tokens (`client_id`, `scope`, `token_use`, `username`, `cognito:groups`),
//! signed RS256 with a `kid`. [`crate::Stack::issue_token`] mints them from a [`TokenSpec`];
//! the HTTP API verifies them like API Gateway's JWT authorizer (`crate::http_api`).
//!
//! Audience: the template's authorizer audience resolves `!Ref PeopleClient` to the local
//! people client id ([`LocalIssuer::people_client_id`]) and `DeviceClientIds` to the stack
//! parameter ([`crate::StackConfig::for_workspace`] lists the demo's and the tests' devices).
//! Minting a device token also registers its client id, as onboarding a device adds its app
//! client to the audience; a token whose client id is neither is refused (401).

use std::collections::BTreeSet;
use std::sync::RwLock;

use anyhow::{Context, Result, anyhow, bail};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{self, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

/// The resource server's scopes (template `VitalsResourceServer`).
pub const SCOPE_READINGS_WRITE: &str = "vitals/readings.write";
/// `POST /alerts/{id}/ack`.
pub const SCOPE_ALERTS_ACK: &str = "vitals/alerts.ack";
/// `POST /emergencies`, `.../close`, `.../ambulance`.
pub const SCOPE_EMERGENCIES_WRITE: &str = "vitals/emergencies.write";
/// `GET /emergencies/{id}`.
pub const SCOPE_EMERGENCIES_READ: &str = "vitals/emergencies.read";
/// `PUT /patients/{id}`, `PUT /workers/{id}`, `POST /import` (the onboarding API; the
/// handler admits operators only).
pub const SCOPE_DIRECTORY_WRITE: &str = "vitals/directory.write";
/// The query API (issue 14): `GET /alerts`, `/alerts/{id}`, `/workers/{id}/inbox`,
/// `/emergencies`, `/patients/{id}`, `/villages/{id}/stats`.
pub const SCOPE_DASHBOARD_READ: &str = "vitals/dashboard.read";
/// Scopes of the people client (`PeopleClient`'s `AllowedOAuthScopes` of the resource server).
pub const PEOPLE_SCOPES: [&str; 6] = [
    SCOPE_READINGS_WRITE,
    SCOPE_ALERTS_ACK,
    SCOPE_EMERGENCIES_WRITE,
    SCOPE_EMERGENCIES_READ,
    SCOPE_DIRECTORY_WRITE,
    SCOPE_DASHBOARD_READ,
];
/// Scopes of a device's client-credentials app client.
pub const DEVICE_SCOPES: [&str; 1] = [SCOPE_READINGS_WRITE];

/// Cognito groups (roles).
pub const GROUP_HEALTH_WORKER: &str = "health-worker";
/// Supervisors.
pub const GROUP_SUPERVISOR: &str = "supervisor";
/// Operators.
pub const GROUP_OPERATOR: &str = "operator";

/// The demo's kiosk device (client id), bound to the village Kisumu.
pub const DEMO_KIOSK: &str = "kiosk-kisumu";
/// The demo's wearable device (client id), bound to patient p-001.
pub const DEMO_WEARABLE: &str = "wearable-p-001";
/// Device client ids in the local audience by default (`DeviceClientIds`): the demo's
/// devices and the ones tests use.
pub const DEFAULT_DEVICE_CLIENT_IDS: [&str; 5] = [
    DEMO_KIOSK,
    DEMO_WEARABLE,
    "test-device-1",
    "test-device-2",
    "test-device-3",
];
/// Lifetime of a token unless the spec says otherwise (Cognito's `AccessTokenValidity`).
pub const DEFAULT_LIFETIME_SECONDS: i64 = 3600;

/// Who a token is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A person signed in through the people client: `username` (the directory id) and
    /// Cognito groups (`health-worker`, `supervisor`, `operator`).
    Person {
        /// `username` claim.
        username: String,
        /// `cognito:groups` claim (absent when empty).
        groups: Vec<String>,
    },
    /// A device's client-credentials token: `client_id` = `sub` = the device id.
    Device {
        /// The device's app client id.
        client_id: String,
    },
}

/// What token to mint ([`crate::Stack::issue_token`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSpec {
    /// Person or device.
    pub principal: Principal,
    /// `scope` claim; None = the client's allowed scopes ([`PEOPLE_SCOPES`] or
    /// [`DEVICE_SCOPES`]).
    pub scopes: Option<Vec<String>>,
    /// Seconds from now to `exp`; negative for an already expired token.
    pub lifetime_seconds: i64,
    /// `client_id` claim instead of the people client's id / the device id (not registered
    /// in the audience: a stranger client gets 401).
    pub client_id: Option<String>,
    /// An `aud` claim (Cognito access tokens have none; the authorizer then checks it
    /// instead of `client_id`).
    pub audience: Option<String>,
}

impl TokenSpec {
    /// A person's token with these groups.
    pub fn person(username: &str, groups: &[&str]) -> TokenSpec {
        TokenSpec::new(Principal::Person {
            username: username.to_string(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        })
    }

    /// A health worker (`health-worker` group).
    pub fn health_worker(username: &str) -> TokenSpec {
        TokenSpec::person(username, &[GROUP_HEALTH_WORKER])
    }

    /// A supervisor (`supervisor` group).
    pub fn supervisor(username: &str) -> TokenSpec {
        TokenSpec::person(username, &[GROUP_SUPERVISOR])
    }

    /// An operator (`operator` group).
    pub fn operator(username: &str) -> TokenSpec {
        TokenSpec::person(username, &[GROUP_OPERATOR])
    }

    /// A device's token (client credentials).
    pub fn device(client_id: &str) -> TokenSpec {
        TokenSpec::new(Principal::Device {
            client_id: client_id.to_string(),
        })
    }

    fn new(principal: Principal) -> TokenSpec {
        TokenSpec {
            principal,
            scopes: None,
            lifetime_seconds: DEFAULT_LIFETIME_SECONDS,
            client_id: None,
            audience: None,
        }
    }

    /// With exactly these scopes (e.g. `&[]` for none).
    pub fn with_scopes(mut self, scopes: &[&str]) -> TokenSpec {
        self.scopes = Some(scopes.iter().map(|s| s.to_string()).collect());
        self
    }

    /// With `exp` this many seconds from now (negative: expired).
    pub fn with_lifetime_seconds(mut self, seconds: i64) -> TokenSpec {
        self.lifetime_seconds = seconds;
        self
    }

    /// With this `client_id` claim (not added to the audience).
    pub fn with_client_id(mut self, client_id: &str) -> TokenSpec {
        self.client_id = Some(client_id.to_string());
        self
    }

    /// With an `aud` claim.
    pub fn with_audience(mut self, audience: &str) -> TokenSpec {
        self.audience = Some(audience.to_string());
        self
    }
}

/// The local issuer: signing key, JWKS, issuer URL, the people client's id and the devices
/// registered by minting their tokens.
pub struct LocalIssuer {
    key: KeyPair,
    kid: String,
    issuer: String,
    people_client_id: String,
    jwks: Value,
    modulus: Vec<u8>,
    exponent: Vec<u8>,
    registered_devices: RwLock<BTreeSet<String>>,
}

impl std::fmt::Debug for LocalIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalIssuer")
            .field("kid", &self.kid)
            .field("issuer", &self.issuer)
            .field("people_client_id", &self.people_client_id)
            .finish_non_exhaustive()
    }
}

/// Why a token was refused (the `error_description` of the 401).
pub type Refusal = String;

impl LocalIssuer {
    /// A new issuer with a fresh RSA 2048 key; `issuer` is the `iss` of its tokens.
    pub fn generate(issuer: &str, people_client_id: &str) -> Result<LocalIssuer> {
        let key = KeyPair::generate(KeySize::Rsa2048)
            .map_err(|_| anyhow!("generating the local issuer's RSA key"))?;
        let public = key.public_key();
        let modulus = public.modulus().big_endian_without_leading_zero().to_vec();
        let exponent = public.exponent().big_endian_without_leading_zero().to_vec();
        let kid = format!(
            "devstack-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let jwks = json!({
            "keys": [{
                "kty": "RSA",
                "alg": "RS256",
                "use": "sig",
                "kid": kid,
                "n": URL_SAFE_NO_PAD.encode(&modulus),
                "e": URL_SAFE_NO_PAD.encode(&exponent),
            }]
        });
        Ok(LocalIssuer {
            key,
            kid,
            issuer: issuer.to_string(),
            people_client_id: people_client_id.to_string(),
            jwks,
            modulus,
            exponent,
            registered_devices: RwLock::new(BTreeSet::new()),
        })
    }

    /// The `iss` of the tokens.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The local people client's id (what the template's `!Ref PeopleClient` resolves to).
    pub fn people_client_id(&self) -> &str {
        &self.people_client_id
    }

    /// The JWKS (`{"keys":[...]}`) served at `/.well-known/jwks.json`.
    pub fn jwks(&self) -> &Value {
        &self.jwks
    }

    /// Device client ids registered by minting their tokens (onboarding).
    pub fn registered_devices(&self) -> BTreeSet<String> {
        self.registered_devices
            .read()
            .map(|set| set.clone())
            .unwrap_or_default()
    }

    /// Mints a signed token.
    pub fn issue(&self, spec: &TokenSpec) -> Result<String> {
        let now = chrono::Utc::now().timestamp();
        let mut claims = Map::new();
        let (client_id, default_scopes): (String, &[&str]) = match &spec.principal {
            Principal::Person { username, groups } => {
                let sub = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, username.as_bytes());
                claims.insert("sub".into(), json!(sub.to_string()));
                if !groups.is_empty() {
                    claims.insert("cognito:groups".into(), json!(groups));
                }
                claims.insert("username".into(), json!(username));
                claims.insert("origin_jti".into(), json!(uuid::Uuid::new_v4().to_string()));
                (self.people_client_id.clone(), &PEOPLE_SCOPES)
            }
            Principal::Device { client_id } => {
                if spec.client_id.is_none()
                    && let Ok(mut devices) = self.registered_devices.write()
                {
                    devices.insert(client_id.clone());
                }
                claims.insert("sub".into(), json!(client_id));
                (client_id.clone(), &DEVICE_SCOPES)
            }
        };
        let client_id = spec.client_id.clone().unwrap_or(client_id);
        let scope = match &spec.scopes {
            Some(scopes) => scopes.join(" "),
            None => default_scopes.join(" "),
        };
        claims.insert("iss".into(), json!(self.issuer));
        claims.insert("version".into(), json!(2));
        claims.insert("client_id".into(), json!(client_id));
        claims.insert("token_use".into(), json!("access"));
        claims.insert("scope".into(), json!(scope));
        claims.insert(
            "auth_time".into(),
            json!(now.min(now + spec.lifetime_seconds)),
        );
        claims.insert(
            "iat".into(),
            json!(now.min(now + spec.lifetime_seconds - 1)),
        );
        claims.insert("exp".into(), json!(now + spec.lifetime_seconds));
        claims.insert("jti".into(), json!(uuid::Uuid::new_v4().to_string()));
        if let Some(audience) = &spec.audience {
            claims.insert("aud".into(), json!(audience));
        }
        self.sign(
            &json!({"kid": self.kid, "alg": "RS256", "typ": "JWT"}),
            &Value::Object(claims),
        )
    }

    /// Signs `header.payload` (RS256) and returns the compact JWT.
    pub fn sign(&self, header: &Value, claims: &Value) -> Result<String> {
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| anyhow!("signing a token"))?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(&signature)
        ))
    }

    /// Checks a compact JWT as API Gateway's JWT authorizer does: RS256 signature by this
    /// issuer's key (`kid`), `iss`, `aud` (else `client_id`) in `audience`, `exp` in the
    /// future, `nbf` and `iat` not in the future. Returns the claims.
    pub fn verify(
        &self,
        token: &str,
        audience: &BTreeSet<String>,
    ) -> Result<Map<String, Value>, Refusal> {
        let refuse = |why: &str| why.to_string();
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(refuse("the token is not a JWT"));
        };
        let header: Value =
            decode_json(header).map_err(|_| refuse("the JWT header is not valid"))?;
        if header.get("alg").and_then(Value::as_str) != Some("RS256") {
            return Err(refuse("the JWT is not signed with RS256"));
        }
        if header.get("kid").and_then(Value::as_str) != Some(self.kid.as_str()) {
            return Err(refuse("no key of the issuer's JWKS has the token's kid"));
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| refuse("the JWT signature is not base64url"))?;
        let public = PublicKeyComponents {
            n: self.modulus.as_slice(),
            e: self.exponent.as_slice(),
        };
        let signing_input = &token[..header_payload_len(token)];
        public
            .verify(
                &signature::RSA_PKCS1_2048_8192_SHA256,
                signing_input.as_bytes(),
                &signature,
            )
            .map_err(|_| refuse("signature verification failed"))?;
        let claims: Value =
            decode_json(payload).map_err(|_| refuse("the JWT claims are not valid"))?;
        let Value::Object(claims) = claims else {
            return Err(refuse("the JWT claims are not an object"));
        };
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err(refuse("the token's issuer is not the authorizer's issuer"));
        }
        let audience_ok = match claims.get("aud") {
            Some(Value::String(aud)) => audience.contains(aud),
            Some(Value::Array(auds)) => auds
                .iter()
                .filter_map(Value::as_str)
                .any(|aud| audience.contains(aud)),
            Some(_) => false,
            None => claims
                .get("client_id")
                .and_then(Value::as_str)
                .is_some_and(|id| audience.contains(id)),
        };
        if !audience_ok {
            return Err(refuse(
                "the token's audience (aud or client_id) is not allowed",
            ));
        }
        let now = chrono::Utc::now().timestamp();
        match claims.get("exp").and_then(Value::as_i64) {
            Some(exp) if exp > now => {}
            Some(_) => return Err(refuse("the token has expired")),
            None => return Err(refuse("the token has no exp")),
        }
        for claim in ["nbf", "iat"] {
            if let Some(at) = claims.get(claim).and_then(Value::as_i64)
                && at > now
            {
                return Err(format!("the token's {claim} is in the future"));
            }
        }
        Ok(claims)
    }
}

fn header_payload_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(token.len())
}

fn decode_json(part: &str) -> Result<Value> {
    let bytes = URL_SAFE_NO_PAD.decode(part).context("base64url")?;
    serde_json::from_slice(&bytes).context("JSON")
}

/// Claims as API Gateway passes them to the function: every value a string, arrays as
/// `"[a b]"`.
pub fn claims_as_strings(claims: &Map<String, Value>) -> Map<String, Value> {
    claims
        .iter()
        .map(|(name, value)| {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Array(items) => format!(
                    "[{}]",
                    items
                        .iter()
                        .map(|item| match item {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
                other => other.to_string(),
            };
            (name.clone(), Value::String(text))
        })
        .collect()
}

/// Splits a scope claim into scopes.
pub fn scopes_of(claims: &Map<String, Value>) -> Vec<String> {
    claims
        .get("scope")
        .and_then(Value::as_str)
        .map(|s| s.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Refuses an unusable spec early (e.g. an empty username).
pub fn check_spec(spec: &TokenSpec) -> Result<()> {
    match &spec.principal {
        Principal::Person { username, .. } if username.trim().is_empty() => {
            bail!("a person's token needs a username")
        }
        Principal::Device { client_id } if client_id.trim().is_empty() => {
            bail!("a device's token needs a client id")
        }
        _ => Ok(()),
    }
}

/// The token with one character of its signature changed (for tests of the 401).
pub fn tamper(token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    let at = chars.len().saturating_sub(20);
    if let Some(c) = chars.get_mut(at) {
        *c = if *c == 'A' { 'B' } else { 'A' };
    }
    chars.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audience(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn issued_tokens_verify_and_bad_ones_do_not() {
        let issuer = LocalIssuer::generate("http://127.0.0.1:1", "people").unwrap();
        let aud = audience(&["people"]);
        let token = issuer.issue(&TokenSpec::operator("op-1")).unwrap();
        let claims = issuer.verify(&token, &aud).unwrap();
        assert_eq!(claims["username"], "op-1");
        let strings = claims_as_strings(&claims);
        assert_eq!(strings["cognito:groups"], "[operator]");
        assert_eq!(scopes_of(&claims).len(), PEOPLE_SCOPES.len());

        let expired = issuer
            .issue(&TokenSpec::operator("op-1").with_lifetime_seconds(-60))
            .unwrap();
        assert!(
            issuer
                .verify(&expired, &aud)
                .unwrap_err()
                .contains("expired")
        );
        let stranger = issuer
            .issue(&TokenSpec::operator("op-1").with_client_id("other"))
            .unwrap();
        assert!(issuer.verify(&stranger, &aud).is_err());
        let tampered = tamper(&token);
        assert!(issuer.verify(&tampered, &aud).is_err());

        let device = issuer.issue(&TokenSpec::device("kiosk-9")).unwrap();
        assert!(issuer.registered_devices().contains("kiosk-9"));
        let claims = issuer.verify(&device, &audience(&["kiosk-9"])).unwrap();
        assert_eq!(claims["sub"], "kiosk-9");
        assert!(claims.get("username").is_none());
    }
}
