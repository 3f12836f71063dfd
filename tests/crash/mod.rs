//! Crash-point tests: run a scenario on a fresh stack whose function aborts at a named crash
//! point (`lambda_kit::fault::crash_point`), let devstack restart it and the event source
//! redeliver, and check that the final state is the crash-free run's.
//!
//! # Adding a crash point test
//!
//! 1. Put `lambda_kit::fault::crash_point("<function>.<after_what>")` in the function's
//!    code, right after the side effect it follows.
//! 2. In `tests/crash_points.rs`, add a test named `crash_` + the point with `.` replaced
//!    by `_`, which calls [`crash_test`] with a scenario that reaches the point, the
//!    function's logical id and the point:
//!
//!    ```ignore
//!    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
//!    async fn crash_route_after_append() {
//!        crash_test(&ALERTS, "RouteFunction", "route.after_append").await;
//!    }
//!    ```
//!
//!    `every_crash_point_has_a_test` (in the same file) fails until both exist: it reads
//!    every `crash_point("...")` of `functions/*/src` and the point of every call of
//!    `crash_test` (or `crash_test_expecting`, for a point that cannot reach the crash-free
//!    outcome exactly, with the allowed difference as an [`Expect`]) in
//!    `tests/crash_points.rs`, and checks the test function's name.
//! 3. A new scenario is a `static` [`Scenario`] (`Scenario::new(name, drive)`): `drive`
//!    seeds the stack and sends the inputs, retrying HTTP requests as a client would
//!    ([`post_until_accepted`]). Its ids must be deterministic (fixed timestamps, fixed
//!    correlation ids, fixed `Idempotency-Key`s), so that two runs write the same event ids.
//!    The crash-free baseline is run once per scenario per test binary.
//!
//! What is compared ([`Outcome`]): the events table's (stream, version, eventId, eventType),
//! the outbox rows (timestamps and attempt counts aside), the SMS texts moto received
//! (as a multiset: a duplicate SMS is a difference), the dashboard views (timestamps aside)
//! the recent-vitals blocks (patient, hour#digest, count) and the depth of every
//! dead-letter queue. On top, every crash run must leave every
//! dead-letter queue empty, one outbox row per (alert, recipient, kind) and no duplicate SMS.

// Each test binary that includes this module uses only part of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use devstack::{Stack, inspect};
use futures::future::BoxFuture;
use serde_json::Value;
use tokio::sync::OnceCell;

use e2e::{DRAIN, sms_messages, start_stack_configured};

/// Template parameters of every scenario run: real SMS (SNS, recorded by moto), so a
/// duplicate text is visible; and an acknowledgement deadline (300 s by default, 5 s in
/// other local tests) longer than crash recovery takes here (a function's 10 s timeout, then
/// a redelivery or a sweep). With a shorter one, escalation races the recovery: a crash that
/// delays an alert's routing or resolution past the deadline changes what escalation
/// decides, and the outcome is not the crash-free run's for a reason no crash point owns.
/// Step deadlines beyond a crashed step's redelivery (devstack: after the steps function's
/// 10 s timeout), as on AWS (300 s, beyond the steps queue's 60 s visibility timeout), so a
/// crashed step is retried rather than compensated.
///
/// Detection state per shard (the default layout) with its snapshot written at most
/// [`FLUSH_SECONDS`] after a change (60 s by default), so that a scenario whose requests are
/// [`SNAPSHOT_PAUSE`] apart makes detect write snapshots (buckets, header, closed hours).
pub const PARAMETERS: &[(&str, &str)] = &[
    ("NotificationChannel", "sms"),
    ("AckTimeoutSeconds", "20"),
    ("StepDeadlineSeconds", "20"),
    ("DetectFlushSeconds", "2"),
];

/// `DetectFlushSeconds` of [`PARAMETERS`].
pub const FLUSH_SECONDS: u64 = 2;

