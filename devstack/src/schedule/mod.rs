//! EventBridge schedules (SAM `Schedule` and `ScheduleV2` events), played locally.
//!
//! On AWS, an EventBridge rule (`Schedule`) or an EventBridge Scheduler schedule
//! (`ScheduleV2`) invokes the function asynchronously every period. Locally a task per
//! schedule invokes the function through its [`FunctionHost`], like the pollers do, with the
//! same payload AWS sends. Differences, on purpose:
//!
//! - The period can be replaced for every schedule (`StackConfig::schedule_interval`), so a
//!   `rate(1 minute)` sweep runs every few seconds locally.
//! - Invocations of one schedule never overlap: a tick that comes while the previous
//!   invocation of the same schedule still runs is skipped (EventBridge would invoke again,
//!   concurrently). Each function runs one invocation at a time locally anyway, so an
//!   overlapping tick would only queue behind the slow one and pile up.
//! - A failed invocation is not retried (Lambda's async retries are not played); the next
//!   tick comes a period later.
//! - `cron(...)` expressions run only when the period is replaced (their calendar is not
//!   evaluated); `at(...)` one-time schedules are refused.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::lambda::{FunctionHost, InvokeOutcome};
use crate::template::{REGION, scalar_to_string};

/// Which AWS service plays the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleKind {
    /// SAM `Schedule`: an EventBridge rule (`source: aws.events`).
    Rule,
    /// SAM `ScheduleV2`: an EventBridge Scheduler schedule (`source: aws.scheduler`).
    Scheduler,
}

/// A schedule expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleExpression {
    /// `rate(N unit)`.
    Rate(Duration),
    /// `cron(...)`, six fields (kept as written; devstack does not evaluate the calendar).
    Cron(String),
}

/// A function's `Schedule` / `ScheduleV2` event, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleEvent {
    /// Rule or Scheduler schedule.
    pub kind: ScheduleKind,
    /// Key of the entry in `Events`.
    pub event_name: String,
    /// `Schedule` (Schedule) or `ScheduleExpression` (ScheduleV2).
    pub expression: ScheduleExpression,
    /// `Enabled` / `State`.
    pub enabled: bool,
    /// `Input`: the payload instead of the scheduled-event document.
    pub input: Option<Value>,
    /// `Name` of the rule or schedule, if the template sets one.
    pub name: Option<String>,
    /// `GroupName` (ScheduleV2).
    pub group_name: Option<String>,
}

impl ScheduleEvent {
    /// Reads a resolved `Events` entry of type `Schedule` or `ScheduleV2`.
    pub fn from_event(event_name: &str, kind: ScheduleKind, properties: &Value) -> Result<Self> {
        let get = |key: &str| -> Result<Option<String>> {
            properties
                .get(key)
                .map(scalar_to_string)
                .transpose()
                .with_context(|| format!("event {event_name} property {key}"))
        };
        let expression_key = match kind {
            ScheduleKind::Rule => "Schedule",
            ScheduleKind::Scheduler => "ScheduleExpression",
        };
        let text = get(expression_key)?
            .with_context(|| format!("event {event_name} has no {expression_key}"))?;
        let expression = parse_expression(&text)
            .with_context(|| format!("event {event_name} {expression_key}"))?;

        let state = get("State")?;
        let enabled_flag = match get("Enabled")? {
            None => None,
            Some(text) => match text.to_ascii_lowercase().as_str() {
                "true" => Some(true),
                "false" => Some(false),
                _ => bail!("event {event_name} property Enabled is not a boolean: {text:?}"),
            },
        };
        let enabled = match (kind, enabled_flag, state.as_deref()) {
            (ScheduleKind::Scheduler, Some(_), _) => {
                bail!("event {event_name}: ScheduleV2 has no Enabled property; use State")
            }
            (ScheduleKind::Rule, Some(_), Some(_)) => {
                bail!("event {event_name}: Enabled and State cannot both be set (SAM refuses it)")
            }
            (_, Some(flag), None) => flag,
            (_, None, None) => true,
            (_, None, Some("ENABLED")) => true,
            (_, None, Some("DISABLED")) => false,
            (ScheduleKind::Rule, None, Some("ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS")) => {
                true
            }
            (_, None, Some(other)) => {
                bail!("event {event_name}: State {other:?} is not ENABLED or DISABLED")
            }
        };

        let input = match properties.get("Input") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
                Ok(value) => Some(value),
                // Scheduler passes any text; a rule's Input must be JSON.
                Err(_) if kind == ScheduleKind::Scheduler => Some(Value::String(text.clone())),
                Err(err) => bail!("event {event_name}: Input is not valid JSON ({err})"),
            },
            Some(other) => Some(other.clone()),
        };

        Ok(ScheduleEvent {
            kind,
            event_name: event_name.to_string(),
            expression,
            enabled,
            input,
            name: get("Name")?,
            group_name: get("GroupName")?,
        })
    }

    /// The local period: `interval` when it is set, else the expression's rate. A cron
    /// expression needs `interval`.
    pub fn period(&self, interval: Option<Duration>) -> Result<Duration> {
        match (interval, &self.expression) {
            (Some(interval), _) => Ok(interval),
            (None, ScheduleExpression::Rate(rate)) => Ok(*rate),
            (None, ScheduleExpression::Cron(cron)) => bail!(
                "devstack does not evaluate cron schedules ({cron}); set a schedule interval \
                 to run it periodically (StackConfig::schedule_interval, \
                 DEVSTACK_SCHEDULE_INTERVAL or --schedule-interval)"
            ),
        }
    }
}

