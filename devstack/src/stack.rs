//! The local stack: emulator + provisioned resources + local functions + event sources + HTTP API.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aws_config::SdkConfig;
use serde_json::Value;

use crate::emulator::{self, Emulator};
use crate::event_sources::{self, EventSourceMapping, Poller, PollerContext, SourceKind};
use crate::http_api::{self, HttpApiServer, HttpRoute};
use crate::lambda::{FunctionHost, FunctionSpec, InvocationRecord, InvokeOutcome, LogTarget};
use crate::metrics::MetricTotals;
use crate::provision::{self, Clients, ProvisionInput, Provisioned, ResolvedFunction, Resource};
use crate::schedule::{self, Schedule, ScheduleEvent, ScheduleKind, ScheduleRunner};
use crate::template::{Template, scalar_to_string};

/// How a [`Stack`] is started.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// The SAM template (infra/template.yaml).
    pub template: PathBuf,
    /// Directory holding the function binaries (target/debug).
    pub bin_dir: PathBuf,
    /// `Some(url)`: use this running emulator; `None`: start moto server.
    pub endpoint: Option<String>,
    /// moto_server executable (used when `endpoint` is None).
    pub moto_server_bin: PathBuf,
    /// Prefix of generated physical names, e.g. "vitals-dev".
    pub stack_name: String,
    /// Overrides of template Parameters.
    pub parameter_overrides: BTreeMap<String, String>,
    /// Port of the HTTP API on 127.0.0.1 (0 = pick a free port).
    pub http_port: u16,
    /// Failed SQS messages become visible again after this delay instead of the queue's
    /// visibility timeout (rounded up to whole seconds). None = keep the queue's timeout.
    pub sqs_retry_delay: Option<Duration>,
    /// `Some(dir)`: each function's stdout+stderr is appended to `dir/<LogicalId>.log` (and
    /// moto's to `dir/moto.log`); `None`: forwarded to our stderr prefixed with `[LogicalId] `.
    pub function_log_dir: Option<PathBuf>,
    /// Extra environment variables by function logical id, set over the template's (e.g.
    /// `FAULT_INJECTION_PANIC_ON` for a test).
    pub function_environment: BTreeMap<String, BTreeMap<String, String>>,
    /// `Some(d)`: every schedule (`Schedule` / `ScheduleV2` events) fires every `d` instead
    /// of its template period (a `cron(...)` schedule needs this). `None`: the template's
    /// `rate(...)`. Set a long interval (e.g. 1 h) to fire schedules only through
    /// [`Stack::run_schedule`].
    pub schedule_interval: Option<Duration>,
}

/// Local period of every schedule when `DEVSTACK_SCHEDULE_INTERVAL` is not set.
pub const DEFAULT_LOCAL_SCHEDULE_INTERVAL: Duration = Duration::from_secs(5);

/// Reads `DEVSTACK_SCHEDULE_INTERVAL`: unset or empty = `Ok(None)`; `template` =
/// `Ok(Some(None))` (the template's periods); else an interval such as `500ms`, `2s`, `1m`.
pub fn schedule_interval_from_env() -> Result<Option<Option<Duration>>> {
    match std::env::var("DEVSTACK_SCHEDULE_INTERVAL") {
        Ok(value) if !value.trim().is_empty() => parse_schedule_interval(&value)
            .map(Some)
            .context("DEVSTACK_SCHEDULE_INTERVAL"),
        _ => Ok(None),
    }
}

/// `template` = `None` (the template's periods), else an interval such as `500ms`, `2s`, `1m`.
pub fn parse_schedule_interval(text: &str) -> Result<Option<Duration>> {
    if text.trim().eq_ignore_ascii_case("template") {
        return Ok(None);
    }
    schedule::parse_interval(text).map(Some)
}