/// A pause between two requests of a scenario long enough for detect's next batch to write
/// the shard's snapshot (more than [`FLUSH_SECONDS`] since the last one), and short enough
/// for it to come before the sweep's visit the header promises (twice the interval).
pub const SNAPSHOT_PAUSE: Duration = Duration::from_millis(2_600);

/// A fixed instant, the same for every run of this test binary (the current minute):
/// readings stamped relative to it get the same ids in the baseline and the crash runs.
pub static BASE_TIME: LazyLock<DateTime<Utc>> = LazyLock::new(|| {
    let now = Utc::now().timestamp();
    DateTime::from_timestamp(now - now % 60, 0).unwrap_or_else(Utc::now)
});

/// A reading as a device sends it, `minutes_before` minutes before [`BASE_TIME`].
pub fn fixed_reading(patient_id: &str, vital: &str, value: f64, minutes_before: i64) -> Value {
    let mut reading = e2e::reading(patient_id, vital, value, 0);
    let at = *BASE_TIME - chrono::Duration::minutes(minutes_before);
    reading["timestamp"] = Value::String(at.to_rfc3339_opts(SecondsFormat::Secs, true));
    reading
}

/// A scenario: what a run seeds and sends. Its crash-free outcome is computed once.
pub struct Scenario {
    pub name: &'static str,
    drive: for<'a> fn(&'a Stack) -> BoxFuture<'a, ()>,
    baseline: OnceCell<Outcome>,
}

impl Scenario {
    pub const fn new(
        name: &'static str,
        drive: for<'a> fn(&'a Stack) -> BoxFuture<'a, ()>,
    ) -> Self {
        Scenario {
            name,
            drive,
            baseline: OnceCell::const_new(),
        }
    }

    /// The crash-free run's outcome (run on first use, then shared by the binary's tests).
    pub async fn baseline(&self) -> &Outcome {
        self.baseline
            .get_or_init(|| async {
                let outcome = run(self, &format!("crash_baseline_{}", self.name), None).await;
                outcome.assert_clean("the crash-free run");
                outcome
            })
            .await
    }
}

/// Where a run crashes: the function (logical id), the point, the marker folder.
pub struct Fault<'a> {
    pub function: &'a str,
    pub point: &'a str,
    pub once_dir: &'a Path,
}

/// What a run leaves behind, timestamps aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// (stream, version, eventId, eventType) of every event in the events table.
    pub events: BTreeSet<(String, u64, String, String)>,
    /// Outbox rows by notification id, without timestamps, attempt counts and provider ids.
    pub outbox: BTreeMap<String, Value>,
    /// (phone, text) of every SMS moto received, sorted, duplicates kept.
    pub sms: Vec<(String, String)>,
    /// Dashboard views by view id, timestamps replaced by `<time>`.
    pub views: BTreeMap<String, Value>,
    /// Depth of every dead-letter queue.
    pub dead_letters: Vec<(String, u64)>,
    /// (patientId, sk, count) of every recent-vitals block: the key holds a digest of the
    /// block's content, so a block written twice with other content shows here.
    pub vitals: BTreeSet<(String, String, u64)>,
}

