//! The API's inputs, checked before a handler looks at them (issue 13), as `ingest` checks
//! readings: path ids and the ids in bodies follow ingest's id rules
//! ([`domain::reading::is_identifier`]), text fields are bounded and free of control
//! characters, a body names only the fields of its route and each at most once
//! ([`domain::strict_json`]). A refused request is a 400 naming every problem (at most
//! [`MAX_LISTED_PROBLEMS`]); nothing is read or queued for it.

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use domain::reading::{MAX_PATIENT_ID_LEN, is_identifier};
use lambda_kit::http::{self, HttpError};
use serde_json::Value;

/// The largest request body accepted, in bytes (413 above it).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// The longest `reason` of an emergency, in characters (line breaks and tabs allowed).
pub const MAX_REASON_CHARS: usize = 500;
/// The longest `reporter` of an emergency, in characters.
pub const MAX_REPORTER_CHARS: usize = 100;
/// The longest id in a path (`{id}`) or a `workerId`.
pub const MAX_ID_LEN: usize = 128;
/// The most problems one 400 names; the rest are counted.
pub const MAX_LISTED_PROBLEMS: usize = 10;

/// What a field of a body must be.
#[derive(Clone, Copy)]
enum Kind {
    /// An identifier of at most this many characters.
    Id(usize),
    /// Text of at most this many characters; whether line breaks and tabs are allowed.
    Text(usize, bool),
    Bool,
}

/// The fields each route's body may have (a route not listed takes no body check).
fn fields_of(route: &str) -> Option<&'static [(&'static str, Kind)]> {
    match route {
        "POST /emergencies" => Some(&[
            ("patientId", Kind::Id(MAX_PATIENT_ID_LEN)),
            ("reason", Kind::Text(MAX_REASON_CHARS, true)),
            ("reporter", Kind::Text(MAX_REPORTER_CHARS, false)),
            ("ambulanceRequired", Kind::Bool),
        ]),
        "POST /emergencies/{id}/close" | "POST /emergencies/{id}/ambulance" => Some(&[]),
        "POST /alerts/{id}/ack" => Some(&[("workerId", Kind::Id(MAX_ID_LEN))]),
        _ => None,
    }
}

/// Checks `request` for `route`: `Err` is the 400 (or 413) to answer. Presence of required
/// fields is the handler's concern (it names the missing ones).
pub fn request(route: &str, request: &ApiGatewayV2httpRequest) -> Result<(), HttpError> {
    let mut problems = Vec::new();
    if let Some(id) = request.path_parameters.get("id")
        && !is_identifier(id, MAX_ID_LEN)
    {
        problems.push(format!(
            "path id: must be 1 to {MAX_ID_LEN} characters of A-Z, a-z, 0-9, '.', '_', ':', '-'"
        ));
    }
    if let Some(fields) = fields_of(route) {
        let body = http::body(request)?;
        if body.len() > MAX_BODY_BYTES {
            return Err(HttpError::new(
                413,
                "PayloadTooLarge",
                format!(
                    "request body is {} bytes; the limit is {MAX_BODY_BYTES}",
                    body.len()
                ),
            ));
        }
        body_problems(&body, fields, &mut problems);
    }
    if problems.is_empty() {
        return Ok(());
    }
    let total = problems.len();
    problems.truncate(MAX_LISTED_PROBLEMS);
    let mut message = format!("invalid request: {}", problems.join("; "));
    if total > MAX_LISTED_PROBLEMS {
        message.push_str(&format!(" (and {} more)", total - MAX_LISTED_PROBLEMS));
    }
    Err(HttpError::bad_request(message))
}

/// The problems of a body (blank, `null` or an object of `fields`).
fn body_problems(body: &[u8], fields: &[(&str, Kind)], problems: &mut Vec<String>) {
    if body.trim_ascii().is_empty() {
        return;
    }
    let object = match domain::strict_json::from_slice(body) {
        Ok(Value::Object(object)) => object,
        Ok(Value::Null) => return,
        Ok(_) => return problems.push("body: must be a JSON object".into()),
        Err(e) => return problems.push(format!("body: not valid JSON: {e}")),
    };
    for (key, value) in &object {
        let Some((name, kind)) = fields.iter().find(|(name, _)| name == key) else {
            // The key is shown bounded and escaped: it is the caller's text.
            let shown: String = key.chars().take(64).collect();
            problems.push(format!("{shown:?}: unknown field"));
            continue;
        };
        if let Some(problem) = field_problem(*kind, value) {
            problems.push(format!("{name}: {problem}"));
        }
    }
}

