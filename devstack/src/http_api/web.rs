//! The dashboard page (`web/`, docs/dashboard.md) on the HTTP API's port, as CloudFront
//! serves it deployed: `/` (index.html), its script and style sheet, a generated
//! `config.js` (API base URL = this origin, auth mode `local`), with the deployed security
//! headers (CSP etc.).
//!
//! LOCAL ONLY: `POST /local/sign-in` `{"username","role"}` signs an access token with the
//! local issuer for any demo identity (a health worker `w-..`, a supervisor, an operator),
//! as the dashboard's app client. Deployed, the page signs in with Cognito's hosted UI; this
//! route is devstack's and never deployed.

use std::path::PathBuf;

use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::auth::{GROUP_HEALTH_WORKER, GROUP_OPERATOR, GROUP_SUPERVISOR, LocalIssuer, TokenSpec};

/// The local sign-in route (devstack only).
pub const SIGN_IN_PATH: &str = "/local/sign-in";
/// Lifetime of a local sign-in token (12 h, like `./dev up`'s printed tokens).
pub const SIGN_IN_LIFETIME_SECONDS: i64 = 12 * 3600;

/// The files served, by path: (file in `web/`, content type). Nothing else is read.
const FILES: [(&str, &str, &str); 4] = [
    ("/", "index.html", "text/html; charset=utf-8"),
    ("/index.html", "index.html", "text/html; charset=utf-8"),
    ("/app.js", "app.js", "text/javascript; charset=utf-8"),
    ("/app.css", "app.css", "text/css; charset=utf-8"),
];

/// The security headers CloudFront adds (template `WebHeadersPolicy`), so the page is
/// tested locally under the same CSP.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Where the page's files are and which app client the local sign-in plays.
#[derive(Debug, Clone)]
pub struct WebSite {
    /// The `web/` folder.
    pub dir: PathBuf,
    /// The dashboard app client's local id (`!Ref DashboardClient`), the `client_id` of the
    /// local sign-in's tokens; None = the people client's.
    pub client_id: Option<String>,
    /// The scopes of the local sign-in's tokens: the dashboard client's (template), None =
    /// the people client's.
    pub scopes: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct SignIn {
    username: String,
    role: String,
}

/// The page's answer for `method path`, or None when the path is not the page's.
pub(super) fn serve(site: &WebSite, method: &Method, path: &str) -> Option<Response> {
    if method != Method::GET && method != Method::HEAD {
        return None;
    }
    if path == "/config.js" {
        let config = json!({ "apiUrl": "", "auth": "local", "pollSeconds": 3 });
        let text = format!("window.VITALS_CONFIG = {config};\n");
        return Some(file_response(
            text.into_bytes(),
            "text/javascript; charset=utf-8",
        ));
    }
    let (_, file, content_type) = FILES.iter().find(|(p, _, _)| *p == path)?;
    Some(match std::fs::read(site.dir.join(file)) {
        Ok(bytes) => file_response(bytes, content_type),
        Err(err) => {
            tracing::warn!(file = %site.dir.join(file).display(), error = %err, "dashboard file missing");
            error(StatusCode::NOT_FOUND, "dashboard file missing")
        }
    })
}

fn file_response(bytes: Vec<u8>, content_type: &str) -> Response {
    let mut response = (StatusCode::OK, bytes).into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "error": status.canonical_reason(), "message": message })),
    )
        .into_response()
}

/// `POST /local/sign-in` (local only): a token for `{"username","role"}`.
pub(super) fn sign_in(
    site: &WebSite,
    issuer: &LocalIssuer,
    method: &Method,
    body: &[u8],
) -> Response {
    if method != Method::POST {
        return error(StatusCode::METHOD_NOT_ALLOWED, "POST a username and a role");
    }
    let Ok(request) = serde_json::from_slice::<SignIn>(body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "expected {\"username\": ..., \"role\": \"health-worker|supervisor|operator\"}",
        );
    };
    let username = request.username.trim();
    let valid_name = !username.is_empty()
        && username.len() <= 64
        && username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid_name {
        return error(
            StatusCode::BAD_REQUEST,
            "username: 1 to 64 letters, digits, '-', '_' or '.'",
        );
    }
    let group = match request.role.as_str() {
        GROUP_HEALTH_WORKER | GROUP_SUPERVISOR | GROUP_OPERATOR => request.role.as_str(),
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "role: health-worker, supervisor or operator",
            );
        }
    };
    let mut spec =
        TokenSpec::person(username, &[group]).with_lifetime_seconds(SIGN_IN_LIFETIME_SECONDS);
    if let Some(client_id) = &site.client_id {
        spec = spec.with_client_id(client_id);
    }
    if let Some(scopes) = &site.scopes {
        let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
        spec = spec.with_scopes(&scopes);
    }
    match issuer.issue(&spec) {
        Ok(token) => (
            StatusCode::OK,
            axum::Json(json!({
                "accessToken": token,
                "tokenType": "Bearer",
                "expiresIn": SIGN_IN_LIFETIME_SECONDS,
                "localOnly": true,
            })),
        )
            .into_response(),
        Err(err) => error(StatusCode::INTERNAL_SERVER_ERROR, &format!("{err:#}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(dir: PathBuf) -> WebSite {
        WebSite {
            dir,
            client_id: Some("vitals-local-DashboardClient".into()),
            scopes: Some(vec!["vitals/dashboard.read".into()]),
        }
    }

    async fn json_of(response: Response) -> (StatusCode, serde_json::Value) {
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn local_sign_in_signs_the_dashboard_clients_token_and_refuses_bad_input() {
        let issuer = LocalIssuer::generate("http://127.0.0.1:1", "people").unwrap();
        let site = site(PathBuf::from("web"));
        let body = br#"{"username":"w-01","role":"health-worker"}"#;
        let (status, answer) = json_of(sign_in(&site, &issuer, &Method::POST, body)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let token = answer["accessToken"].as_str().unwrap();
        let audience = ["vitals-local-DashboardClient".to_string()].into();
        let claims = issuer.verify(token, &audience).unwrap();
        assert_eq!(claims["username"], "w-01");
        assert_eq!(claims["cognito:groups"], json!(["health-worker"]));
        assert_eq!(claims["scope"], "vitals/dashboard.read");

        for bad in [
            &br#"{"username":"w-01","role":"admin"}"#[..],
            br#"{"username":"w 01; drop","role":"operator"}"#,
            br#"{"username":"","role":"operator"}"#,
            b"not json",
        ] {
            let (status, _) = json_of(sign_in(&site, &issuer, &Method::POST, bad)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST);
        }
        let (status, _) = json_of(sign_in(&site, &issuer, &Method::GET, b"")).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    }

    #[test]
    fn only_the_pages_files_are_served_with_the_security_headers() {
        let dir = std::env::temp_dir().join(format!("devstack-web-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("index.html"), "<html>").unwrap();
        std::fs::write(dir.join("secret.txt"), "no").unwrap();
        let site = site(dir.clone());
        let page = serve(&site, &Method::GET, "/").unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(
            page.headers()[header::CONTENT_SECURITY_POLICY],
            CONTENT_SECURITY_POLICY
        );
        assert!(serve(&site, &Method::GET, "/config.js").is_some());
        for path in ["/secret.txt", "/../Cargo.toml", "/readings"] {
            assert!(serve(&site, &Method::GET, path).is_none(), "{path}");
        }
        assert!(serve(&site, &Method::POST, "/").is_none());
        let _ = std::fs::remove_dir_all(dir);
    }
}
