//! Running function binaries locally behind an emulation of the Lambda Runtime API.
//!
//! Each function gets a supervisor task that owns its process and serves invocations one at
//! a time (like reserved concurrency 1). Every process incarnation gets its own Runtime API
//! server on a fresh port, so a killed process can never pick up a later invocation.
//!
//! - this module: the function host (invocation queue, journal) and what an invocation gives;
//! - `supervisor`: the process of a function, its restarts and its output;
//! - `runtime_api`: the Runtime API server of one process.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::metrics::MetricTotals;
use crate::template::REGION;

pub mod log_index;
mod runtime_api;
mod supervisor;

pub use log_index::{LogIndex, LogNote};

use supervisor::Supervisor;

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum InvokeOutcome {
    /// The function returned this JSON value (a non-JSON body is kept as a JSON string).
    Ok(Value),
    /// The function reported an error through the Runtime API.
    FunctionError {
        /// `errorType` of the error report.
        error_type: String,
        /// `errorMessage` of the error report.
        error_message: String,
    },
    /// No response before the function's Timeout; the process was killed and restarted.
    Timeout,
    /// The process exited (or could not start) during the invocation.
    Crashed(String),
}

impl InvokeOutcome {
    /// True for [`InvokeOutcome::Ok`].
    pub fn is_ok(&self) -> bool {
        matches!(self, InvokeOutcome::Ok(_))
    }
}

/// One entry of a function's invocation journal.
#[derive(Debug, Clone)]
pub struct InvocationRecord {
    /// The event the function received.
    pub payload: Value,
    /// How the invocation ended.
    pub outcome: InvokeOutcome,
    /// Time from the start of the invocation (after waiting in the function's queue) to its
    /// outcome; includes the cold start of a fresh process.
    pub duration: Duration,
    /// Who invoked: "api", "kinesis:<LogicalId>", "dynamodb:<LogicalId>", "sqs:<LogicalId>",
    /// "schedule:<EventName>", "invoke" (the Lambda Invoke API) or "direct".
    pub source: String,
    /// The request id the function was given (its log lines carry it).
    pub request_id: String,
    /// When the invocation started (after waiting in the function's queue).
    pub started_at: chrono::DateTime<chrono::Utc>,
}

/// Where a function's stdout and stderr go.
#[derive(Debug, Clone)]
pub enum LogTarget {
    /// Appended to `<dir>/<LogicalId>.log`.
    Dir(PathBuf),
    /// Forwarded line by line to our stderr, prefixed with `[LogicalId] `.
    Stderr,
}

/// Everything needed to run one function locally.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    /// Logical id in the template.
    pub logical_id: String,
    /// Physical function name.
    pub name: String,
    /// Function ARN.
    pub arn: String,
    /// The compiled binary.
    pub binary: PathBuf,
    /// `Timeout`.
    pub timeout: Duration,
    /// `MemorySize` in MB.
    pub memory_mb: u32,
    /// Complete process environment (template variables plus Lambda's own).
    pub environment: BTreeMap<String, String>,
}

/// A queued invocation.
struct Invocation {
    payload: Value,
    source: String,
    /// The X-Ray trace header to continue (an SQS batch's first `AWSTraceHeader`); None: a
    /// fresh trace.
    trace_header: Option<String>,
    reply: oneshot::Sender<InvokeOutcome>,
}

/// Handle to a locally running function.
#[derive(Debug)]
pub struct FunctionHost {
    spec: Arc<FunctionSpec>,
    queue: mpsc::UnboundedSender<Invocation>,
    journal: Arc<Mutex<Vec<InvocationRecord>>>,
    /// EMF metrics found in the function's output.
    metrics: Arc<Mutex<MetricTotals>>,
    /// Invocations queued or running.
    pending: Arc<AtomicUsize>,
    /// What the function's log lines said, by request id.
    log_index: Arc<Mutex<LogIndex>>,
    /// Bumped by [`FunctionHost::reload`]: the next invocation starts a fresh process.
    generation: Arc<AtomicU64>,
    supervisor: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for FunctionHost {
    fn drop(&mut self) {
        if let Ok(mut slot) = self.supervisor.lock()
            && let Some(task) = slot.take()
        {
            task.abort();
        }
    }
}

impl std::fmt::Debug for Invocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invocation")
            .field("source", &self.source)
            .finish()
    }
}

impl FunctionHost {
    /// Starts the function's supervisor, which starts the process right away.
    /// `activity` is bumped on every invocation (used by `Stack::wait_idle`).
    pub fn start(spec: FunctionSpec, log: LogTarget, activity: Arc<AtomicU64>) -> FunctionHost {
        let spec = Arc::new(spec);
        let (queue, queue_rx) = mpsc::unbounded_channel();
        let journal = Arc::new(Mutex::new(Vec::new()));
        let pending = Arc::new(AtomicUsize::new(0));
        let metrics = Arc::new(Mutex::new(MetricTotals::new()));
        let log_index = Arc::new(Mutex::new(LogIndex::default()));
        let generation = Arc::new(AtomicU64::new(0));
        let supervisor = Supervisor {
            spec: spec.clone(),
            log,
            metrics: metrics.clone(),
            log_index: log_index.clone(),
            journal: journal.clone(),
            pending: pending.clone(),
            activity,
            generation: generation.clone(),
            process: None,
            process_generation: 0,
        };
        let supervisor = tokio::spawn(supervisor.run(queue_rx));
        FunctionHost {
            spec,
            queue,
            journal,
            metrics,
            pending,
            log_index,
            generation,
            supervisor: Mutex::new(Some(supervisor)),
        }
    }

