//! One end-to-end test per crash point (issue 12): the function aborts at the point once
//! (`FAULT_CRASH_AT`, `FAULT_CRASH_ONCE_DIR`), devstack restarts it, the event source
//! redelivers (or, for HTTP, the test retries as the client would), and the final state must
//! be the crash-free run's. How to add one: the docs of `tests/crash/mod.rs`.
//!
//! A test is named `crash_` + its point with `.` replaced by `_`;
//! `every_crash_point_has_a_test` keeps the points in `functions/*/src` and these tests in
//! step.

mod crash;

use crash::{
    Expect, SNAPSHOT_PAUSE, Scenario, crash_test, crash_test_expecting, fixed_reading,
    post_until_accepted,
};
use devstack::{Stack, TokenSpec, inspect};
use domain::escalation::{FamilyContact, VillageRoster, Worker};
use e2e::entry;
use futures::FutureExt;
use serde_json::{Value, json};

/// p-1 and p-2 in the directory, with their health workers w-1 and w-2.
async fn seed_two_patients(stack: &Stack) {
    inspect::seed_directory(
        stack,
        &[
            entry("p-1", "w-1", "+254700000301"),
            entry("p-2", "w-2", "+254700000302"),
        ],
    )
    .await
    .expect("seeding the directory");
}

/// Two patients' heart rates race three readings in a row (warning: tachycardia), so each
/// health worker gets an alert; p-1's then settles, so w-1 also gets a `cleared`
/// notification. One request, as a device batch; the client retries it until accepted.
/// Warning alerts start no emergency, and with no village roster an unacknowledged alert
/// has nobody to escalate to: the run involves ingest, detect, route, notify and project.
static ALERTS: Scenario = Scenario::new("alerts", |stack: &Stack| {
    async move {
        seed_two_patients(stack).await;
        let body = json!([
            fixed_reading("p-1", "heart_rate", 121.0, 5),
            fixed_reading("p-2", "heart_rate", 124.0, 5),
            fixed_reading("p-1", "heart_rate", 128.0, 4),
            fixed_reading("p-2", "heart_rate", 131.0, 4),
            fixed_reading("p-1", "heart_rate", 133.0, 3),
            fixed_reading("p-2", "heart_rate", 127.0, 3),
            fixed_reading("p-1", "heart_rate", 72.0, 2),
        ]);
        post_until_accepted(
            stack,
            &TokenSpec::operator("op-crash"),
            "/readings",
            &body,
            &[("x-correlation-id", "corr-crash-alerts")],
        )
        .await;
    }
    .boxed()
});

/// One patient's heart rate 70 minutes before the base time, then three fast beats (a
/// warning alert, as in ALERTS) and, in a second request [`SNAPSHOT_PAUSE`] later, a calm
/// one: the first reading's hour is closed by the later ones, so detect writes a
/// recent-vitals block (docs/read-side.md) before it saves the state (per patient) or
/// before the shard's snapshot that no longer holds the hour (per shard, the default: the
/// second request's batch writes it).
static VITALS: Scenario = Scenario::new("vitals", |stack: &Stack| {
    async move {
        inspect::seed_directory(stack, &[entry("p-v", "w-1", "+254700000301")])
            .await
            .expect("seeding the directory");
        let first = json!([
            fixed_reading("p-v", "heart_rate", 72.0, 70),
            fixed_reading("p-v", "heart_rate", 121.0, 5),
            fixed_reading("p-v", "heart_rate", 128.0, 4),
            fixed_reading("p-v", "heart_rate", 133.0, 3),
        ]);
        let second = json!([fixed_reading("p-v", "heart_rate", 72.0, 2)]);
        post_paused(stack, "vitals", &[first, second]).await;
    }
    .boxed()
});

/// Posts each body as one `POST /readings` by an operator, [`SNAPSHOT_PAUSE`] apart,
/// correlation ids `corr-crash-{name}-{i}`.
async fn post_paused(stack: &Stack, name: &str, bodies: &[Value]) {
    for (i, body) in bodies.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(SNAPSHOT_PAUSE).await;
        }
        let correlation = format!("corr-crash-{name}-{i}");
        post_until_accepted(
            stack,
            &TokenSpec::operator("op-crash"),
            "/readings",
            body,
            &[("x-correlation-id", correlation.as_str())],
        )
        .await;
    }
}

