//! Fuzzing ingest's parser through the handler (issue 13): whatever the body, the handler
//! does not panic; a rejection is a 4xx with an error code and a non-empty message, a 400
//! lists at most `MAX_LISTED_ERRORS` errors, each with a reason, and nothing is written; an
//! acceptance writes exactly the readings it counts. `FUZZ_SECONDS` sets the time
//! (testkit::fuzz); the seeds are in `fuzz-corpus/`. `scripts/fuzz.sh` runs it longer.

use std::path::Path;

use aws_lambda_events::encodings::Body;
use chrono::{DateTime, Utc};
use serde_json::Value;
use testkit::MemorySink;

fn check(runtime: &tokio::runtime::Runtime, body: &[u8]) -> Result<(), String> {
    let now: DateTime<Utc> = "2026-11-24T10:00:00Z".parse().map_err(|e| format!("{e}"))?;
    let mut request = testkit::http::operator_post();
    // API Gateway hands a body that is not UTF-8 over base64-encoded.
    match std::str::from_utf8(body) {
        Ok(text) => request.body = Some(text.to_string()),
        Err(_) => {
            use base64::Engine;
            request.body = Some(base64::engine::general_purpose::STANDARD.encode(body));
            request.is_base64_encoded = true;
        }
    }
    let sink = MemorySink::default();
    let response = runtime.block_on(ingest::handle(
        &sink,
        &testkit::MemoryDirectory::default(),
        &request,
        now,
    ));
    let text = match &response.body {
        Some(Body::Text(t)) => t.clone(),
        other => return Err(format!("body {other:?}")),
    };
    let json: Value = serde_json::from_str(&text).map_err(|e| format!("response not JSON: {e}"))?;
    let written = sink.records.lock().map_err(|e| e.to_string())?.len();
    match response.status_code {
        202 => {
            if json["accepted"].as_u64() != Some(written as u64) || written == 0 {
                return Err(format!("202 with {written} written: {json}"));
            }
            // What is accepted is valid JSON without a key twice.
            domain::strict_json::from_slice(body).map_err(|e| format!("accepted {e}"))?;
        }
        400 | 413 => {
            if written != 0 {
                return Err(format!(
                    "{written} records written for a {}",
                    response.status_code
                ));
            }
            let message = json["message"].as_str().unwrap_or_default();
            if message.is_empty() || json["error"].as_str().unwrap_or_default().is_empty() {
                return Err(format!("rejection without a reason: {json}"));
            }
            if text.len() > 16 * 1024 {
                return Err(format!("a {} byte rejection", text.len()));
            }
            if let Some(errors) = json.get("errors") {
                let errors = errors.as_array().ok_or("errors is not a list")?;
                if errors.is_empty() || errors.len() > ingest::MAX_LISTED_ERRORS {
                    return Err(format!("{} errors listed", errors.len()));
                }
                if errors.iter().any(|e| {
                    e["message"].as_str().unwrap_or_default().is_empty() || !e["field"].is_string()
                }) {
                    return Err(format!("an error without a reason: {json}"));
                }
            }
        }
        status => return Err(format!("status {status}: {json}")),
    }
    Ok(())
}

#[test]
fn fuzz_ingest_parser() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz-corpus");
    let report = testkit::fuzz::run("ingest", &corpus, |body| check(&runtime, body));
    assert_eq!(report.crashes, 0, "{:?}", report.crash);
}
