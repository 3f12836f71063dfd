//! Cacheable responses: every 200 of a GET carries a strong `ETag` (a hash of the body) and
//! `Cache-Control: private, max-age=N`; a request whose `If-None-Match` names the current
//! ETag gets `304 Not Modified` with no body.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::http::HeaderValue;
use lambda_kit::http::{self, json_response};
use sha2::{Digest, Sha256};

use crate::Reply;

/// The strong ETag of a body: the first 128 bits of its SHA-256, quoted.
pub fn etag(body: &str) -> String {
    let digest = Sha256::digest(body.as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// Whether an `If-None-Match` header value matches `etag` (weak comparison, as RFC 9110
/// asks for this header: `W/` prefixes are ignored; `*` matches anything).
pub fn none_match(header: &str, etag: &str) -> bool {
    header.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
    })
}

/// The response of a route's reply: JSON with `ETag` and `Cache-Control` when it is a 200,
/// or a `304` with the same headers and no body when the client has it already.
pub fn cacheable(
    request: &ApiGatewayV2httpRequest,
    reply: &Reply,
    correlation_id: &str,
) -> ApiGatewayV2httpResponse {
    let mut response = json_response(reply.status, &reply.body, correlation_id);
    if reply.status != 200 {
        return response;
    }
    let text = reply.body.to_string();
    let tag = etag(&text);
    if let Ok(value) = HeaderValue::from_str(&tag) {
        response.headers.insert("etag", value);
    }
    let control = format!("private, max-age={}", reply.max_age_seconds);
    if let Ok(value) = HeaderValue::from_str(&control) {
        response.headers.insert("cache-control", value);
    }
    if http::header(request, "if-none-match").is_some_and(|h| none_match(h, &tag)) {
        response.status_code = 304;
        response.body = None;
        response.headers.remove("content-type");
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_strong_hashes_and_if_none_match_compares_weakly() {
        let tag = etag("{\"items\":[]}");
        assert_eq!(tag.len(), 34);
        assert_eq!(tag, etag("{\"items\":[]}"));
        assert_ne!(tag, etag("{\"items\":[1]}"));
        assert!(none_match(&tag, &tag));
        assert!(none_match(&format!("\"x\", W/{tag}"), &tag));
        assert!(none_match("*", &tag));
        assert!(!none_match("\"other\"", &tag));
    }
}
