//! Structured JSON logs for every function.
//!
//! Each log line is one JSON object with the current spans' fields: the Lambda runtime's
//! span carries the request id, and handlers open a span with the event's `correlation_id`.

use tracing_subscriber::EnvFilter;

/// Installs the JSON log subscriber; the level comes from `RUST_LOG` (default `info`).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // A second init (tests) is harmless: keep the first subscriber.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_target(false)
        .with_ansi(false)
        .try_init();
}