impl Outcome {
    /// Reads the outcome of a drained stack.
    pub async fn snapshot(stack: &Stack) -> Outcome {
        let mut events = BTreeSet::new();
        for item in inspect::scan(stack, "EventsTable")
            .await
            .expect("scanning the events table")
        {
            let stream = item["streamId"].as_str().unwrap_or_default();
            let version = item["version"].as_u64().unwrap_or(0);
            // The position counter and dedupe items have version 0.
            if version == 0 || stream.starts_with('$') {
                continue;
            }
            events.insert((
                stream.to_string(),
                version,
                item["eventId"].as_str().unwrap_or_default().to_string(),
                item["eventType"].as_str().unwrap_or_default().to_string(),
            ));
        }
        let mut outbox = BTreeMap::new();
        for mut row in inspect::scan(stack, "OutboxTable")
            .await
            .expect("scanning the outbox table")
        {
            let id = row["notificationId"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if let Some(fields) = row.as_object_mut() {
                for volatile in ["createdAt", "sentAt", "attempts", "providerMessageId"] {
                    fields.remove(volatile);
                }
            }
            outbox.insert(id, row);
        }
        let mut views = BTreeMap::new();
        for item in inspect::scan(stack, "DashboardTable")
            .await
            .expect("scanning the dashboard table")
        {
            let id = item["viewId"].as_str().unwrap_or_default().to_string();
            views.insert(id, without_times(item));
        }
        Outcome {
            events,
            outbox,
            sms: sms_messages(stack).await,
            views,
            dead_letters: inspect::dead_letter_depths(stack)
                .await
                .expect("reading the dead-letter queues"),
            vitals: inspect::scan(stack, "VitalsTable")
                .await
                .expect("scanning the vitals table")
                .into_iter()
                .map(|item| {
                    (
                        item["patientId"].as_str().unwrap_or_default().to_string(),
                        item["sk"].as_str().unwrap_or_default().to_string(),
                        item["count"].as_u64().unwrap_or_default(),
                    )
                })
                .collect(),
        }
    }

    /// Every dead-letter queue empty, one outbox row per (alert, recipient, kind), each
    /// `sent`, and no SMS text sent twice to the same phone.
    pub fn assert_clean(&self, run: &str) {
        self.assert_clean_but_sms(run);
        let distinct: BTreeSet<_> = self.sms.iter().collect();
        assert_eq!(
            distinct.len(),
            self.sms.len(),
            "{run}: duplicate SMS: {:#?}",
            self.sms
        );
    }

    /// [`Outcome::assert_clean`] without the SMS check.
    fn assert_clean_but_sms(&self, run: &str) {
        for (queue, depth) in &self.dead_letters {
            assert_eq!(*depth, 0, "{run}: {queue} is not empty");
        }
        // One notification per (alert, recipient, kind), and for an emergency (its id is the
        // row's alertId) per stage: the family hears "dispatched" and "completed", each once.
        // The text tells the stages apart.
        let mut per_recipient = BTreeMap::new();
        for row in self.outbox.values() {
            let key = (
                row["alertId"].as_str().unwrap_or_default().to_string(),
                row["recipientId"].as_str().unwrap_or_default().to_string(),
                row["kind"].as_str().unwrap_or_default().to_string(),
                row["message"].as_str().unwrap_or_default().to_string(),
            );
            *per_recipient.entry(key).or_insert(0) += 1;
            assert_eq!(row["status"], "sent", "{run}: outbox row not sent: {row}");
        }
        for (key, count) in per_recipient {
            assert_eq!(count, 1, "{run}: {count} notifications for {key:?}");
        }
    }
}

/// What a crash run must end with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Exactly the crash-free run's outcome.
    Same,
    /// The crash-free run's outcome, except that one SMS went out twice: the crash came
    /// after the provider took the text and before the outbox row was marked `sent`, so the
    /// redelivery cannot know it went out (SNS SMS takes no idempotency key) and sends it
    /// again. At-least-once delivery, the choice documented in docs/architecture.md.
    OneSmsResent,
}

/// Asserts that a crash run ended as the crash-free run: the same events, outbox rows, SMS,
/// dashboard views and (empty) dead-letter queues.
pub fn assert_same_outcome(baseline: &Outcome, crashed: &Outcome, point: &str) {
    assert_outcome(baseline, crashed, point, Expect::Same);
}

