//! Structured JSON logs and per-invocation metrics for every function.
//!
//! Each log line is one JSON object with snake_case keys: `timestamp`, `level`, `message`,
//! the event's fields, the fields of every enclosing span flattened onto the top level,
//! `service` ([`service_name`]), `function_name` and `cold_start`. Every line of an
//! invocation carries the invocation span's `function_request_id` and `xray_trace_id`
//! ([`invocation_span`], Powertools' key names and values), and, inside a handler's per-event span, the
//! event's `correlation_id`. `cold_start` is true during the init phase and the first
//! invocation of the process (lambda_runtime's own lines included), false afterwards.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::time::SystemTime;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::metrics;

/// The `service` of every log line when `POWERTOOLS_SERVICE_NAME` is not set (Powertools'
/// default).
pub const UNDEFINED_SERVICE: &str = "service_undefined";

/// The log filter: Lambda's `AWS_LAMBDA_LOG_LEVEL` (set from the function's
/// `LoggingConfig.ApplicationLogLevel`: `TRACE`, `DEBUG`, `INFO`, `WARN`, `ERROR` or
/// `FATAL`), else `RUST_LOG` (comma-separated `level` or `target=level` directives, e.g.
/// `info` or `detect=debug,warn`), else `info`. A value that does not parse is ignored.
///
/// A [`Targets`] filter rather than `EnvFilter`: the same directives minus span and field
/// matching, without a regex engine in every Lambda binary.
pub fn filter() -> Targets {
    filter_from(
        std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref(),
        std::env::var("RUST_LOG").ok().as_deref(),
    )
}

fn filter_from(lambda_level: Option<&str>, rust_log: Option<&str>) -> Targets {
    if let Some(level) = lambda_level.and_then(lambda_log_level) {
        return Targets::new().with_default(level);
    }
    rust_log
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO))
}

/// One of Lambda's application log levels as a filter; `FATAL` (which `tracing` does not
/// have) keeps errors only.
fn lambda_log_level(value: &str) -> Option<LevelFilter> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.eq_ignore_ascii_case("fatal") {
        return Some(LevelFilter::ERROR);
    }
    value.parse().ok()
}

/// The service every log line names: `POWERTOOLS_SERVICE_NAME`, else [`UNDEFINED_SERVICE`].
pub fn service_name() -> String {
    std::env::var("POWERTOOLS_SERVICE_NAME")
        .ok()
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(|| UNDEFINED_SERVICE.to_string())
}

/// The span around one invocation: its lines get `function_request_id` (Lambda's request
/// id) and, when the invocation is traced, `xray_trace_id`: the trace id of its
/// `Lambda-Runtime-Trace-Id` header (`Root=1-...;Parent=...;Sampled=...`), as Powertools
/// logs it (`1-5759e988-bd862e3fe1be46a994272793`): the same in every function a trace
/// crosses, the id X-Ray's console finds the trace by.
pub fn invocation_span(request_id: &str, trace_header: Option<&str>) -> tracing::Span {
    tracing::info_span!(
        "invocation",
        function_request_id = request_id,
        xray_trace_id = trace_header.and_then(trace_root)
    )
}

/// The `Root` of an X-Ray trace header, if it has one.
pub fn trace_root(trace_header: &str) -> Option<&str> {
    trace_header
        .split(';')
        .find_map(|part| part.trim().strip_prefix("Root="))
        .filter(|root| !root.is_empty())
}

/// Invocations started by this process (see [`invocation`]).
static INVOCATIONS: AtomicU64 = AtomicU64::new(0);

/// True during the init phase and the first invocation of this process.
pub fn cold_start() -> bool {
    INVOCATIONS.load(Ordering::SeqCst) <= 1
}