/// What is wrong with one field's value, if anything (`null` is as absent).
fn field_problem(kind: Kind, value: &Value) -> Option<String> {
    match (kind, value) {
        (_, Value::Null) => None,
        (Kind::Bool, Value::Bool(_)) => None,
        (Kind::Bool, _) => Some("must be true or false".into()),
        (Kind::Id(max), Value::String(s)) => (!is_identifier(s, max))
            .then(|| format!("must be 1 to {max} characters of A-Z, a-z, 0-9, '.', '_', ':', '-'")),
        (Kind::Text(max, multiline), Value::String(s)) => {
            let chars = s.chars().count();
            if chars > max {
                Some(format!("is {chars} characters; at most {max}"))
            } else if s
                .chars()
                .any(|c| c.is_control() && !(multiline && matches!(c, '\n' | '\r' | '\t')))
            {
                Some("must not contain control characters".into())
            } else {
                None
            }
        }
        (_, _) => Some("must be a string".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(route: &str, id: Option<&str>, body: &str) -> Result<(), HttpError> {
        let mut req = ApiGatewayV2httpRequest::default();
        req.body = Some(body.to_string());
        if let Some(id) = id {
            req.path_parameters.insert("id".into(), id.into());
        }
        request(route, &req)
    }

    fn message(result: Result<(), HttpError>) -> String {
        match result {
            Err(e) if e.status == 400 => e.message,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn a_good_emergency_passes_and_missing_fields_are_left_to_the_handler() {
        let body = r#"{"patientId": "p-1", "reason": "fell\nbleeding", "reporter": "Asha K.",
                       "ambulanceRequired": true}"#;
        assert_eq!(check("POST /emergencies", None, body), Ok(()));
        assert_eq!(
            check("POST /emergencies", None, r#"{"patientId": "p-1"}"#),
            Ok(())
        );
        assert_eq!(check("POST /emergencies", None, ""), Ok(()));
        assert_eq!(
            check("POST /emergencies/{id}/close", Some("e-1"), "{}"),
            Ok(())
        );
        assert_eq!(
            check("GET /emergencies/{id}", Some("e-1"), "ignored"),
            Ok(())
        );
    }

    #[test]
    fn every_problem_is_named_and_long_lists_are_cut() {
        let body = format!(
            r#"{{"patientId": "p 1", "reason": "{}", "reporter": "a\tb", "extra": 1}}"#,
            "x".repeat(501)
        );
        let m = message(check("POST /emergencies", None, &body));
        assert!(m.contains("patientId: must be 1 to 64"), "{m}");
        assert!(m.contains("reason: is 501 characters; at most 500"), "{m}");
        assert!(
            m.contains("reporter: must not contain control characters"),
            "{m}"
        );
        assert!(m.contains("\"extra\": unknown field"), "{m}");
        let many: Vec<String> = (0..1000).map(|i| format!("\"k{i}\": 0")).collect();
        let m = message(check(
            "POST /emergencies",
            None,
            &format!("{{{}}}", many.join(",")),
        ));
        assert!(m.ends_with("(and 990 more)") && m.len() < 1024, "{m}");
    }

    #[test]
    fn a_key_twice_or_a_non_object_is_refused() {
        let m = message(check(
            "POST /alerts/{id}/ack",
            Some("a-1"),
            r#"{"workerId": "a", "workerId": "b"}"#,
        ));
        assert!(m.contains("duplicate key \"workerId\""), "{m}");
        let m = message(check("POST /alerts/{id}/ack", Some("a-1"), "[1]"));
        assert!(m.contains("must be a JSON object"), "{m}");
    }

    #[test]
    fn too_large_bodies_are_413() {
        let body = format!(r#"{{"reason": "{}"}}"#, "x".repeat(MAX_BODY_BYTES));
        let err = check("POST /emergencies", None, &body).unwrap_err();
        assert_eq!(err.status, 413);
    }
}