/// Detection state per shard (docs/detection.md, "State per shard"): ALERTS' readings in
/// four requests [`SNAPSHOT_PAUSE`] apart, so that detect writes the shard's snapshot
/// (dirty buckets, then the header with the watermark) between them: the second request's
/// batch writes the buckets and the header before any alert is decided, the third decides
/// both alerts (each patient's bucket written before its alert is carried out), the
/// fourth resolves p-1's.
static SNAPSHOT: Scenario = Scenario::new("snapshot", |stack: &Stack| {
    async move {
        seed_two_patients(stack).await;
        let requests = [
            json!([
                fixed_reading("p-1", "heart_rate", 121.0, 5),
                fixed_reading("p-2", "heart_rate", 124.0, 5),
            ]),
            json!([
                fixed_reading("p-1", "heart_rate", 128.0, 4),
                fixed_reading("p-2", "heart_rate", 131.0, 4),
            ]),
            json!([
                fixed_reading("p-1", "heart_rate", 133.0, 3),
                fixed_reading("p-2", "heart_rate", 127.0, 3),
            ]),
            json!([fixed_reading("p-1", "heart_rate", 72.0, 2)]),
        ];
        post_paused(stack, "snapshot", &requests).await;
    }
    .boxed()
});

// ingest: HTTP, no redelivery; the client retries the same request (reading ids make the
// repeat a duplicate that detect skips).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_ingest_after_put() {
    crash_test(&ALERTS, "IngestFunction", "ingest.after_put").await;
}

// detect: Kinesis, the event source mapping retries the batch (and the sweep carries out
// what a patient's saved outbox still holds).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_detect_after_save_state() {
    crash_test(&ALERTS, "DetectFunction", "detect.after_save_state").await;
}

// The retry rebuilds the same block (same key) and saves the state without its hour.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_detect_after_write_vitals() {
    crash_test(&VITALS, "DetectFunction", "detect.after_write_vitals").await;
}

// Per shard: a crash after a bucket is written, before the header (the snapshot's
// watermark) is: the retry restores the older header and replays the stream from its
// watermark; each patient's entry skips the records it already holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_detect_after_write_bucket() {
    crash_test(&SNAPSHOT, "DetectFunction", "detect.after_write_bucket").await;
}