    /// The notes of the function's log lines for one request id (see [`LogIndex`]).
    pub fn log_notes(&self, request_id: &str) -> Vec<LogNote> {
        self.log_index
            .lock()
            .map(|index| index.notes(request_id).to_vec())
            .unwrap_or_default()
    }

    /// The binary changed (`devstack up --watch`): the next invocation runs in a fresh
    /// process started from it, after the current one finishes.
    pub fn reload(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Totals of the EMF metrics the function has printed so far.
    pub fn metrics(&self) -> MetricTotals {
        self.metrics.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// The function's specification.
    pub fn spec(&self) -> &FunctionSpec {
        &self.spec
    }

    /// Invokes the function synchronously (queued behind earlier invocations), in a fresh
    /// X-Ray trace.
    pub async fn invoke(&self, payload: Value, source: &str) -> InvokeOutcome {
        self.invoke_traced(payload, source, None).await
    }

    /// Invokes the function synchronously, continuing the trace of `trace_header` (its
    /// `Lambda-Runtime-Trace-Id`, as Lambda does for an SQS message with an
    /// `AWSTraceHeader`); None: a fresh trace.
    pub async fn invoke_traced(
        &self,
        payload: Value,
        source: &str,
        trace_header: Option<String>,
    ) -> InvokeOutcome {
        let (reply, reply_rx) = oneshot::channel();
        self.pending.fetch_add(1, Ordering::SeqCst);
        let invocation = Invocation {
            payload,
            source: source.to_string(),
            trace_header,
            reply,
        };
        if self.queue.send(invocation).is_err() {
            self.pending.fetch_sub(1, Ordering::SeqCst);
            return InvokeOutcome::Crashed("function host is shut down".to_string());
        }
        reply_rx.await.unwrap_or_else(|_| {
            InvokeOutcome::Crashed("function host stopped during the invocation".to_string())
        })
    }

    /// A copy of the invocation journal, in order.
    pub fn journal(&self) -> Vec<InvocationRecord> {
        self.journal.lock().map(|j| j.clone()).unwrap_or_default()
    }

    /// Number of invocations queued or running.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    /// Stops the supervisor, which kills the process (queued invocations end as Crashed).
    pub async fn stop(&self) {
        let task = self.supervisor.lock().ok().and_then(|mut slot| slot.take());
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }
}

/// Lambda's own environment variables for a function (template variables are added by the
/// caller). `endpoint` is the emulator URL.
pub fn lambda_environment(name: &str, memory_mb: u32, endpoint: &str) -> BTreeMap<String, String> {
    let log_stream = format!(
        "{}/[$LATEST]{}",
        chrono::Utc::now().format("%Y/%m/%d"),
        uuid::Uuid::new_v4().simple()
    );
    BTreeMap::from(
        [
            ("AWS_LAMBDA_FUNCTION_NAME", name.to_string()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory_mb.to_string()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_string()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
            ("AWS_LAMBDA_LOG_STREAM_NAME", log_stream),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_string()),
            ("AWS_REGION", REGION.to_string()),
            ("AWS_DEFAULT_REGION", REGION.to_string()),
            ("AWS_ACCESS_KEY_ID", "test".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
            ("AWS_ENDPOINT_URL", endpoint.to_string()),
            ("_HANDLER", "bootstrap".to_string()),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    )
}

/// What Lambda tells a function of its resolved `LoggingConfig` (advanced logging controls):
/// `AWS_LAMBDA_LOG_FORMAT` (`Text` or `JSON`, default `Text`) and, for the `JSON` format,
/// `AWS_LAMBDA_LOG_LEVEL` = `ApplicationLogLevel` (default `INFO`). `SystemLogLevel` only
/// filters the platform's own lines, which devstack does not write.
pub fn logging_environment(logging_config: Option<&Value>) -> BTreeMap<String, String> {
    let field = |name: &str| {
        logging_config
            .and_then(|config| config.get(name))
            .and_then(Value::as_str)
    };
    let format = field("LogFormat").unwrap_or("Text");
    let mut environment =
        BTreeMap::from([("AWS_LAMBDA_LOG_FORMAT".to_string(), format.to_string())]);
    if format == "JSON" {
        let level = field("ApplicationLogLevel").unwrap_or("INFO");
        environment.insert("AWS_LAMBDA_LOG_LEVEL".to_string(), level.to_string());
    }
    environment
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::logging_environment;

    #[test]
    fn the_logging_config_gives_the_log_format_and_level() {
        let json = json!({"LogFormat": "JSON", "ApplicationLogLevel": "DEBUG", "SystemLogLevel": "WARN", "LogGroup": "g"});
        let env = logging_environment(Some(&json));
        assert_eq!(env["AWS_LAMBDA_LOG_FORMAT"], "JSON");
        assert_eq!(env["AWS_LAMBDA_LOG_LEVEL"], "DEBUG");
        assert_eq!(env.len(), 2);
        // JSON without a level: Lambda's default, INFO.
        let env = logging_environment(Some(&json!({"LogFormat": "JSON"})));
        assert_eq!(env["AWS_LAMBDA_LOG_LEVEL"], "INFO");
        // Text (the default): no application log level.
        for config in [None, Some(json!({"LogGroup": "g"}))] {
            let env = logging_environment(config.as_ref());
            assert_eq!(env["AWS_LAMBDA_LOG_FORMAT"], "Text");
            assert!(!env.contains_key("AWS_LAMBDA_LOG_LEVEL"));
        }
    }
}
