//! Response validation against the API's OpenAPI 3.1 document (`infra/openapi.yaml`):
//! every response the e2e helpers receive ([`crate::api_request`], [`crate::post_raw_as`])
//! is checked here, so a route whose answers drift from the document fails its tests.
//!
//! The response is found by method, the path's template (`/alerts/a-1` ->
//! `/alerts/{id}`) and the status (else the operation's `default`). A response with JSON
//! content is validated with the `jsonschema` crate (draft 2020-12, OpenAPI 3.1's dialect;
//! `$ref`s resolve within the document); one without content (a `304`) must have no body.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Value, json};

use crate::workspace_root;

/// The document, as JSON.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let path = workspace_root().join("infra/openapi.yaml");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("infra/openapi.yaml: {e}"))
    })
}

/// The documented path template `path` (query string ignored) matches, the most specific
/// one (fewest parameters) when several do.
pub fn path_template(path: &str) -> Option<String> {
    let path = path.split('?').next().unwrap_or_default();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    document()["paths"]
        .as_object()?
        .keys()
        .filter_map(|template| {
            let segments: Vec<&str> = template.trim_start_matches('/').split('/').collect();
            if segments.len() != parts.len() {
                return None;
            }
            let mut params = 0;
            for (segment, part) in segments.iter().zip(&parts) {
                if segment.starts_with('{') && segment.ends_with('}') {
                    if part.is_empty() {
                        return None;
                    }
                    params += 1;
                } else if segment != part {
                    return None;
                }
            }
            Some((params, template.clone()))
        })
        .min()
        .map(|(_, template)| template)
}

/// The response object for `status` (or `default`), with a `$ref` to
/// `#/components/responses/X` followed.
fn response_object(template: &str, method: &str, status: u16) -> Result<&'static Value, String> {
    let operation = &document()["paths"][template][method.to_ascii_lowercase()];
    if operation.is_null() {
        return Err(format!("{method} {template} is not in infra/openapi.yaml"));
    }
    let responses = &operation["responses"];
    let response = match &responses[status.to_string()] {
        Value::Null => &responses["default"],
        found => found,
    };
    if response.is_null() {
        return Err(format!(
            "{method} {template}: status {status} is not documented"
        ));
    }
    match response["$ref"].as_str() {
        Some(reference) => {
            let name = reference.trim_start_matches("#/components/responses/");
            let target = &document()["components"]["responses"][name];
            if target.is_null() {
                return Err(format!("dangling reference {reference}"));
            }
            Ok(target)
        }
        None => Ok(response),
    }
}

/// A compiled validator of `schema` (cached by its text), whose `$ref`s resolve against the
/// document's components.
fn validator(schema: &Value) -> Result<Arc<jsonschema::Validator>, String> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<jsonschema::Validator>>>> = OnceLock::new();
    let key = schema.to_string();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(found) = cache.lock().map_err(|e| e.to_string())?.get(&key) {
        return Ok(found.clone());
    }
    let mut root = json!({"components": document()["components"]});
    if let (Value::Object(fields), Value::Object(schema)) = (&mut root, schema) {
        fields.extend(schema.clone());
    }
    let compiled = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&root)
        .map_err(|e| format!("the schema does not compile: {e}"))?;
    let compiled = Arc::new(compiled);
    cache
        .lock()
        .map_err(|e| e.to_string())?
        .insert(key, compiled.clone());
    Ok(compiled)
}

/// Checks a response (`body` as the helpers parse it: JSON, or the text as a string)
/// against the document: `Err` says what does not match.
pub fn validate_response(
    method: &str,
    path: &str,
    status: u16,
    body: &Value,
) -> Result<(), String> {
    let template = path_template(path)
        .ok_or_else(|| format!("{method} {path}: no path of infra/openapi.yaml matches"))?;
    let response = response_object(&template, method, status)?;
    let Some(schema) = response.pointer("/content/application~1json/schema") else {
        let empty = matches!(body, Value::Null) || body.as_str().is_some_and(str::is_empty);
        return if empty {
            Ok(())
        } else {
            Err(format!(
                "{method} {template} {status}: documented without a body, got {body}"
            ))
        };
    };
    let compiled = validator(schema)?;
    let problems: Vec<String> = compiled
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{method} {template} {status}: the body does not match infra/openapi.yaml: {}\nbody: {body}",
            problems.join("; ")
        ))
    }
}

/// [`validate_response`], failing the test on a mismatch.
pub fn assert_documented(method: &str, path: &str, status: u16, body: &Value) {
    if let Err(problem) = validate_response(method, path, status, body) {
        panic!("{problem}");
    }
}