/// [`assert_same_outcome`], with the difference `expect` allows.
pub fn assert_outcome(baseline: &Outcome, crashed: &Outcome, point: &str, expect: Expect) {
    let run = format!("after a crash at {point}");
    let sms = match expect {
        Expect::Same => {
            crashed.assert_clean(&run);
            crashed.sms.clone()
        }
        Expect::OneSmsResent => {
            crashed.assert_clean_but_sms(&run);
            let mut sms = crashed.sms.clone();
            let resent: Vec<usize> = (1..sms.len()).filter(|&i| sms[i] == sms[i - 1]).collect();
            assert_eq!(
                resent.len(),
                1,
                "{run}: expected exactly one SMS sent twice: {sms:#?}"
            );
            sms.remove(resent[0]);
            sms
        }
    };
    let missing: Vec<_> = baseline.events.difference(&crashed.events).collect();
    let extra: Vec<_> = crashed.events.difference(&baseline.events).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "after a crash at {point}, the events differ from the crash-free run:\nmissing {missing:#?}\nextra {extra:#?}"
    );
    assert_eq!(
        baseline.outbox, crashed.outbox,
        "after a crash at {point}: outbox rows"
    );
    assert_eq!(baseline.sms, sms, "{run}: SMS sent");
    assert_eq!(
        baseline.views, crashed.views,
        "after a crash at {point}: dashboard views"
    );
    assert_eq!(baseline.dead_letters, crashed.dead_letters);
    assert_eq!(
        baseline.vitals, crashed.vitals,
        "after a crash at {point}: recent-vitals blocks"
    );
}

/// Runs `scenario` once with the crash point armed, checks that it fired, and compares the
/// outcome with the scenario's crash-free run.
pub async fn crash_test(scenario: &Scenario, function: &str, point: &str) {
    crash_test_expecting(scenario, function, point, Expect::Same).await;
}

/// [`crash_test`] for a point after which the crash-free outcome cannot be reached exactly;
/// `expect` names the one difference allowed (documented with the point).
pub async fn crash_test_expecting(
    scenario: &Scenario,
    function: &str,
    point: &str,
    expect: Expect,
) {
    let baseline = scenario.baseline().await;
    let once_dir = marker_dir(point);
    let fault = Fault {
        function,
        point,
        once_dir: &once_dir,
    };
    let test = format!("crash_{}", point.replace('.', "_"));
    let crashed = run(scenario, &test, Some(&fault)).await;
    assert!(
        lambda_kit::fault::fired(&once_dir, point),
        "{function} never reached the crash point {point} (no marker in {})",
        once_dir.display()
    );
    assert!(
        !baseline.events.is_empty(),
        "the scenario {} wrote no events",
        scenario.name
    );
    assert_outcome(baseline, &crashed, point, expect);
}

/// A fresh, empty marker folder for one crash point.
fn marker_dir(point: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| e2e::workspace_root().join("target"));
    let dir = target.join("crash-markers").join(point);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating the crash marker folder");
    dir
}

/// One run of a scenario on a fresh stack: drive it, drain the pipeline (with one sweep,
/// which carries out what a detect retry left in a patient's outbox), snapshot.
pub async fn run(scenario: &Scenario, test: &str, fault: Option<&Fault<'_>>) -> Outcome {
    let stack = start_stack_configured(test, |config| {
        for (name, value) in PARAMETERS {
            config
                .parameter_overrides
                .insert(name.to_string(), value.to_string());
        }
        // The sweep ticks on its own, as on AWS (every minute there), so what a crashed
        // invocation's claim held back goes out soon after the claim expires, before the
        // acknowledgement deadline; `drain` then sweeps until nothing is due.
        config.schedule_interval = Some(Duration::from_secs(2));
        if let Some(fault) = fault {
            let armed = BTreeMap::from([
                (
                    lambda_kit::fault::CRASH_AT_ENV.to_string(),
                    fault.point.to_string(),
                ),
                (
                    lambda_kit::fault::ONCE_DIR_ENV.to_string(),
                    fault.once_dir.display().to_string(),
                ),
            ]);
            // The sweep is detect's binary: per shard it restores shards and writes their
            // snapshots too, so it shares detect's points (and the once marker: whichever
            // gets there first crashes).
            if fault.function == "DetectFunction" {
                config
                    .function_environment
                    .insert("SweepFunction".to_string(), armed.clone());
            }
            config
                .function_environment
                .insert(fault.function.to_string(), armed);
        }
    })
    .await;
    (scenario.drive)(&stack).await;
    drain(&stack).await;
    let outcome = Outcome::snapshot(&stack).await;
    stack.shutdown().await.expect("stopping the stack");
    outcome
}