// Per shard: a crash after the header is written, before the batch returns (and before
// the next batch decides the alerts): the retry restores the new snapshot, replays nothing
// and skips the batch's records; the alerts come once, with the next batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_detect_after_write_shard_meta() {
    crash_test(&SNAPSHOT, "DetectFunction", "detect.after_write_shard_meta").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_detect_after_append_alert() {
    crash_test(&ALERTS, "DetectFunction", "detect.after_append_alert").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_detect_after_publish_alert() {
    crash_test(&ALERTS, "DetectFunction", "detect.after_publish_alert").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_detect_after_guard_alert() {
    crash_test(&ALERTS, "DetectFunction", "detect.after_guard_alert").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_detect_after_append_resolution() {
    crash_test(&ALERTS, "DetectFunction", "detect.after_append_resolution").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_detect_after_publish_resolution() {
    crash_test(&ALERTS, "DetectFunction", "detect.after_publish_resolution").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_detect_after_guard_resolution() {
    crash_test(&ALERTS, "DetectFunction", "detect.after_guard_resolution").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_detect_after_clear_outbox() {
    crash_test(&ALERTS, "DetectFunction", "detect.after_clear_outbox").await;
}

// route: SQS, the message comes back after the visibility timeout.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_route_after_append() {
    crash_test(&ALERTS, "RouteFunction", "route.after_append").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_route_after_send() {
    crash_test(&ALERTS, "RouteFunction", "route.after_send").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_route_after_guard_alert() {
    crash_test(&ALERTS, "RouteFunction", "route.after_guard_alert").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_route_after_send_cleared() {
    crash_test(&ALERTS, "RouteFunction", "route.after_send_cleared").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_route_after_guard_clear() {
    crash_test(&ALERTS, "RouteFunction", "route.after_guard_clear").await;
}

// notify: SQS FIFO, the message comes back after the visibility timeout.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_notify_after_claim() {
    crash_test(&ALERTS, "NotifyFunction", "notify.after_claim").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_notify_after_send() {
    // The text went out, the outbox row is still `pending`: the redelivery sends it again
    // (at-least-once; SNS SMS has no idempotency key). Everything else is exactly-once.
    crash_test_expecting(
        &ALERTS,
        "NotifyFunction",
        "notify.after_send",
        Expect::OneSmsResent,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_notify_after_mark_sent() {
    crash_test(&ALERTS, "NotifyFunction", "notify.after_mark_sent").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_notify_after_append() {
    crash_test(&ALERTS, "NotifyFunction", "notify.after_append").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_notify_after_guard() {
    crash_test(&ALERTS, "NotifyFunction", "notify.after_guard").await;
}

// project: DynamoDB stream, the event source mapping retries the batch.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_project_after_save_view() {
    crash_test(&ALERTS, "ProjectFunction", "project.after_save_view").await;
}

/// Who looks after p-1 (Bondo): w-1, then w-2 of the roster, then the supervisor s-1; all
/// free; p-1's family on file.
async fn seed_village(stack: &Stack) {
    inspect::seed_directory(stack, &[entry("p-1", "w-1", "+254700000301")])
        .await
        .expect("seeding the directory");
    let workers: Vec<Worker> = [
        ("w-1", "+254700000301"),
        ("w-2", "+254700000302"),
        ("s-1", "+254700000309"),
    ]
    .into_iter()
    .map(|(id, phone)| Worker {
        worker_id: id.into(),
        name: format!("Worker {id}"),
        phone: phone.into(),
        village: "Bondo".into(),
        available: true,
        reserved_by: None,
        language: "en".into(),
    })
    .collect();
    inspect::seed_workers(stack, &workers)
        .await
        .expect("seeding the workers");
    inspect::seed_contacts(
        stack,
        &[VillageRoster {
            village: "Bondo".into(),
            worker_ids: vec!["w-1".into(), "w-2".into()],
            supervisor_id: "s-1".into(),
        }],
        &[FamilyContact {
            patient_id: "p-1".into(),
            name: "Family of p-1".into(),
            phone: "+254711000301".into(),
            language: "en".into(),
        }],
    )
    .await
    .expect("seeding the roster and the family");
}

/// The saga's status, as `GET /emergencies/{id}` answers (None before it started).
async fn saga_status(stack: &Stack, id: &str) -> Option<String> {
    let url = format!("{}/emergencies/{id}", stack.api_url());
    let response = reqwest::Client::new()
        .get(url)
        .header(
            "authorization",
            e2e::bearer(stack, &TokenSpec::health_worker("w-1")),
        )
        .send()
        .await
        .ok()?;
    let body: serde_json::Value = response.json().await.ok()?;
    body["state"]["status"].as_str().map(str::to_string)
}

/// A health worker raises an emergency for p-1 that needs an ambulance (one
/// `Idempotency-Key`; the client retries until accepted): w-1 is reserved, the ambulance
/// dispatched (step ledger), w-1 and the family are told; once w-1 is on site they close
/// it: w-1 is released and the family told. The run involves the emergency API, the
/// coordinator, the steps function and notify.
static EMERGENCY: Scenario = Scenario::new("emergency", |stack: &Stack| {
    async move {
        seed_village(stack).await;
        let body = json!({"patientId": "p-1", "reason": "collapsed at home",
                          "reporter": "w-1", "ambulanceRequired": true});
        let reply = post_until_accepted(
            stack,
            &TokenSpec::health_worker("w-1"),
            "/emergencies",
            &body,
            &[
                ("idempotency-key", "crash-emergency-1"),
                ("x-correlation-id", "corr-crash-emergency"),
            ],
        )
        .await;
        let id = reply["emergencyId"]
            .as_str()
            .expect("an emergency id")
            .to_string();
        let started = std::time::Instant::now();
        while saga_status(stack, &id).await.as_deref() != Some("onSite") {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(240),
                "emergency {id} never went on site"
            );
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        post_until_accepted(
            stack,
            &TokenSpec::health_worker("w-1"),
            &format!("/emergencies/{id}/close"),
            &json!({}),
            &[("x-correlation-id", "corr-crash-close")],
        )
        .await;
    }
    .boxed()
});

/// p-1's heart rate races (a warning alert): routed to w-1, nobody acknowledges it, so it
/// escalates to w-2 and then to the supervisor s-1. The run involves the escalation checks.
static ESCALATION: Scenario = Scenario::new("escalation", |stack: &Stack| {
    async move {
        seed_village(stack).await;
        let body = json!([
            fixed_reading("p-1", "heart_rate", 121.0, 5),
            fixed_reading("p-1", "heart_rate", 128.0, 4),
            fixed_reading("p-1", "heart_rate", 133.0, 3),
        ]);
        post_until_accepted(
            stack,
            &TokenSpec::operator("op-crash"),
            "/readings",
            &body,
            &[("x-correlation-id", "corr-crash-escalation")],
        )
        .await;
    }
    .boxed()
});

// The emergency API: HTTP, no redelivery; the client retries with the same Idempotency-Key.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_api_after_enqueue() {
    crash_test(
        &EMERGENCY,
        "EmergencyCoordinatorFunction",
        "api.after_enqueue",
    )
    .await;
}

// The coordinator: SQS, the message comes back after the function's timeout.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_coordinator_after_append() {
    crash_test(
        &EMERGENCY,
        "EmergencyCoordinatorFunction",
        "coordinator.after_append",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_coordinator_after_command() {
    crash_test(
        &EMERGENCY,
        "EmergencyCoordinatorFunction",
        "coordinator.after_command",
    )
    .await;
}

// The steps: SQS, the command comes back after the function's timeout; an expired ledger
// claim is taken over.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_steps_after_reserve() {
    crash_test(&EMERGENCY, "EmergencyStepsFunction", "steps.after_reserve").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_steps_after_claim() {
    crash_test(&EMERGENCY, "EmergencyStepsFunction", "steps.after_claim").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_steps_after_dispatch() {
    crash_test(&EMERGENCY, "EmergencyStepsFunction", "steps.after_dispatch").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_steps_before_reply() {
    crash_test(&EMERGENCY, "EmergencyStepsFunction", "steps.before_reply").await;
}

// Escalation: SQS, the check comes back after the function's timeout and re-sends the
// effects of the fact it recorded.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_escalate_after_append() {
    crash_test(
        &ESCALATION,
        "EmergencyCoordinatorFunction",
        "escalate.after_append",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_escalate_after_notify() {
    crash_test(
        &ESCALATION,
        "EmergencyCoordinatorFunction",
        "escalate.after_notify",
    )
    .await;
}

/// Every `crash_point("...")` in `functions/*/src` has a test here named after it, calling
/// `crash_test` with that point, and every point tested here exists. No stack needed.
#[test]
fn every_crash_point_has_a_test() {
    let root = e2e::workspace_root();
    let mut in_code = std::collections::BTreeSet::new();
    for function in std::fs::read_dir(root.join("functions")).expect("listing functions/") {
        let src = function.expect("a functions/ entry").path().join("src");
        for file in rust_files(&src) {
            let text = std::fs::read_to_string(&file).expect("reading a source file");
            in_code.extend(string_arguments(&text, "crash_point("));
        }
    }
    let tests = std::fs::read_to_string(root.join("tests/crash_points.rs"))
        .expect("reading tests/crash_points.rs");
    // The point of each call of `crash_test` (or `crash_test_expecting`): its third
    // argument, after a scenario (a static's name) and a function's logical id.
    let mut tested = std::collections::BTreeSet::new();
    for call in tests.split("crash_test").skip(1) {
        let call = call.strip_prefix("_expecting").unwrap_or(call);
        let Some(call) = call
            .strip_prefix('(')
            .and_then(|c| c.trim_start().strip_prefix('&'))
        else {
            continue;
        };
        let Some((arguments, _)) = call.split_once(')') else {
            continue;
        };
        let parts: Vec<&str> = arguments
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        if let [scenario, function, point, ..] = parts[..]
            && scenario.chars().all(|c| c.is_ascii_uppercase() || c == '_')
            && let Some(_) = function.strip_prefix('"').and_then(|f| f.strip_suffix('"'))
            && let Some(point) = point.strip_prefix('"').and_then(|p| p.strip_suffix('"'))
        {
            tested.insert(point.to_string());
        }
    }
    let untested: Vec<_> = in_code.difference(&tested).collect();
    let unknown: Vec<_> = tested.difference(&in_code).collect();
    assert!(
        untested.is_empty() && unknown.is_empty(),
        "crash points without a test in tests/crash_points.rs: {untested:?}; tests of crash points \
         no function has: {unknown:?}"
    );
    for point in &tested {
        let name = format!("async fn crash_{}()", point.replace('.', "_"));
        assert!(
            tests.contains(&name),
            "the test of {point} must be named `{name}`"
        );
    }
    assert!(in_code.len() >= 20, "found only {in_code:?}");
}

/// The string literals passed right after `call` (e.g. `crash_point(`) in `text`.
fn string_arguments(text: &str, call: &str) -> Vec<String> {
    text.split(call)
        .skip(1)
        .filter_map(|rest| {
            let rest = rest.trim_start().strip_prefix('"')?;
            Some(rest[..rest.find('"')?].to_string())
        })
        .collect()
}

fn rust_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}