/// Parses `rate(N minute|minutes|hour|hours|day|days)` or `cron(m h dom mon dow year)`.
pub fn parse_expression(text: &str) -> Result<ScheduleExpression> {
    let text = text.trim();
    let inner = |prefix: &str| {
        text.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(')'))
            .map(str::trim)
    };
    if let Some(rate) = inner("rate(") {
        return parse_rate(rate)
            .map(ScheduleExpression::Rate)
            .with_context(|| format!("{text:?}"));
    }
    if let Some(cron) = inner("cron(") {
        let fields = cron.split_whitespace().count();
        if fields != 6 {
            bail!(
                "{text:?}: a cron expression has 6 fields (minutes hours day-of-month month day-of-week year), found {fields}"
            );
        }
        return Ok(ScheduleExpression::Cron(text.to_string()));
    }
    if text.starts_with("at(") {
        bail!("{text:?}: one-time at(...) schedules are not supported by devstack");
    }
    bail!("{text:?} is not a schedule expression (rate(...) or cron(...))")
}

/// `N unit` of a rate expression. As on AWS, the unit is singular for 1 and plural otherwise.
fn parse_rate(rate: &str) -> Result<Duration> {
    let mut parts = rate.split_whitespace();
    let (Some(value), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
        bail!("a rate is `value unit`, e.g. rate(5 minutes)");
    };
    let value: u64 = value
        .parse()
        .ok()
        .filter(|v| *v > 0)
        .with_context(|| format!("rate value {value:?} is not a positive integer"))?;
    let (seconds, singular) = match unit {
        "minute" => (60, true),
        "minutes" => (60, false),
        "hour" => (3600, true),
        "hours" => (3600, false),
        "day" => (86_400, true),
        "days" => (86_400, false),
        other => bail!("rate unit {other:?} is not minute(s), hour(s) or day(s)"),
    };
    if singular != (value == 1) {
        bail!(
            "rate unit must be singular for 1 and plural otherwise (rate(1 minute), rate(5 minutes))"
        );
    }
    Ok(Duration::from_secs(value.saturating_mul(seconds)))
}

/// Parses a local interval such as `500ms`, `2s`, `1m` or `1h` (a bare number is seconds).
pub fn parse_interval(text: &str) -> Result<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n > 0.0)
        .with_context(|| {
            format!("interval {text:?}: expected a positive number and a unit, e.g. 500ms, 2s, 1m")
        })?;
    let seconds = match unit.trim() {
        "ms" => number / 1000.0,
        "" | "s" => number,
        "m" | "min" => number * 60.0,
        "h" => number * 3600.0,
        other => bail!("interval {text:?}: unit {other:?} is not ms, s, m or h"),
    };
    let interval = Duration::try_from_secs_f64(seconds)
        .with_context(|| format!("interval {text:?} is out of range"))?;
    if interval < Duration::from_millis(1) {
        bail!("interval {text:?} is shorter than 1 ms");
    }
    Ok(interval)
}

/// ARN of the rule (`Schedule`) or Scheduler schedule (`ScheduleV2`) of a function's event,
/// named as CloudFormation would (`<stack>-<FunctionId><EventName>`, at most 64 characters)
/// unless the event sets `Name`.
pub fn schedule_arn(
    event: &ScheduleEvent,
    function_id: &str,
    stack_name: &str,
    account_id: &str,
) -> String {
    let name = event.name.clone().unwrap_or_else(|| {
        format!("{stack_name}-{function_id}{}", event.event_name)
            .chars()
            .take(64)
            .collect()
    });
    match event.kind {
        ScheduleKind::Rule => format!("arn:aws:events:{REGION}:{account_id}:rule/{name}"),
        ScheduleKind::Scheduler => format!(
            "arn:aws:scheduler:{REGION}:{account_id}:schedule/{}/{name}",
            event.group_name.as_deref().unwrap_or("default")
        ),
    }
}

