//! Running function binaries locally behind an emulation of the Lambda Runtime API.
//!
//! Each function gets a supervisor task that owns its process and serves invocations one at
//! a time (like reserved concurrency 1). Every process incarnation gets its own Runtime API
//! server on a fresh port, so a killed process can never pick up a later invocation.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::template::REGION;

/// Lambda's limit for the init phase.
const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response a function may post (Lambda's synchronous limit is 6 MB).
const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024 + 1024;

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
    /// "schedule:<EventName>" or "direct".
    pub source: String,
}

/// Where a function's stdout and stderr go.
#[derive(Debug, Clone)]
pub enum LogTarget {
    /// Appended to `<dir>/<LogicalId>.log`.
    Dir(PathBuf),
    /// Forwarded line by line to our stderr, prefixed with `[LogicalId] `.
    Stderr,
}

/// Totals of one metric (and set of dimension values) that a function printed in CloudWatch
/// Embedded Metric Format.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricAggregate {
    /// CloudWatch unit, e.g. "Count" or "Milliseconds".
    pub unit: String,
    /// Number of values (a count metric has one value per invocation that recorded it).
    pub samples: u64,
    pub sum: f64,
    pub max: f64,
}

/// A function's EMF metrics so far, keyed by metric name plus its dimension values other
/// than `Function`, e.g. `AlertsRaised{Rule=spo2-low,Severity=critical}`.
pub type MetricTotals = BTreeMap<String, MetricAggregate>;