impl StackConfig {
    /// Defaults for a checkout at `workspace_root`: template `infra/template.yaml`, binaries
    /// in `target/debug` (or `$CARGO_TARGET_DIR/debug`), moto from `.local/moto`, stack name
    /// "vitals-local", NotificationChannel=outbox, StageName=local, StepDeadlineSeconds=5,
    /// AckTimeoutSeconds=5, a free HTTP port, 500 ms
    /// SQS retry delay, function output on stderr, the endpoint from `DEVSTACK_ENDPOINT`
    /// if set, and schedules every `DEVSTACK_SCHEDULE_INTERVAL` (e.g. `2s`, `500ms`, `1m`,
    /// or `template` for the template's rates), else every 5 s. An invalid
    /// `DEVSTACK_SCHEDULE_INTERVAL` is logged and the 5 s default is used.
    pub fn for_workspace(workspace_root: &Path) -> StackConfig {
        let schedule_interval = match schedule_interval_from_env() {
            Ok(Some(interval)) => interval,
            Ok(None) => Some(DEFAULT_LOCAL_SCHEDULE_INTERVAL),
            Err(err) => {
                tracing::warn!(error = %format!("{err:#}"), default = ?DEFAULT_LOCAL_SCHEDULE_INTERVAL, "ignoring DEVSTACK_SCHEDULE_INTERVAL");
                Some(DEFAULT_LOCAL_SCHEDULE_INTERVAL)
            }
        };
        let target_dir = match std::env::var_os("CARGO_TARGET_DIR") {
            Some(dir) => {
                let dir = PathBuf::from(dir);
                if dir.is_absolute() {
                    dir
                } else {
                    std::env::current_dir()
                        .map(|cwd| cwd.join(&dir))
                        .unwrap_or(dir)
                }
            }
            None => workspace_root.join("target"),
        };
        StackConfig {
            template: workspace_root.join("infra/template.yaml"),
            bin_dir: target_dir.join("debug"),
            endpoint: std::env::var("DEVSTACK_ENDPOINT")
                .ok()
                .filter(|e| !e.trim().is_empty()),
            moto_server_bin: emulator::default_moto_server_bin(workspace_root),
            stack_name: "vitals-local".to_string(),
            parameter_overrides: BTreeMap::from([
                ("NotificationChannel".to_string(), "outbox".to_string()),
                ("StageName".to_string(), "local".to_string()),
                // Short saga step deadlines and acknowledgement timeouts, so local runs and
                // tests see them fire (and wait_idle does not wait minutes for them).
                ("StepDeadlineSeconds".to_string(), "5".to_string()),
                ("AckTimeoutSeconds".to_string(), "5".to_string()),
            ]),
            http_port: 0,
            sqs_retry_delay: Some(Duration::from_millis(500)),
            function_log_dir: None,
            function_environment: BTreeMap::new(),
            schedule_interval,
        }
    }
}

/// A running local stack. Dropping it kills the function processes and (if devstack started
/// it) moto; [`Stack::shutdown`] does the same in an orderly way.
#[derive(Debug)]
pub struct Stack {
    config: StackConfig,
    emulator: Emulator,
    sdk_config: SdkConfig,
    clients: Clients,
    provisioned: Provisioned,
    functions: BTreeMap<String, Arc<FunctionHost>>,
    pollers: Vec<Poller>,
    schedules: Vec<ScheduleRunner>,
    http: HttpApiServer,
    activity: Arc<AtomicU64>,
}