/// The document EventBridge sends for a scheduled rule (EventBridge Scheduler: the same with
/// `source: aws.scheduler`).
pub fn scheduled_event(
    kind: ScheduleKind,
    account_id: &str,
    arn: &str,
    time: chrono::DateTime<chrono::Utc>,
) -> Value {
    let source = match kind {
        ScheduleKind::Rule => "aws.events",
        ScheduleKind::Scheduler => "aws.scheduler",
    };
    json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": "Scheduled Event",
        "source": source,
        "account": account_id,
        "time": time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "region": REGION,
        "resources": [arn],
        "detail": {},
    })
}

/// A schedule of one function, with what it needs to fire.
#[derive(Debug)]
pub struct Schedule {
    event: ScheduleEvent,
    function: Arc<FunctionHost>,
    /// ARN of the rule or schedule, in the payload's `resources`.
    arn: String,
    account_id: String,
    /// Held while an invocation of this schedule runs.
    running: Arc<Mutex<()>>,
}

impl Schedule {
    /// A schedule of `function`; the rule / schedule is named as CloudFormation would
    /// (`<stack>-<FunctionId><EventName>`) unless the event sets `Name`.
    pub fn new(
        event: ScheduleEvent,
        function: Arc<FunctionHost>,
        stack_name: &str,
        account_id: &str,
    ) -> Schedule {
        let arn = schedule_arn(&event, &function.spec().logical_id, stack_name, account_id);
        Schedule {
            event,
            function,
            arn,
            account_id: account_id.to_string(),
            running: Arc::new(Mutex::new(())),
        }
    }

    /// The event as declared.
    pub fn event(&self) -> &ScheduleEvent {
        &self.event
    }

    /// Logical id of the function it invokes.
    pub fn function_id(&self) -> &str {
        &self.function.spec().logical_id
    }

    /// Source of its invocations in the journal: `schedule:<EventName>`.
    pub fn source(&self) -> String {
        format!("schedule:{}", self.event.event_name)
    }

    /// What the function receives: `Input`, else the scheduled-event document of EventBridge
    /// (or of EventBridge Scheduler for `ScheduleV2`).
    pub fn payload(&self, time: chrono::DateTime<chrono::Utc>) -> Value {
        match &self.event.input {
            Some(input) => input.clone(),
            None => scheduled_event(self.event.kind, &self.account_id, &self.arn, time),
        }
    }

    /// Fires now, after the invocation of this schedule in flight (if any) has ended.
    pub async fn fire(&self) -> InvokeOutcome {
        let _running = self.running.lock().await;
        self.invoke().await
    }

    /// Fires unless an invocation of this schedule is in flight (then `None`).
    async fn tick(&self) -> Option<InvokeOutcome> {
        let _running = self.running.try_lock().ok()?;
        Some(self.invoke().await)
    }

    /// ARN of the rule or schedule.
    pub fn arn(&self) -> &str {
        &self.arn
    }

    async fn invoke(&self) -> InvokeOutcome {
        let payload = self.payload(chrono::Utc::now());
        self.function.invoke(payload, &self.source()).await
    }
}

/// A schedule and, when it is enabled, the task that fires it every period.
#[derive(Debug)]
pub struct ScheduleRunner {
    /// The schedule.
    pub schedule: Arc<Schedule>,
    /// The period it fires at; `None` when it is disabled.
    pub period: Option<Duration>,
    task: Option<JoinHandle<()>>,
}

impl ScheduleRunner {
    /// Starts firing `schedule` every `period` (first tick one period from now); a disabled
    /// schedule (`period` None) only fires through [`Schedule::fire`].
    pub fn start(schedule: Arc<Schedule>, period: Option<Duration>) -> ScheduleRunner {
        let task = period.map(|period| {
            let schedule = schedule.clone();
            tokio::spawn(async move {
                let start = tokio::time::Instant::now() + period;
                let mut ticks = tokio::time::interval_at(start, period);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    ticks.tick().await;
                    // Awaited here: the ticks that come while it runs are skipped (Skip), and
                    // so is a tick that finds Stack::run_schedule's invocation in flight.
                    match schedule.tick().await {
                        None => tracing::debug!(
                            function = %schedule.function_id(),
                            event = %schedule.event.event_name,
                            "schedule tick skipped: an invocation of it is still running"
                        ),
                        Some(outcome) if !outcome.is_ok() => tracing::info!(
                            function = %schedule.function_id(),
                            event = %schedule.event.event_name,
                            ?outcome,
                            "scheduled invocation failed (not retried; the next tick comes a period later)"
                        ),
                        Some(_) => {}
                    }
                }
            })
        });
        ScheduleRunner {
            schedule,
            period,
            task,
        }
    }

    /// Stops the ticks (an invocation in flight finishes in its function host).
    pub fn abort(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Drop for ScheduleRunner {
    fn drop(&mut self) {
        self.abort();
    }
}

#[cfg(test)]
mod tests;