/// How many times [`drain`] runs the sweep at most while patients are still due.
pub const SWEEPS: usize = 30;

/// Waits until the pipeline is idle, then plays the schedule of the detection sweep (which
/// carries out what a patient's saved outbox still holds) until it finds no patient due,
/// a second apart, waiting for the pipeline after each. A publish that a crashed invocation
/// had claimed stays due until that invocation's deadline (on AWS the sweep runs every
/// minute; here every second until done).
///
/// Per shard (the default layout), detect's last changes are in memory until the sweep
/// writes the shard's snapshot (the header promises its visit within twice the flush
/// interval): the drain also goes on while a shard header is due that soon.
pub async fn drain(stack: &Stack) {
    stack.wait_idle(DRAIN).await.expect("draining the pipeline");
    let mut crashed = false;
    for _ in 0..SWEEPS {
        let sweep = stack
            .run_schedule("SweepFunction")
            .await
            .expect("running the sweep");
        let summary = match &sweep {
            devstack::InvokeOutcome::Ok(summary) => summary.clone(),
            // The sweep shares detect's crash points: it may crash once.
            devstack::InvokeOutcome::Crashed(_) if !crashed => {
                crashed = true;
                Value::Null
            }
            other => panic!("the sweep failed: {other:?}"),
        };
        stack
            .wait_idle(DRAIN)
            .await
            .expect("draining after the sweep");
        if summary["due"].as_u64() == Some(0) && !shard_due_soon(stack).await {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!("patients were still due after {SWEEPS} sweeps");
}

/// Whether a shard's snapshot header promises a sweep visit within twice the flush
/// interval (and a second): a change of its state may not be written yet.
async fn shard_due_soon(stack: &Stack) -> bool {
    let soon = Utc::now().timestamp_millis() + 2_000 * FLUSH_SECONDS as i64 + 1_000;
    e2e::shard_headers_due(stack)
        .await
        .iter()
        .any(|(_, due)| due.is_some_and(|at| at <= soon))
}

/// POSTs `body` to `path` as `caller` until the API accepts it (2xx), as a client retries a
/// request that got a 5xx: the same body and headers each time. Panics on a 4xx or after 5
/// tries.
pub async fn post_until_accepted(
    stack: &Stack,
    caller: &devstack::TokenSpec,
    path: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> Value {
    let authorization = e2e::bearer(stack, caller);
    let client = reqwest::Client::new();
    let mut last = String::new();
    for _attempt in 0..5 {
        let mut request = client
            .post(format!("{}{path}", stack.api_url()))
            .header("content-type", "application/json")
            .header("authorization", &authorization)
            .body(body.to_string());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                if status.is_success() {
                    return serde_json::from_str(&text).unwrap_or(Value::String(text));
                }
                assert!(
                    !status.is_client_error(),
                    "POST {path} was refused: {status} {text}"
                );
                last = format!("{status} {text}");
            }
            Err(err) => last = err.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("POST {path} never succeeded; last answer: {last}");
}

/// `value` with every RFC 3339 timestamp string, and every `lateBySeconds` (arrival time
/// minus reading time), replaced by `<time>`.
fn without_times(value: Value) -> Value {
    match value {
        Value::String(text) if DateTime::parse_from_rfc3339(&text).is_ok() => {
            Value::String("<time>".to_string())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(without_times).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(k, v)| match k.as_str() {
                    "lateBySeconds" if !v.is_null() => (k, Value::String("<time>".to_string())),
                    _ => (k, without_times(v)),
                })
                .collect(),
        ),
        other => other,
    }
}