impl Stack {
    /// Starts (or attaches to) the emulator, provisions the template, spawns the functions and
    /// starts the event source pollers and the HTTP API.
    pub async fn start(config: StackConfig) -> Result<Stack> {
        let template = Template::load(&config.template)?;
        let parameters = template.parameter_values(&config.parameter_overrides)?;
        check_binaries(&template, &config.bin_dir)?;

        let emulator = match &config.endpoint {
            Some(endpoint) => Emulator::external(endpoint),
            None => {
                Emulator::start_moto(&config.moto_server_bin, config.function_log_dir.as_deref())
                    .await?
            }
        };
        let sdk_config = emulator::sdk_config(&emulator.endpoint).await;
        let clients = Clients::new(&sdk_config);

        let (provisioned, resolved_functions) = provision::provision(ProvisionInput {
            template: &template,
            parameters: &parameters,
            stack_name: &config.stack_name,
            clients: &clients,
        })
        .await?;

        let activity = Arc::new(AtomicU64::new(0));
        let log = match &config.function_log_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                LogTarget::Dir(dir.clone())
            }
            None => LogTarget::Stderr,
        };

        let mut functions = BTreeMap::new();
        let mut mappings = Vec::new();
        let mut schedule_events = Vec::new();
        let mut routes = Vec::new();
        for function in &resolved_functions {
            let mut spec = function_spec(function, &config.bin_dir, &emulator.endpoint)?;
            if let Some(extra) = config.function_environment.get(&function.logical_id) {
                spec.environment.extend(extra.clone());
            }
            let host = Arc::new(FunctionHost::start(spec, log.clone(), activity.clone()));
            let events = parse_events(function, &config.stack_name)?;
            for event in events {
                match event {
                    FunctionEvent::Mapping(mapping) => mappings.push((mapping, host.clone())),
                    FunctionEvent::Schedule(event) => schedule_events.push((event, host.clone())),
                    FunctionEvent::Route {
                        method,
                        path,
                        api_id,
                    } => routes.push(HttpRoute {
                        method,
                        path,
                        api_id,
                        function: host.clone(),
                    }),
                }
            }
            functions.insert(function.logical_id.clone(), host);
        }

        let poller_ctx = PollerContext {
            kinesis: clients.kinesis.clone(),
            sqs: clients.sqs.clone(),
            dynamodb_streams: aws_sdk_dynamodbstreams::Client::new(&sdk_config),
            account_id: provisioned.account_id().to_string(),
            activity: activity.clone(),
            sqs_retry_delay: config.sqs_retry_delay,
        };
        let mut pollers = Vec::new();
        for (mapping, host) in mappings {
            let function_id = host.spec().logical_id.clone();
            if !mapping.enabled {
                tracing::info!(function = %function_id, event = %mapping.event_name, "event source disabled (Enabled: false)");
                continue;
            }
            let source_id = provisioned
                .by_arn(&mapping.source_arn)
                .map(|r| r.logical_id.clone())
                .unwrap_or_else(|| mapping.source_arn.clone());
            let context = || format!("event {} of {function_id}", mapping.event_name);
            let poller = match mapping.kind {
                SourceKind::Kinesis | SourceKind::DynamoDb => {
                    let on_failure_url = mapping
                        .on_failure_arn
                        .as_deref()
                        .map(|arn| provisioned.queue_url_for_arn(arn))
                        .transpose()
                        .with_context(context)?;
                    event_sources::start_stream(
                        poller_ctx.clone(),
                        mapping.clone(),
                        host,
                        &source_id,
                        on_failure_url,
                    )
                    .await
                    .with_context(context)?
                }
                SourceKind::Sqs => {
                    let queue_url = provisioned
                        .queue_url_for_arn(&mapping.source_arn)
                        .with_context(context)?;
                    event_sources::start_sqs(
                        poller_ctx.clone(),
                        mapping.clone(),
                        host,
                        &source_id,
                        queue_url,
                    )
                }
            };
            pollers.push(poller);
        }

        let mut schedules = Vec::new();
        for (event, host) in schedule_events {
            let function_id = host.spec().logical_id.clone();
            let period = if event.enabled {
                Some(event.period(config.schedule_interval).with_context(|| {
                    format!("function {function_id} event {}", event.event_name)
                })?)
            } else {
                tracing::info!(function = %function_id, event = %event.event_name, "schedule disabled (Enabled: false / State: DISABLED)");
                None
            };
            let schedule = Schedule::new(event, host, &config.stack_name, provisioned.account_id());
            schedules.push(ScheduleRunner::start(Arc::new(schedule), period));
        }

        let http = http_api::start(config.http_port, routes, provisioned.account_id()).await?;
        tracing::info!(
            endpoint = %emulator.endpoint,
            api_url = %format!("http://127.0.0.1:{}", http.port),
            functions = functions.len(),
            pollers = pollers.len(),
            schedules = schedules.len(),
            "devstack is up"
        );
        Ok(Stack {
            config,
            emulator,
            sdk_config,
            clients,
            provisioned,
            functions,
            pollers,
            schedules,
            http,
            activity,
        })
    }

    /// The emulator endpoint, e.g. `http://127.0.0.1:40123`.
    pub fn endpoint_url(&self) -> &str {
        &self.emulator.endpoint
    }

    /// Base URL of the HTTP API, `http://127.0.0.1:<port>`; routes are served at the root
    /// (e.g. `POST {api_url}/readings`).
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http.port)
    }

    /// SDK configuration for the emulator (us-east-1, credentials "test"/"test").
    pub fn sdk_config(&self) -> &SdkConfig {
        &self.sdk_config
    }

    /// The configuration the stack was started with.
    pub fn config(&self) -> &StackConfig {
        &self.config
    }

    /// A provisioned resource by logical id.
    pub fn resource(&self, logical_id: &str) -> Result<&Resource> {
        self.provisioned.get(logical_id).with_context(|| {
            format!(
                "no resource {logical_id:?} in the template (known: {})",
                self.provisioned
                    .resources
                    .iter()
                    .map(|r| r.logical_id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
    }

    /// Every resource of the template, in creation order.
    pub fn resources(&self) -> impl Iterator<Item = &Resource> {
        self.provisioned.resources.iter()
    }

    fn function(&self, logical_id: &str) -> Result<&Arc<FunctionHost>> {
        self.functions.get(logical_id).with_context(|| {
            format!(
                "no function {logical_id:?} in the template (functions: {})",
                self.functions
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
    }

    /// Invokes a function synchronously through the Runtime API, exactly like the pollers do
    /// (recorded with source "direct").
    pub async fn invoke(&self, function_logical_id: &str, payload: Value) -> Result<InvokeOutcome> {
        let function = self.function(function_logical_id)?;
        Ok(function.invoke(payload, "direct").await)
    }

    /// Fires a function's schedule now (its only `Schedule` / `ScheduleV2` event, even if
    /// disabled) with the payload the schedule sends, and returns the outcome. Recorded like
    /// a tick (source `schedule:<EventName>`). If a tick of the same schedule is in flight,
    /// waits for it to end first: invocations of one schedule never overlap.
    pub async fn run_schedule(&self, function_logical_id: &str) -> Result<InvokeOutcome> {
        self.function(function_logical_id)?;
        let runners: Vec<&ScheduleRunner> = self
            .schedules
            .iter()
            .filter(|r| r.schedule.function_id() == function_logical_id)
            .collect();
        let [runner] = runners.as_slice() else {
            let events: Vec<&str> = runners
                .iter()
                .map(|r| r.schedule.event().event_name.as_str())
                .collect();
            bail!(
                "function {function_logical_id} has {} schedule events ({}); run_schedule needs exactly one (see run_schedule_event)",
                events.len(),
                events.join(", ")
            );
        };
        Ok(runner.schedule.fire().await)
    }

    /// Like [`Stack::run_schedule`], for the schedule event `event_name` of a function.
    pub async fn run_schedule_event(
        &self,
        function_logical_id: &str,
        event_name: &str,
    ) -> Result<InvokeOutcome> {
        self.function(function_logical_id)?;
        let runner = self
            .schedules
            .iter()
            .find(|r| {
                r.schedule.function_id() == function_logical_id
                    && r.schedule.event().event_name == event_name
            })
            .with_context(|| {
                format!("function {function_logical_id} has no schedule event {event_name}")
            })?;
        Ok(runner.schedule.fire().await)
    }

    /// The schedules: (function logical id, event name, period; `None` when disabled).
    pub fn schedules(&self) -> Vec<(String, String, Option<Duration>)> {
        self.schedules
            .iter()
            .map(|r| {
                (
                    r.schedule.function_id().to_string(),
                    r.schedule.event().event_name.clone(),
                    r.period,
                )
            })
            .collect()
    }

    /// Every invocation of a function so far, in order (empty for an unknown function).
    pub fn invocations(&self, function_logical_id: &str) -> Vec<InvocationRecord> {
        self.functions
            .get(function_logical_id)
            .map(|f| f.journal())
            .unwrap_or_default()
    }

    /// Totals of the CloudWatch EMF metrics a function has printed so far (empty for an
    /// unknown function).
    pub fn metrics(&self, function_logical_id: &str) -> MetricTotals {
        self.functions
            .get(function_logical_id)
            .map(|f| f.metrics())
            .unwrap_or_default()
    }

    /// Waits until nothing is in flight for two consecutive checks ~200 ms apart: no function
    /// invocation queued or running, every Kinesis shard caught up with no pending retry, and
    /// every polled SQS queue empty (visible, in flight and delayed) with no batch running.
    /// A schedule counts only while its invocation runs: the next tick is not waited for.
    pub async fn wait_idle(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut idle_at_activity: Option<u64> = None;
        loop {
            let activity = self.activity.load(Ordering::SeqCst);
            let busy = self.busy_report().await;
            if busy.is_empty() {
                if idle_at_activity == Some(activity) {
                    return Ok(());
                }
                idle_at_activity = Some(activity);
            } else {
                idle_at_activity = None;
            }
            if Instant::now() >= deadline {
                if busy.is_empty() {
                    bail!("stack did not settle within {timeout:?} (activity kept changing)");
                }
                bail!(
                    "stack not idle after {timeout:?}; still busy: {}",
                    busy.join("; ")
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// What is currently busy (empty when idle).
    async fn busy_report(&self) -> Vec<String> {
        let mut busy = Vec::new();
        for (id, function) in &self.functions {
            let pending = function.pending();
            if pending > 0 {
                busy.push(format!(
                    "function {id}: {pending} invocation(s) queued or running"
                ));
            }
        }
        for poller in &self.pollers {
            for part in poller.busy_parts() {
                busy.push(format!("poller {part} has work in flight"));
            }
            if let Some(url) = &poller.queue_url {
                match self.queue_counts(url).await {
                    Ok((0, 0, 0)) => {}
                    Ok((visible, in_flight, delayed)) => busy.push(format!(
                        "queue {url}: {visible} visible, {in_flight} in flight, {delayed} delayed"
                    )),
                    Err(err) => busy.push(format!("queue {url}: {err:#}")),
                }
            }
        }
        busy
    }

    /// (visible, not visible, delayed) message counts of a queue.
    async fn queue_counts(&self, url: &str) -> Result<(u64, u64, u64)> {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let attributes = self
            .clients
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(A::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .context("GetQueueAttributes")?
            .attributes
            .unwrap_or_default();
        let count = |name: &A| -> Result<u64> {
            attributes
                .get(name)
                .map(|v| v.parse::<u64>().with_context(|| format!("{name} = {v:?}")))
                .unwrap_or(Ok(0))
        };
        Ok((
            count(&A::ApproximateNumberOfMessages)?,
            count(&A::ApproximateNumberOfMessagesNotVisible)?,
            count(&A::ApproximateNumberOfMessagesDelayed)?,
        ))
    }

    /// Stops the pollers and the HTTP API, kills the function processes and, if devstack
    /// started it, moto.
    pub async fn shutdown(mut self) -> Result<()> {
        for mut runner in std::mem::take(&mut self.schedules) {
            runner.abort();
        }
        for poller in std::mem::take(&mut self.pollers) {
            poller.shutdown().await;
        }
        self.http.abort();
        for function in self.functions.values() {
            function.stop().await;
        }
        self.emulator.stop().await?;
        tracing::info!("devstack stopped");
        Ok(())
    }
}

/// Fails early (before starting anything) if a function binary is missing.
fn check_binaries(template: &Template, bin_dir: &Path) -> Result<()> {
    for resource in &template.resources {
        if resource.resource_type != "AWS::Serverless::Function" {
            continue;
        }
        if let Some(code_uri) = resource.properties.get("CodeUri").and_then(Value::as_str) {
            let binary = bin_dir.join(binary_name(code_uri)?);
            if !binary.is_file() {
                bail!(
                    "function binary {} not found; run cargo build --workspace",
                    binary.display()
                );
            }
        }
    }
    Ok(())
}

/// Last path component of a CodeUri (`../functions/ingest` → `ingest`).
fn binary_name(code_uri: &str) -> Result<String> {
    Path::new(code_uri.trim_end_matches('/'))
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .with_context(|| format!("CodeUri {code_uri:?} has no last path component"))
}

/// Builds the local run specification of a resolved function.
fn function_spec(
    function: &ResolvedFunction,
    bin_dir: &Path,
    endpoint: &str,
) -> Result<FunctionSpec> {
    let props = &function.properties;
    let id = &function.logical_id;
    let code_uri = props
        .get("CodeUri")
        .and_then(Value::as_str)
        .with_context(|| format!("function {id}: CodeUri must be a path string"))?;
    let binary = bin_dir.join(binary_name(code_uri)?);
    if !binary.is_file() {
        bail!(
            "function binary {} not found; run cargo build --workspace",
            binary.display()
        );
    }
    let number = |key: &str, default: u64| -> Result<u64> {
        match props.get(key) {
            None => Ok(default),
            Some(v) => scalar_to_string(v)?
                .parse()
                .with_context(|| format!("function {id}: {key} is not a positive integer")),
        }
    };
    let timeout = Duration::from_secs(number("Timeout", 3)?.max(1));
    let memory_mb = u32::try_from(number("MemorySize", 128)?)
        .with_context(|| format!("function {id}: MemorySize too large"))?;

    let mut environment = BTreeMap::new();
    if let Some(vars) = props
        .get("Environment")
        .and_then(|e| e.get("Variables"))
        .and_then(Value::as_object)
    {
        for (name, value) in vars {
            let value = scalar_to_string(value)
                .with_context(|| format!("function {id}: environment variable {name}"))?;
            environment.insert(name.clone(), value);
        }
    }
    environment.extend(crate::lambda::lambda_environment(
        &function.name,
        memory_mb,
        endpoint,
    ));
    for name in ["RUST_LOG", "RUST_BACKTRACE"] {
        if let Ok(value) = std::env::var(name) {
            environment.insert(name.to_string(), value);
        }
    }
    Ok(FunctionSpec {
        logical_id: id.clone(),
        name: function.name.clone(),
        arn: function.arn.clone(),
        binary,
        timeout,
        memory_mb,
        environment,
    })
}

/// A function `Events` entry devstack acts on.
#[derive(Debug, Clone, PartialEq)]
enum FunctionEvent {
    Mapping(EventSourceMapping),
    Schedule(ScheduleEvent),
    Route {
        method: Option<String>,
        path: String,
        api_id: String,
    },
}

/// Reads a resolved function's `Events`.
fn parse_events(function: &ResolvedFunction, stack_name: &str) -> Result<Vec<FunctionEvent>> {
    let id = &function.logical_id;
    let Some(events) = function.properties.get("Events") else {
        return Ok(Vec::new());
    };
    let events = events
        .as_object()
        .with_context(|| format!("function {id}: Events must be a mapping"))?;
    let mut out = Vec::new();
    for (name, event) in events {
        let event_type = event
            .get("Type")
            .and_then(Value::as_str)
            .with_context(|| format!("function {id} event {name} has no Type"))?;
        let empty = Value::Object(serde_json::Map::new());
        let props = event.get("Properties").unwrap_or(&empty);
        let parsed = match event_type {
            "Kinesis" => FunctionEvent::Mapping(
                EventSourceMapping::from_event(name, SourceKind::Kinesis, props)
                    .with_context(|| format!("function {id}"))?,
            ),
            "SQS" => FunctionEvent::Mapping(
                EventSourceMapping::from_event(name, SourceKind::Sqs, props)
                    .with_context(|| format!("function {id}"))?,
            ),
            "DynamoDB" => FunctionEvent::Mapping(
                EventSourceMapping::from_event(name, SourceKind::DynamoDb, props)
                    .with_context(|| format!("function {id}"))?,
            ),
            "Schedule" | "ScheduleV2" => {
                let kind = if event_type == "Schedule" {
                    ScheduleKind::Rule
                } else {
                    ScheduleKind::Scheduler
                };
                FunctionEvent::Schedule(
                    ScheduleEvent::from_event(name, kind, props)
                        .with_context(|| format!("function {id}"))?,
                )
            }
            "HttpApi" => {
                let text = |key: &str| -> Result<Option<String>> {
                    props
                        .get(key)
                        .map(scalar_to_string)
                        .transpose()
                        .with_context(|| format!("function {id} event {name} {key}"))
                };
                let path = text("Path")?.unwrap_or_else(|| "$default".to_string());
                let method = text("Method")?
                    .map(|m| m.to_ascii_uppercase())
                    .filter(|m| m != "ANY" && m != "*" && m != "X-AMAZON-APIGATEWAY-ANY-METHOD");
                let api_id = text("ApiId")?
                    .unwrap_or_else(|| provision::api_id_for(stack_name, "ServerlessHttpApi"));
                FunctionEvent::Route {
                    method,
                    path,
                    api_id,
                }
            }
            other => bail!("event type {other} of {id}.{name} is not supported by devstack"),
        };
        out.push(parsed);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::{Resolver, ResourceLookup, TemplateResource};

    fn template_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml")
    }

    /// Stand-in for provisioned resources: Ref and GetAtt give recognisable fake values.
    struct FakeResources<'a>(&'a Template);

    impl ResourceLookup for FakeResources<'_> {
        fn ref_value(&self, logical_id: &str) -> Option<String> {
            let resource = self.0.resource(logical_id)?;
            Some(match resource.resource_type.as_str() {
                "AWS::SQS::Queue" => format!("http://emulator/123456789012/{logical_id}"),
                "AWS::SNS::Topic" => format!("arn:aws:sns:us-east-1:123456789012:{logical_id}"),
                _ => format!("vitals-test-{logical_id}"),
            })
        }
        fn get_att(&self, logical_id: &str, attribute: &str) -> Result<String> {
            let resource = self.0.resource(logical_id).context("unknown")?;
            let service = match resource.resource_type.as_str() {
                "AWS::Kinesis::Stream" => "kinesis",
                "AWS::SQS::Queue" => "sqs",
                "AWS::DynamoDB::Table" => "dynamodb",
                _ => "other",
            };
            Ok(format!(
                "arn:aws:{service}:us-east-1:123456789012:{logical_id}/{attribute}"
            ))
        }
    }

    fn resolve_function(template: &Template, resource: &TemplateResource) -> ResolvedFunction {
        let parameters = template
            .parameter_values(&StackConfig::for_workspace(Path::new("/w")).parameter_overrides)
            .unwrap();
        let properties = Resolver {
            parameters: &parameters,
            conditions: &template.conditions,
            stack_name: "vitals-test",
            account_id: "123456789012",
            resources: &FakeResources(template),
        }
        .resolve_properties(resource)
        .unwrap();
        ResolvedFunction {
            logical_id: resource.logical_id.clone(),
            name: format!("vitals-test-{}", resource.logical_id),
            arn: "arn:aws:lambda:us-east-1:123456789012:function:x".to_string(),
            properties,
        }
    }

    #[test]
    fn every_function_resolves_its_environment_and_events() {
        let template = Template::load(&template_path()).unwrap();
        let functions: Vec<_> = template
            .resources
            .iter()
            .filter(|r| r.resource_type == "AWS::Serverless::Function")
            .collect();
        assert_eq!(functions.len(), 8);
        for resource in functions {
            let function = resolve_function(&template, resource);
            let vars = function.properties["Environment"]["Variables"]
                .as_object()
                .unwrap();
            // Globals merged in, parameters overridden.
            assert_eq!(vars["STAGE"], "local", "{}", resource.logical_id);
            assert_eq!(vars["RUST_LOG"], "info");
            // The emergency steps wait on the (simulated) ambulance provider; the sweep
            // visits every due patient.
            let timeout = match resource.logical_id.as_str() {
                "EmergencyStepsFunction" => 30,
                "SweepFunction" => 60,
                _ => 10,
            };
            assert_eq!(function.properties["Timeout"], timeout);
            assert_eq!(function.properties["MemorySize"], 256);
            for value in vars.values() {
                assert!(value.is_string(), "{value}");
            }
            parse_events(&function, "vitals-test").unwrap();
        }
    }

    #[test]
    fn detect_kinesis_source_resolves_to_the_stream_arn() {
        let template = Template::load(&template_path()).unwrap();
        let detect = template.resource("DetectFunction").unwrap();
        let function = resolve_function(&template, detect);
        let events = parse_events(&function, "vitals-test").unwrap();
        let [FunctionEvent::Mapping(mapping)] = events.as_slice() else {
            panic!("expected one mapping, got {events:?}");
        };
        assert_eq!(mapping.kind, SourceKind::Kinesis);
        assert_eq!(
            mapping.source_arn,
            "arn:aws:kinesis:us-east-1:123456789012:ReadingsStream/Arn"
        );
        assert_eq!(mapping.batch_size, 100);
        assert_eq!(mapping.max_retry_attempts, Some(3));
        assert!(mapping.bisect_on_error && mapping.report_batch_item_failures);
        assert_eq!(mapping.max_record_age, Some(Duration::from_secs(3600)));
        assert_eq!(
            mapping.on_failure_arn.as_deref(),
            Some("arn:aws:sqs:us-east-1:123456789012:DetectFailureQueue/Arn")
        );

        let ingest = resolve_function(&template, template.resource("IngestFunction").unwrap());
        let events = parse_events(&ingest, "vitals-test").unwrap();
        assert_eq!(
            events,
            vec![FunctionEvent::Route {
                method: Some("POST".to_string()),
                path: "/readings".to_string(),
                api_id: "vitals-test-HttpApi".to_string()
            }]
        );
        assert_eq!(
            ingest.properties["Environment"]["Variables"]["READINGS_STREAM"],
            "vitals-test-ReadingsStream"
        );
        let notify = resolve_function(&template, template.resource("NotifyFunction").unwrap());
        assert_eq!(
            notify.properties["Environment"]["Variables"]["NOTIFICATION_CHANNEL"],
            "outbox"
        );
    }

    #[test]
    fn the_sweep_runs_on_a_one_minute_schedule() {
        let template = Template::load(&template_path()).unwrap();
        let sweep = resolve_function(&template, template.resource("SweepFunction").unwrap());
        let events = parse_events(&sweep, "vitals-test").unwrap();
        let [FunctionEvent::Schedule(schedule)] = events.as_slice() else {
            panic!("expected one schedule, got {events:?}");
        };
        assert_eq!(schedule.kind, ScheduleKind::Rule);
        assert_eq!(schedule.event_name, "Sweep");
        assert!(schedule.enabled && schedule.input.is_none());
        assert_eq!(schedule.period(None).unwrap(), Duration::from_secs(60));
        assert_eq!(
            schedule.period(Some(Duration::from_secs(5))).unwrap(),
            Duration::from_secs(5)
        );
        let vars = &sweep.properties["Environment"]["Variables"];
        assert_eq!(vars["DETECT_MODE"], "sweep");
        assert_eq!(vars["AUTO_DISPATCH_MAX_AGE_SECONDS"], "900");
        assert_eq!(
            sweep.properties["CodeUri"],
            template.resource("DetectFunction").unwrap().properties["CodeUri"]
        );
    }

    #[test]
    fn schedule_events_are_read_and_bad_ones_name_the_function() {
        let function = |events: Value| ResolvedFunction {
            logical_id: "TickFunction".to_string(),
            name: "s-tick".to_string(),
            arn: "arn:aws:lambda:us-east-1:1:function:s-tick".to_string(),
            properties: serde_json::json!({ "Events": events }),
        };
        let events = parse_events(
            &function(serde_json::json!({
                "Every": {"Type": "Schedule", "Properties": {"Schedule": "rate(5 minutes)", "Enabled": false}},
                "V2": {"Type": "ScheduleV2", "Properties": {"ScheduleExpression": "rate(1 hour)", "Input": "{\"a\":1}"}},
            })),
            "s",
        )
        .unwrap();
        let schedules: Vec<&ScheduleEvent> = events
            .iter()
            .map(|e| match e {
                FunctionEvent::Schedule(s) => s,
                other => panic!("not a schedule: {other:?}"),
            })
            .collect();
        assert_eq!(schedules.len(), 2);
        let every = schedules.iter().find(|s| s.event_name == "Every").unwrap();
        assert!(!every.enabled);
        let v2 = schedules.iter().find(|s| s.event_name == "V2").unwrap();
        assert_eq!(v2.kind, ScheduleKind::Scheduler);
        assert_eq!(v2.input, Some(serde_json::json!({"a": 1})));

        let err = parse_events(
            &function(serde_json::json!({
                "Bad": {"Type": "Schedule", "Properties": {"Schedule": "rate(5 minute)"}},
            })),
            "s",
        )
        .unwrap_err();
        let err = format!("{err:#}");
        assert!(err.contains("TickFunction") && err.contains("Bad"), "{err}");
    }

    #[test]
    fn schedule_interval_values() {
        assert_eq!(parse_schedule_interval("template").unwrap(), None);
        assert_eq!(
            parse_schedule_interval("250ms").unwrap(),
            Some(Duration::from_millis(250))
        );
        assert!(parse_schedule_interval("soon").is_err());
    }

    #[test]
    fn creation_order_respects_references() {
        let template = Template::load(&template_path()).unwrap();
        let order: Vec<&str> = template
            .creation_order(|_| false)
            .unwrap()
            .iter()
            .map(|r| r.logical_id.as_str())
            .collect();
        let position = |id: &str| order.iter().position(|x| *x == id).unwrap();
        assert!(position("RouteDLQ") < position("RouteQueue"));
        assert!(position("RouteQueue") < position("AlertsToRouteSubscription"));
        assert!(position("AlertsTopic") < position("AlertsToRouteSubscription"));
        assert!(position("ReadingsStream") < position("DetectFunction"));
        assert!(position("DetectFailureQueue") < position("DetectFunction"));
    }

    #[test]
    fn outputs_sub_resolves() {
        let template = Template::load(&template_path()).unwrap();
        let parameters = template.parameter_values(&BTreeMap::new()).unwrap();
        assert_eq!(parameters["ReadingsShardCount"], "2");
        let resolver = Resolver {
            parameters: &parameters,
            conditions: &template.conditions,
            stack_name: "s",
            account_id: "1",
            resources: &FakeResources(&template),
        };
        let sub = serde_json::json!({"Fn::Sub": "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${StageName}"});
        assert_eq!(
            resolver.resolve(&sub).unwrap().unwrap(),
            "https://vitals-test-HttpApi.execute-api.us-east-1.amazonaws.com/dev"
        );
        let bad = serde_json::json!({"Fn::GetAZs": ""});
        let err = resolver.resolve(&bad).unwrap_err();
        assert!(format!("{err:#}").contains("Fn::GetAZs"));
    }
}