/// If `line` is an EMF document, adds its values to `totals`; returns whether it was one.
pub fn record_emf_line(totals: &Mutex<MetricTotals>, line: &str) -> bool {
    let Some(samples) = lambda_kit::metrics::parse(line) else {
        return false;
    };
    let Ok(mut totals) = totals.lock() else {
        return true;
    };
    for sample in samples {
        let extra: Vec<String> = sample
            .dimensions
            .iter()
            .filter(|(k, _)| k.as_str() != lambda_kit::metrics::FUNCTION_DIMENSION)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let key = if extra.is_empty() {
            sample.name.clone()
        } else {
            format!("{}{{{}}}", sample.name, extra.join(","))
        };
        let entry = totals.entry(key).or_insert_with(|| MetricAggregate {
            unit: sample.unit.clone(),
            max: f64::MIN,
            ..MetricAggregate::default()
        });
        for value in sample.values {
            entry.samples += 1;
            entry.sum += value;
            entry.max = entry.max.max(value);
        }
    }
    true
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
        let supervisor = Supervisor {
            spec: spec.clone(),
            log,
            metrics: metrics.clone(),
            journal: journal.clone(),
            pending: pending.clone(),
            activity,
            process: None,
        };
        let supervisor = tokio::spawn(supervisor.run(queue_rx));
        FunctionHost {
            spec,
            queue,
            journal,
            metrics,
            pending,
            supervisor: Mutex::new(Some(supervisor)),
        }
    }

    /// Totals of the EMF metrics the function has printed so far.
    pub fn metrics(&self) -> MetricTotals {
        self.metrics.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// The function's specification.
    pub fn spec(&self) -> &FunctionSpec {
        &self.spec
    }

    /// Invokes the function synchronously (queued behind earlier invocations).
    pub async fn invoke(&self, payload: Value, source: &str) -> InvokeOutcome {
        let (reply, reply_rx) = oneshot::channel();
        self.pending.fetch_add(1, Ordering::SeqCst);
        let invocation = Invocation {
            payload,
            source: source.to_string(),
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

/// State shared between one process incarnation and its Runtime API server.
struct RuntimeState {
    next: tokio::sync::Mutex<mpsc::UnboundedReceiver<Handoff>>,
    results: Mutex<HashMap<String, oneshot::Sender<InvokeOutcome>>>,
    init_error: Mutex<Option<String>>,
    timeout: Duration,
    function_arn: String,
}

/// An invocation offered to the runtime's `/next` long poll.
struct Handoff {
    request_id: String,
    payload: Value,
    /// Told the deadline when the runtime takes the event.
    delivered: oneshot::Sender<Instant>,
}

/// One running process plus its Runtime API server.
struct Process {
    child: Child,
    next_tx: mpsc::UnboundedSender<Handoff>,
    state: Arc<RuntimeState>,
    server: JoinHandle<()>,
}

impl Drop for Process {
    fn drop(&mut self) {
        self.server.abort();
    }
}

struct Supervisor {
    spec: Arc<FunctionSpec>,
    log: LogTarget,
    metrics: Arc<Mutex<MetricTotals>>,
    journal: Arc<Mutex<Vec<InvocationRecord>>>,
    pending: Arc<AtomicUsize>,
    activity: Arc<AtomicU64>,
    process: Option<Process>,
}

impl Supervisor {
    async fn run(mut self, mut queue: mpsc::UnboundedReceiver<Invocation>) {
        self.respawn().await;
        loop {
            let invocation = match self.process.as_mut() {
                Some(process) => {
                    tokio::select! {
                        invocation = queue.recv() => invocation,
                        status = process.child.wait() => {
                            let init_error = take_init_error(&process.state);
                            tracing::warn!(
                                function = %self.spec.logical_id,
                                status = %describe_exit(status),
                                init_error = init_error.as_deref().unwrap_or(""),
                                "function process exited while idle; it will be restarted on the next invocation"
                            );
                            self.process = None;
                            continue;
                        }
                    }
                }
                None => queue.recv().await,
            };
            let Some(invocation) = invocation else {
                break;
            };
            self.activity.fetch_add(1, Ordering::SeqCst);
            let started = Instant::now();
            let outcome = self.run_invocation(invocation.payload.clone()).await;
            let duration = started.elapsed();
            tracing::debug!(function = %self.spec.logical_id, source = %invocation.source, ?duration, outcome = ?outcome_kind(&outcome), "invocation finished");
            if let Ok(mut journal) = self.journal.lock() {
                journal.push(InvocationRecord {
                    payload: invocation.payload,
                    outcome: outcome.clone(),
                    duration,
                    source: invocation.source,
                });
            }
            self.activity.fetch_add(1, Ordering::SeqCst);
            self.pending.fetch_sub(1, Ordering::SeqCst);
            let _ = invocation.reply.send(outcome);
        }
        if let Some(mut process) = self.process.take() {
            let _ = process.child.kill().await;
        }
    }

    /// Kills the current process (if any) and starts a new one; failures are logged.
    async fn respawn(&mut self) {
        if let Some(mut old) = self.process.take() {
            let _ = old.child.kill().await;
        }
        match spawn_process(&self.spec, &self.log, &self.metrics).await {
            Ok(process) => self.process = Some(process),
            Err(err) => {
                tracing::error!(function = %self.spec.logical_id, error = %format!("{err:#}"), "could not start function process")
            }
        }
    }

    async fn run_invocation(&mut self, payload: Value) -> InvokeOutcome {
        if self.process.is_none() {
            self.respawn().await;
        }
        let Some(process) = self.process.as_mut() else {
            return InvokeOutcome::Crashed(format!(
                "could not start {}",
                self.spec.binary.display()
            ));
        };

        let request_id = uuid::Uuid::new_v4().to_string();
        let (delivered_tx, delivered_rx) = oneshot::channel();
        let (result_tx, result_rx) = oneshot::channel();
        if let Ok(mut results) = process.state.results.lock() {
            results.insert(request_id.clone(), result_tx);
        }
        let handoff = Handoff {
            request_id,
            payload,
            delivered: delivered_tx,
        };
        if process.next_tx.send(handoff).is_err() {
            self.process = None;
            return InvokeOutcome::Crashed("runtime API server stopped".to_string());
        }

        // Phase 1: the runtime takes the event (after its init, for a fresh process).
        let deadline = tokio::select! {
            delivered = delivered_rx => match delivered {
                Ok(deadline) => deadline,
                Err(_) => Instant::now() + self.spec.timeout,
            },
            status = process.child.wait() => {
                let outcome = crashed(status, &process.state);
                self.after_failure(&outcome).await;
                return outcome;
            }
            _ = tokio::time::sleep(INIT_TIMEOUT + self.spec.timeout) => {
                self.after_failure(&InvokeOutcome::Timeout).await;
                return InvokeOutcome::Timeout;
            }
        };

        // Phase 2: the runtime responds before the deadline.
        let outcome = tokio::select! {
            result = result_rx => match result {
                Ok(outcome) => outcome,
                Err(_) => InvokeOutcome::Crashed("runtime API server stopped".to_string()),
            },
            status = process.child.wait() => crashed(status, &process.state),
            _ = tokio::time::sleep_until(deadline.into()) => InvokeOutcome::Timeout,
        };
        if matches!(outcome, InvokeOutcome::Timeout | InvokeOutcome::Crashed(_)) {
            self.after_failure(&outcome).await;
        }
        outcome
    }

    /// After a timeout or crash: log, kill and start a fresh process.
    async fn after_failure(&mut self, outcome: &InvokeOutcome) {
        tracing::warn!(function = %self.spec.logical_id, outcome = ?outcome, "invocation failed; restarting the function process");
        self.respawn().await;
    }
}

fn outcome_kind(outcome: &InvokeOutcome) -> &'static str {
    match outcome {
        InvokeOutcome::Ok(_) => "ok",
        InvokeOutcome::FunctionError { .. } => "function error",
        InvokeOutcome::Timeout => "timeout",
        InvokeOutcome::Crashed(_) => "crashed",
    }
}

fn take_init_error(state: &RuntimeState) -> Option<String> {
    state.init_error.lock().ok().and_then(|mut e| e.take())
}

fn describe_exit(status: std::io::Result<std::process::ExitStatus>) -> String {
    match status {
        Ok(status) => status.to_string(),
        Err(err) => format!("unknown exit status ({err})"),
    }
}

fn crashed(
    status: std::io::Result<std::process::ExitStatus>,
    state: &RuntimeState,
) -> InvokeOutcome {
    let mut message = format!("process exited: {}", describe_exit(status));
    if let Some(init_error) = take_init_error(state) {
        message.push_str("; init error: ");
        message.push_str(&init_error);
    }
    InvokeOutcome::Crashed(message)
}

/// Starts the Runtime API server for a new incarnation, then the process.
async fn spawn_process(
    spec: &FunctionSpec,
    log: &LogTarget,
    metrics: &Arc<Mutex<MetricTotals>>,
) -> Result<Process> {
    let (next_tx, next_rx) = mpsc::unbounded_channel();
    let state = Arc::new(RuntimeState {
        next: tokio::sync::Mutex::new(next_rx),
        results: Mutex::new(HashMap::new()),
        init_error: Mutex::new(None),
        timeout: spec.timeout,
        function_arn: spec.arn.clone(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the Runtime API server")?;
    let address = listener
        .local_addr()
        .context("reading the Runtime API address")?;
    let router = runtime_api_router(state.clone());
    let function = spec.logical_id.clone();
    let server = tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, router).await {
            tracing::error!(%function, error = %err, "Runtime API server failed");
        }
    });

    let mut command = Command::new(&spec.binary);
    command
        .env_clear()
        .envs(&spec.environment)
        .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if let Ok(path) = std::env::var("PATH") {
        command.env("PATH", path);
    }
    // Output is read line by line: EMF lines feed the metric totals, and every line goes to
    // the log file or our stderr.
    let sink = match log {
        LogTarget::Dir(dir) => {
            let path = dir.join(format!("{}.log", spec.logical_id));
            LineSink::File(Arc::new(Mutex::new(crate::emulator::open_append(&path)?)))
        }
        LogTarget::Stderr => LineSink::Stderr(spec.logical_id.clone()),
    };
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {}", spec.binary.display()))?;
    if let Some(stdout) = child.stdout.take() {
        forward_lines(sink.clone(), metrics.clone(), stdout);
    }
    if let Some(stderr) = child.stderr.take() {
        forward_lines(sink, metrics.clone(), stderr);
    }
    tracing::debug!(function = %spec.logical_id, runtime_api = %address, pid = ?child.id(), "function process started");
    Ok(Process {
        child,
        next_tx,
        state,
        server,
    })
}

/// Where a function's output lines go.
#[derive(Clone)]
enum LineSink {
    /// Appended to this file.
    File(Arc<Mutex<std::fs::File>>),
    /// To our stderr, prefixed with `[LogicalId] `.
    Stderr(String),
}

/// Copies lines from a child's output to `sink` and adds EMF lines to `metrics`.
fn forward_lines(
    sink: LineSink,
    metrics: Arc<Mutex<MetricTotals>>,
    stream: impl tokio::io::AsyncRead + Unpin + Send + 'static,
) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            record_emf_line(&metrics, &line);
            match &sink {
                LineSink::File(file) => {
                    if let Ok(mut file) = file.lock() {
                        let _ = writeln!(file, "{line}");
                    }
                }
                LineSink::Stderr(logical_id) => eprintln!("[{logical_id}] {line}"),
            }
        }
    });
}

