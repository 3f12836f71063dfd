//! Structured JSON logs and per-invocation metrics for every function.
//!
//! Each log line is one JSON object: `timestamp`, `level`, `message`, the event's fields, the
//! fields of every enclosing span flattened onto the top level, `function_name` and
//! `cold_start`. So every line of an invocation carries the Lambda runtime span's
//! `requestId` (and `xrayTraceId`), and, inside a handler's per-event span, the event's
//! `correlation_id`. `cold_start` is true during the init phase and the first invocation of
//! the process (lambda_runtime's own lines included), false afterwards.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::time::SystemTime;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::metrics;

/// The log filter: `RUST_LOG` (comma-separated `level` or `target=level` directives, e.g.
/// `info` or `detect=debug,warn`), else Lambda's `AWS_LAMBDA_LOG_LEVEL` (advanced logging
/// controls), else `info`. A value that does not parse is ignored.
///
/// A [`Targets`] filter rather than `EnvFilter`: the same directives minus span and field
/// matching, without a regex engine in every Lambda binary.
pub fn filter() -> Targets {
    filter_from(
        std::env::var("RUST_LOG").ok().as_deref(),
        std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref(),
    )
}

fn filter_from(rust_log: Option<&str>, lambda_level: Option<&str>) -> Targets {
    if let Some(filter) = rust_log
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| v.parse::<Targets>().ok())
    {
        return filter;
    }
    let level = lambda_level
        .and_then(|l| l.trim().parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    Targets::new().with_default(level)
}

/// Invocations started by this process (see [`invocation`]).
static INVOCATIONS: AtomicU64 = AtomicU64::new(0);

/// True during the init phase and the first invocation of this process.
pub fn cold_start() -> bool {
    INVOCATIONS.load(Ordering::SeqCst) <= 1
}

/// The JSON log layer (writes to stdout, like Lambda expects); every line gets
/// `function_name` and [`cold_start`].
pub fn json_layer<S>(function_name: &str) -> json_subscriber::JsonLayer<S, fn() -> std::io::Stdout>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let mut layer = json_subscriber::JsonLayer::stdout();
    layer
        .with_timer("timestamp", SystemTime)
        .with_level("level")
        .with_flattened_event()
        .with_top_level_flattened_span_list();
    layer.add_static_field("function_name", Value::from(function_name));
    layer.add_dynamic_field("cold_start", |_, _| Some(cold_start()));
    layer
}

/// The function's name: `AWS_LAMBDA_FUNCTION_NAME` (always set by Lambda), else the
/// executable's name.
pub fn function_name() -> String {
    std::env::var("AWS_LAMBDA_FUNCTION_NAME")
        .ok()
        .or_else(|| {
            let exe = std::env::current_exe().ok()?;
            Some(exe.file_stem()?.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

/// Installs the JSON log subscriber with [`filter`].
pub fn init() {
    // A second init (tests) is harmless: keep the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(filter())
        .with(json_layer(&function_name()))
        .try_init();
}

/// Runs one invocation of `function` (its short name, e.g. `detect`: the metrics'
/// `Function` dimension) with a fresh metrics recorder, whose EMF documents are written to
/// stdout when the handler returns.
pub async fn invocation<F: Future>(function: &str, handler: F) -> F::Output {
    INVOCATIONS.fetch_add(1, Ordering::SeqCst);
    let (output, recorder) = metrics::capture(function, handler).await;
    recorder.emit();
    output
}

#[cfg(test)]
mod tests {
    use testkit::logs::Capture;
    use tracing::Instrument;

    use super::*;

    #[test]
    fn the_filter_follows_rust_log_then_the_lambda_log_level() {
        use tracing::Level;
        let on = |f: &Targets, target: &str, level: Level| f.would_enable(target, &level);
        let f = filter_from(Some("detect=debug,warn"), Some("ERROR"));
        assert!(on(&f, "detect", Level::DEBUG));
        assert!(!on(&f, "route", Level::INFO));
        assert!(on(&f, "route", Level::WARN));
        let f = filter_from(None, Some("DEBUG"));
        assert!(on(&f, "route", Level::DEBUG));
        assert!(!on(&f, "route", Level::TRACE));
        let f = filter_from(Some("not a=filter=at all"), Some("nonsense"));
        assert!(on(&f, "route", Level::INFO));
        assert!(!on(&f, "route", Level::DEBUG));
    }

    #[tokio::test]
    async fn every_line_of_an_invocation_has_request_function_cold_start_and_correlation() {
        let buffer = Capture::default();
        let layer = json_layer("detect").with_writer(buffer.clone());
        let subscriber = tracing_subscriber::registry().with(layer);
        let _guard = tracing::subscriber::set_default(subscriber);

        // What lambda_runtime does around each invocation.
        let runtime_span = tracing::info_span!("Lambda runtime invoke", requestId = "req-1");
        for _ in 0..2 {
            invocation("detect", async {
                tracing::info!("batch received");
                let span = tracing::info_span!("route", correlation_id = "corr-9");
                let _enter = span.enter();
                tracing::warn!(alert_id = "a-1", "alert routed");
            })
            .instrument(runtime_span.clone())
            .await;
        }

        let text = buffer.text();
        let lines = buffer.json_lines();
        assert_eq!(lines.len(), 4, "{text}");
        for line in &lines {
            assert_eq!(line["requestId"], "req-1", "{line}");
            assert_eq!(line["function_name"], "detect", "{line}");
            assert!(line["timestamp"].is_string());
            assert!(line["level"].is_string());
        }
        // The invocation counter is process-wide: only the first invocation of the test binary is cold.
        assert_eq!(lines[0]["cold_start"], lines[1]["cold_start"]);
        assert_eq!(lines[2]["cold_start"], false);
        assert_eq!(lines[3]["cold_start"], false);
        assert_eq!(lines[1]["correlation_id"], "corr-9");
        assert_eq!(lines[1]["alert_id"], "a-1");
        assert_eq!(lines[1]["message"], "alert routed");
        assert_eq!(lines[1]["level"], "WARN");
    }
}
