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
    Expect, Scenario, crash_test, crash_test_expecting, fixed_reading, post_until_accepted,
};
use devstack::{Stack, inspect};
use e2e::entry;
use futures::FutureExt;
use serde_json::json;

/// Two patients' heart rates race three readings in a row (warning: tachycardia), so each
/// health worker gets an alert; p-1's then settles, so w-1 also gets a `cleared`
/// notification. One request, as a device batch; the client retries it until accepted.
/// Warning alerts start no emergency, and with no village roster an unacknowledged alert
/// has nobody to escalate to: the run involves ingest, detect, route, notify and project.
static ALERTS: Scenario = Scenario::new("alerts", |stack: &Stack| {
    async move {
        inspect::seed_directory(
            stack,
            &[
                entry("p-1", "w-1", "+254700000301"),
                entry("p-2", "w-2", "+254700000302"),
            ],
        )
        .await
        .expect("seeding the directory");
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
            "/readings",
            &body,
            &[("x-correlation-id", "corr-crash-alerts")],
        )
        .await;
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
