//! The supervisor of one function: starts its process (with a fresh Runtime API server),
//! hands it invocations one at a time, enforces the timeout, restarts it after a crash or
//! timeout, and forwards its output (adding EMF lines to the metric totals).

use std::collections::HashMap;
use std::io::Write;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::runtime_api::{
    Handoff, RuntimeState, continued_trace_header, new_trace_header, runtime_api_router,
    take_init_error,
};
use super::{FunctionSpec, Invocation, InvocationRecord, InvokeOutcome, LogIndex, LogTarget};
use crate::metrics::{MetricTotals, record_emf_line};

/// Lambda's limit for the init phase.
const INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// One running process plus its Runtime API server.
pub(super) struct Process {
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

pub(super) struct Supervisor {
    pub(super) spec: Arc<FunctionSpec>,
    pub(super) log: LogTarget,
    pub(super) metrics: Arc<Mutex<MetricTotals>>,
    pub(super) log_index: Arc<Mutex<LogIndex>>,
    pub(super) journal: Arc<Mutex<Vec<InvocationRecord>>>,
    pub(super) pending: Arc<AtomicUsize>,
    pub(super) activity: Arc<AtomicU64>,
    /// The host's reload counter, and the value it had when the process started.
    pub(super) generation: Arc<AtomicU64>,
    pub(super) process: Option<Process>,
    pub(super) process_generation: u64,
}

impl Supervisor {
    pub(super) async fn run(mut self, mut queue: mpsc::UnboundedReceiver<Invocation>) {
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
            if self.generation.load(Ordering::SeqCst) != self.process_generation {
                tracing::info!(function = %self.spec.logical_id, "binary changed; starting a fresh process");
                self.respawn().await;
            }
            let started = Instant::now();
            let started_at = chrono::Utc::now();
            let request_id = uuid::Uuid::new_v4().to_string();
            let trace_header = match &invocation.trace_header {
                Some(upstream) => continued_trace_header(upstream),
                None => new_trace_header(),
            };
            let outcome = self
                .run_invocation(invocation.payload.clone(), request_id.clone(), trace_header)
                .await;
            let duration = started.elapsed();
            tracing::debug!(function = %self.spec.logical_id, source = %invocation.source, ?duration, outcome = ?outcome_kind(&outcome), "invocation finished");
            if let Ok(mut journal) = self.journal.lock() {
                journal.push(InvocationRecord {
                    payload: invocation.payload,
                    outcome: outcome.clone(),
                    duration,
                    source: invocation.source,
                    request_id,
                    started_at,
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
        self.process_generation = self.generation.load(Ordering::SeqCst);
        match spawn_process(&self.spec, &self.log, &self.metrics, &self.log_index).await {
            Ok(process) => self.process = Some(process),
            Err(err) => {
                tracing::error!(function = %self.spec.logical_id, error = %format!("{err:#}"), "could not start function process")
            }
        }
    }

    async fn run_invocation(
        &mut self,
        payload: Value,
        request_id: String,
        trace_header: String,
    ) -> InvokeOutcome {
        if self.process.is_none() {
            self.respawn().await;
        }
        let Some(process) = self.process.as_mut() else {
            return InvokeOutcome::Crashed(format!(
                "could not start {}",
                self.spec.binary.display()
            ));
        };

        let (delivered_tx, delivered_rx) = oneshot::channel();
        let (result_tx, result_rx) = oneshot::channel();
        if let Ok(mut results) = process.state.results.lock() {
            results.insert(request_id.clone(), result_tx);
        }
        let handoff = Handoff {
            request_id,
            payload,
            trace_header,
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
    log_index: &Arc<Mutex<LogIndex>>,
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
        forward_lines(sink.clone(), metrics.clone(), log_index.clone(), stdout);
    }
    if let Some(stderr) = child.stderr.take() {
        forward_lines(sink, metrics.clone(), log_index.clone(), stderr);
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

/// Copies lines from a child's output to `sink`, adds EMF lines to `metrics` and notes
/// correlated lines in `log_index`.
fn forward_lines(
    sink: LineSink,
    metrics: Arc<Mutex<MetricTotals>>,
    log_index: Arc<Mutex<LogIndex>>,
    stream: impl tokio::io::AsyncRead + Unpin + Send + 'static,
) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            record_emf_line(&metrics, &line);
            if let Ok(mut index) = log_index.lock() {
                index.record(&line);
            }
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