fn runtime_api_router(state: Arc<RuntimeState>) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
        .route(
            "/2018-06-01/runtime/invocation/{request_id}/response",
            post(invocation_response),
        )
        .route(
            "/2018-06-01/runtime/invocation/{request_id}/error",
            post(invocation_error),
        )
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .layer(DefaultBodyLimit::max(MAX_RESPONSE_BYTES))
        .with_state(state)
}

fn epoch_millis(at: SystemTime) -> u128 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
}

/// An X-Ray style trace header.
fn trace_id() -> String {
    let epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "Root=1-{epoch:08x}-{};Parent={};Sampled=0",
        &random[..24],
        &random[16..32]
    )
}

async fn next_invocation(State(state): State<Arc<RuntimeState>>) -> Response {
    let handoff = {
        let mut next = state.next.lock().await;
        next.recv().await
    };
    let Some(handoff) = handoff else {
        return (StatusCode::GONE, "function host stopped").into_response();
    };
    let deadline_epoch_ms = epoch_millis(SystemTime::now() + state.timeout);
    let _ = handoff.delivered.send(Instant::now() + state.timeout);
    let body = match serde_json::to_vec(&handoff.payload) {
        Ok(body) => body,
        Err(err) => return (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    };
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    set("lambda-runtime-aws-request-id", &handoff.request_id);
    set("lambda-runtime-deadline-ms", &deadline_epoch_ms.to_string());
    set("lambda-runtime-invoked-function-arn", &state.function_arn);
    set("lambda-runtime-trace-id", &trace_id());
    set("content-type", "application/json");
    (StatusCode::OK, headers, body).into_response()
}

fn accepted() -> Response {
    (StatusCode::ACCEPTED, axum::Json(json!({"status": "OK"}))).into_response()
}

fn complete(state: &RuntimeState, request_id: &str, outcome: InvokeOutcome) -> Response {
    let sender = state
        .results
        .lock()
        .ok()
        .and_then(|mut results| results.remove(request_id));
    match sender {
        Some(sender) => {
            let _ = sender.send(outcome);
            accepted()
        }
        None => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({
                "errorMessage": format!("unknown or already completed request id {request_id}"),
                "errorType": "InvalidRequestID"
            })),
        )
            .into_response(),
    }
}