/// The JSON log layer (writes to stdout, like Lambda expects); every line gets `service`,
/// `function_name` and [`cold_start`].
pub fn json_layer<S>(
    service: &str,
    function_name: &str,
) -> json_subscriber::JsonLayer<S, fn() -> std::io::Stdout>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let mut layer = json_subscriber::JsonLayer::stdout();
    layer
        .with_timer("timestamp", SystemTime)
        .with_level("level")
        .with_flattened_event()
        .with_top_level_flattened_span_list();
    layer.add_static_field("service", Value::from(service));
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
        .with(json_layer(&service_name(), &function_name()))
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
    fn the_filter_follows_the_lambda_log_level_then_rust_log() {
        use tracing::Level;
        let on = |f: &Targets, target: &str, level: Level| f.would_enable(target, &level);
        // Lambda's level (ApplicationLogLevel) wins over RUST_LOG.
        let f = filter_from(Some("ERROR"), Some("detect=debug,warn"));
        assert!(on(&f, "detect", Level::ERROR));
        assert!(!on(&f, "detect", Level::WARN));
        let f = filter_from(Some("DEBUG"), None);
        assert!(on(&f, "route", Level::DEBUG));
        assert!(!on(&f, "route", Level::TRACE));
        // FATAL: errors only.
        let f = filter_from(Some("FATAL"), Some("trace"));
        assert!(on(&f, "route", Level::ERROR));
        assert!(!on(&f, "route", Level::WARN));
        // No (valid) Lambda level: RUST_LOG's directives.
        for lambda_level in [None, Some(""), Some("nonsense")] {
            let f = filter_from(lambda_level, Some("detect=debug,warn"));
            assert!(on(&f, "detect", Level::DEBUG));
            assert!(!on(&f, "route", Level::INFO));
            assert!(on(&f, "route", Level::WARN));
        }
        // Neither: info.
        let f = filter_from(Some("nonsense"), Some("not a=filter=at all"));
        assert!(on(&f, "route", Level::INFO));
        assert!(!on(&f, "route", Level::DEBUG));
    }

    #[test]
    fn the_trace_id_is_the_headers_root() {
        let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        assert_eq!(
            trace_root(header),
            Some("1-5759e988-bd862e3fe1be46a994272793")
        );
        assert_eq!(trace_root("Parent=5;Root=1-a-b"), Some("1-a-b"));
        assert_eq!(trace_root("Parent=53995c3f42cd8ad8"), None);
        assert_eq!(trace_root("Root=;Sampled=1"), None);
        assert_eq!(trace_root(""), None);
    }

    #[tokio::test]
    async fn every_line_of_an_invocation_has_service_request_trace_function_cold_start_and_correlation()
     {
        let buffer = Capture::default();
        let layer = json_layer("vitals", "detect").with_writer(buffer.clone());
        let subscriber = tracing_subscriber::registry().with(layer);
        let _guard = tracing::subscriber::set_default(subscriber);

        // What run() does around each invocation.
        let trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let span = invocation_span("req-1", Some(trace));
        for _ in 0..2 {
            invocation("detect", async {
                tracing::info!("batch received");
                let span = tracing::info_span!("route", correlation_id = "corr-9");
                let _enter = span.enter();
                tracing::warn!(alert_id = "a-1", "alert routed");
            })
            .instrument(span.clone())
            .await;
        }
        // An untraced invocation has no xray_trace_id.
        async { tracing::info!("untraced") }
            .instrument(invocation_span("req-2", None))
            .await;

        let text = buffer.text();
        let lines = buffer.json_lines();
        assert_eq!(lines.len(), 5, "{text}");
        for line in &lines[..4] {
            assert_eq!(line["function_request_id"], "req-1", "{line}");
            assert_eq!(
                line["xray_trace_id"], "1-5759e988-bd862e3fe1be46a994272793",
                "{line}"
            );
        }
        for line in &lines {
            assert_eq!(line["service"], "vitals", "{line}");
            assert_eq!(line["function_name"], "detect", "{line}");
            assert!(line["timestamp"].is_string());
            assert!(line["level"].is_string());
            // One key casing: snake_case (the `_aws` of EMF lines aside, which are not logs).
            for key in line.as_object().unwrap().keys() {
                assert!(
                    key.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                    "{key} in {line}"
                );
            }
        }
        assert_eq!(lines[4]["function_request_id"], "req-2");
        assert!(lines[4].get("xray_trace_id").is_none(), "{}", lines[4]);
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
