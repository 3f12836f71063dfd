//! The local stack: emulator + provisioned resources + local functions + event sources
//! (Kinesis, DynamoDB stream and SQS pollers) + schedules + HTTP API + the archive's
//! deliveries (when on).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aws_config::SdkConfig;
use serde_json::Value;

use crate::archive::{self, Archive, ArchiveClients};
use crate::auth::{self, LocalIssuer, TokenSpec};
use crate::emulator::{self, Emulator};
use crate::event_sources::{self, Poller, PollerContext, SourceKind};
use crate::function_events::{FunctionEvent, parse_events};
use crate::http_api::{self, ApiConfig, HttpApiServer, HttpRoute};
use crate::lambda::{FunctionHost, InvocationRecord, InvokeOutcome, LogTarget};
use crate::metrics::MetricTotals;
use crate::provision::{self, Clients, ProvisionInput, Provisioned, Resource};
use crate::schedule::{Schedule, ScheduleRunner};
use crate::template::Template;

mod config;
mod function_spec;
mod http_settings;

pub use config::{
    DEFAULT_LOCAL_SCHEDULE_INTERVAL, PROFILE_ENV, StackConfig, parse_schedule_interval,
    profile_dir, schedule_interval_from_env,
};
// issue 16 part 6: the endpoint variables and the local hospital desk.
pub use config::{ENDPOINT_ENV, LOCAL_HOSPITAL_PHONE, endpoint_from_env};
use function_spec::{check_binaries, function_spec};
use http_settings::{api_settings, dashboard_scopes};

/// A running local stack. Dropping it kills the function processes and (if devstack started
/// it) moto; [`Stack::shutdown`] does the same in an orderly way.
#[derive(Debug)]
pub struct Stack {
    config: StackConfig,
    emulator: Emulator,
    sdk_config: SdkConfig,
    clients: Clients,
    provisioned: Provisioned,
    functions: Arc<BTreeMap<String, Arc<FunctionHost>>>,
    lambda_api: crate::lambda_api::LambdaApiServer,
    pollers: Vec<Poller>,
    schedules: Vec<ScheduleRunner>,
    http: HttpApiServer,
    activity: Arc<AtomicU64>,
    archive: Option<Archive>,
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
                        auth,
                    } => routes.push(HttpRoute {
                        method,
                        path,
                        api_id,
                        function: host.clone(),
                        auth,
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

        let archive = if config.archive.enabled {
            let deliveries =
                archive::deliveries(&template, &parameters, &config.stack_name, &provisioned)?;
            let clients = ArchiveClients {
                kinesis: clients.kinesis.clone(),
                dynamodb_streams: aws_sdk_dynamodbstreams::Client::new(&sdk_config),
                s3: clients.s3.clone(),
            };
            Some(Archive::start(&config.archive, deliveries, clients).await?)
        } else {
            None
        };

        let apis = api_settings(&template, &parameters, &config.stack_name, &provisioned)?;
        let people_client_id = provisioned
            .get("PeopleClient")
            .map(|r| r.ref_value.clone())
            .unwrap_or_else(|| format!("{}-PeopleClient", config.stack_name));
        // The dashboard's app client (template `DashboardClient`), if the template has one.
        let web = config.web_dir.clone().map(|dir| http_api::WebSite {
            dir,
            client_id: provisioned
                .get("DashboardClient")
                .map(|r| r.ref_value.clone()),
            scopes: dashboard_scopes(&template),
        });
        let http = http_api::start(
            ApiConfig {
                port: config.http_port,
                account_id: provisioned.account_id(),
                apis: &apis,
                people_client_id: &people_client_id,
                web,
            },
            routes,
        )
        .await?;
        let functions = Arc::new(functions);
        let lambda_api = crate::lambda_api::start(config.lambda_port, functions.clone()).await?;
        tracing::info!(
            endpoint = %emulator.endpoint,
            lambda_port = lambda_api.port,
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
            lambda_api,
            pollers,
            schedules,
            http,
            activity,
            archive,
        })
    }

    /// The archive's deliveries, when [`StackConfig::archive`] is on.
    pub fn archive(&self) -> Option<&Archive> {
        self.archive.as_ref()
    }

    /// Waits for the pipeline ([`Stack::wait_idle`]), then for the archive to have written
    /// everything it read (an error when the archive is off).
    pub async fn wait_archived(&self, timeout: Duration) -> Result<()> {
        let archive = self
            .archive
            .as_ref()
            .context("the archive is off (StackConfig::archive)")?;
        let started = Instant::now();
        self.wait_idle(timeout).await?;
        archive
            .wait_delivered(timeout.saturating_sub(started.elapsed()))
            .await
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

    /// The Lambda service API of the local functions, `http://127.0.0.1:<port>`: the
    /// `--endpoint-url` of `aws lambda invoke` ([`crate::lambda_api`]).
    pub fn lambda_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.lambda_api.port)
    }

    /// The hops of a correlation id so far ([`crate::trace`]).
    pub fn trace(&self, correlation_id: &str) -> Vec<crate::trace::Hop> {
        crate::trace::hops(self.functions.values(), correlation_id)
    }

    /// Every local function, by logical id.
    pub fn function_hosts(&self) -> &BTreeMap<String, Arc<FunctionHost>> {
        &self.functions
    }

    /// The dashboard page's URL (`{api_url}/`), when the stack serves it.
    pub fn dashboard_url(&self) -> Option<String> {
        self.config
            .web_dir
            .as_ref()
            .map(|_| format!("{}/", self.api_url()))
    }

    /// Mints a token of the local issuer (docs/security.md, "Local tokens (devstack)"), e.g.
    /// `stack.issue_token(&TokenSpec::operator("op-1"))`. A device token also adds the
    /// device's client id to the authorizers' audience (onboarding), unless the spec
    /// overrides `client_id`.
    pub fn issue_token(&self, spec: &TokenSpec) -> Result<String> {
        auth::check_spec(spec)?;
        self.http.issuer.issue(spec)
    }

    /// `Authorization` header value (`Bearer <token>`) for a spec.
    pub fn bearer(&self, spec: &TokenSpec) -> Result<String> {
        Ok(format!("Bearer {}", self.issue_token(spec)?))
    }

    /// The local token issuer (issuer URL, JWKS, people client id).
    pub fn token_issuer(&self) -> &LocalIssuer {
        &self.http.issuer
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

    /// How each function is run (binary, environment), by logical id (issue 15's cold-start bench).
    pub fn function_specs(&self) -> impl Iterator<Item = &crate::lambda::FunctionSpec> {
        self.functions.values().map(|f| f.spec())
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
    /// invocation queued or running, every Kinesis and DynamoDB stream shard caught up with no
    /// pending retry, and every polled SQS queue empty (visible, in flight and delayed) with no
    /// batch running.
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
        for (id, function) in self.functions.iter() {
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
                    Ok((0, 0, _)) if poller.long_timers => {}
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
        if let Some(archive) = self.archive.take() {
            archive.shutdown().await;
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