async fn invocation_response(
    State(state): State<Arc<RuntimeState>>,
    Path(request_id): Path<String>,
    body: Bytes,
) -> Response {
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    complete(&state, &request_id, InvokeOutcome::Ok(value))
}

/// Reads `{errorType, errorMessage}` (falling back to the error-type header / raw body).
fn parse_error_report(headers: &HeaderMap, body: &[u8]) -> (String, String) {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(name))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let error_type = field("errorType")
        .or_else(|| {
            headers
                .get("lambda-runtime-function-error-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "Unhandled".to_string());
    let error_message =
        field("errorMessage").unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    (error_type, error_message)
}

async fn invocation_error(
    State(state): State<Arc<RuntimeState>>,
    Path(request_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (error_type, error_message) = parse_error_report(&headers, &body);
    complete(
        &state,
        &request_id,
        InvokeOutcome::FunctionError {
            error_type,
            error_message,
        },
    )
}

async fn init_error(
    State(state): State<Arc<RuntimeState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (error_type, error_message) = parse_error_report(&headers, &body);
    tracing::warn!(function_arn = %state.function_arn, %error_type, %error_message, "function reported an init error");
    if let Ok(mut slot) = state.init_error.lock() {
        *slot = Some(format!("{error_type}: {error_message}"));
    }
    accepted()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_lines_are_summed_per_metric_and_dimension_values() {
        let totals = Mutex::new(MetricTotals::new());
        let recorder = lambda_kit::metrics::Recorder::new("detect");
        let rule = [("Rule", "spo2-low"), ("Severity", "critical")];
        recorder.record("AlertsRaised", lambda_kit::metrics::Unit::Count, 2.0, &rule);
        recorder.record(
            "EndToEndLagMs",
            lambda_kit::metrics::Unit::Milliseconds,
            30.0,
            &[],
        );
        recorder.record(
            "EndToEndLagMs",
            lambda_kit::metrics::Unit::Milliseconds,
            90.0,
            &[],
        );
        for _ in 0..2 {
            for document in recorder.documents(1) {
                assert!(record_emf_line(&totals, &document.to_string()));
            }
        }
        assert!(!record_emf_line(
            &totals,
            r#"{"level":"INFO","message":"x"}"#
        ));

        let totals = totals.into_inner().unwrap();
        let alerts = &totals["AlertsRaised{Rule=spo2-low,Severity=critical}"];
        assert_eq!(
            (alerts.unit.as_str(), alerts.sum, alerts.samples),
            ("Count", 4.0, 2)
        );
        let lag = &totals["EndToEndLagMs"];
        assert_eq!(
            (lag.unit.as_str(), lag.samples, lag.max),
            ("Milliseconds", 4, 90.0)
        );
        assert_eq!(lag.sum, 240.0);
        assert_eq!(totals.len(), 2);
    }
}
