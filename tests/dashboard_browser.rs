//! The dashboard page (web/, docs/dashboard.md) in a real browser: Debian's chromium driven
//! by Playwright for Python (tests/browser/dashboard.py; installed by
//! scripts/setup-browser.sh, run by `./dev test` as its own step).
//!
//! ONE stack: the local-only sign-in, the live board (supervisor, desktop) and the health
//! worker's inbox (360 px); readings that alert are posted while both are open; the alert
//! appears on both without a reload, is acknowledged by a click, both views change, and the
//! pipeline then stops escalating it (no `AlertEscalated` and no escalation SMS after the
//! acknowledgement). Screenshots (1280 px and 360 px) go to target/screenshots/, and to
//! docs/screenshots/ with `UPDATE_SCREENSHOTS=1`.

use std::process::Stdio;
use std::time::{Duration, Instant};

use devstack::{Stack, TokenSpec, inspect};
use domain::escalation::{FamilyContact, VillageRoster, Worker};
use e2e::*;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const WORKER: &str = "w-web1";
const SECOND: &str = "w-web2";
const SUPERVISOR: &str = "s-web";
const PATIENT: &str = "p-web1";
const OTHER: &str = "p-web2";
const VILLAGE: &str = "Bondo";
/// Seconds before an unacknowledged alert escalates (level 1, then level 2 as long again).
const ACK_TIMEOUT: &str = "25";

fn worker(id: &str) -> Worker {
    let phone = match id {
        WORKER => "+254700000901",
        SECOND => "+254700000902",
        _ => "+254700000903",
    };
    Worker {
        language: "en".into(),
        worker_id: id.into(),
        name: format!("Worker {id}"),
        phone: phone.into(),
        village: VILLAGE.into(),
        available: true,
        reserved_by: None,
    }
}

async fn seed(stack: &Stack) {
    let phone = worker(WORKER).phone;
    inspect::seed_directory(
        stack,
        &[entry(PATIENT, WORKER, &phone), entry(OTHER, WORKER, &phone)],
    )
    .await
    .unwrap();
    let workers: Vec<Worker> = [WORKER, SECOND, SUPERVISOR].map(worker).to_vec();
    inspect::seed_workers(stack, &workers).await.unwrap();
    inspect::seed_contacts(
        stack,
        &[VillageRoster {
            village: VILLAGE.into(),
            worker_ids: vec![WORKER.into(), SECOND.into()],
            supervisor_id: SUPERVISOR.into(),
        }],
        &[PATIENT, OTHER].map(|p| FamilyContact {
            patient_id: p.into(),
            name: format!("Family of {p}"),
            phone: "+254711000009".into(),
            language: "en".into(),
        }),
    )
    .await
    .unwrap();
}

/// Escalation SMS (outbox rows whose message starts "[ESCALATED") about the alert.
async fn escalation_sms(stack: &Stack, alert_id: &str) -> Vec<Value> {
    inspect::scan(stack, "OutboxTable")
        .await
        .unwrap()
        .into_iter()
        .filter(|row| {
            row["alertId"] == alert_id
                && row["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("[ESCALATED"))
        })
        .collect()
}

async fn escalations_of(stack: &Stack, alert_id: &str) -> Vec<Value> {
    inspect::events_of_type(stack, "AlertEscalated")
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e["data"]["alertId"] == alert_id)
        .collect()
}

/// Lines of the script's stdout, with a deadline per line.
async fn next_line(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    wait: Duration,
) -> String {
    match tokio::time::timeout(wait, lines.next_line()).await {
        Ok(Ok(Some(line))) => line,
        Ok(Ok(None)) => panic!("the browser script ended early (its stderr is above)"),
        Ok(Err(err)) => panic!("reading the browser script: {err}"),
        Err(_) => panic!("the browser script said nothing for {wait:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_dashboard_board_inbox_ack_and_escalation_stops() {
    let root = workspace_root();
    let python = root.join(".local/playwright/bin/python");
    assert!(
        python.exists() && std::path::Path::new("/usr/bin/chromium").exists(),
        "the browser test needs chromium and Playwright: run scripts/setup-browser.sh"
    );
    let started = Instant::now();
    let stack = start_stack_with("dashboard_browser", &[("AckTimeoutSeconds", ACK_TIMEOUT)]).await;
    seed(&stack).await;
    let url = stack
        .dashboard_url()
        .expect("the stack serves the dashboard");

    // The page, config.js and the local-only sign-in are served on the API's port.
    let page = reqwest::get(&url).await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(page.text().await.unwrap().contains("app.js"));
    let config = reqwest::get(format!("{url}config.js"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(config.contains("\"auth\":\"local\""), "{config}");

    // A day of normal readings for the patient page's charts, and an emergency for the
    // timeline.
    let wave = |h: i64, mean: f64, amplitude: f64| {
        let v = mean + amplitude * (h as f64 * std::f64::consts::PI / 12.0).sin();
        (v * 10.0).round() / 10.0
    };
    let at = |h: i64| 60 * (23 - h) + 5;
    let history: Vec<Value> = (0..24)
        .map(|h| reading(PATIENT, "heart_rate", wave(h, 76.0, 8.0), at(h)))
        .chain((0..24).map(|h| reading(PATIENT, "spo2", wave(h + 3, 96.5, 1.2), at(h))))
        .collect();
    let (status, body) = post(&stack, &Value::Array(history), None).await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = api_request(
        &stack,
        Some(&supervisor(&stack)),
        "POST",
        "/emergencies",
        Some(&json!({"patientId": OTHER, "reason": "collapsed at home", "reporter": WORKER})),
        Some("browser-emergency"),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let emergency = body["emergencyId"].as_str().unwrap().to_string();

    // The pages whose routes this checkout has (a route the template does not declare yet
    // answers API Gateway's bare 404): screenshot those; say which are left out.
    let mut views = vec!["board", "emergency"];
    for (view, path) in [
        ("patient", format!("/patients/{PATIENT}")),
        ("village", format!("/villages/{VILLAGE}/stats")),
    ] {
        let (status, body) =
            api_request(&stack, Some(&supervisor(&stack)), "GET", &path, None, None).await;
        if status == 404 && body == json!({"message": "Not Found"}) {
            eprintln!(
                "SKIPPED: the {view} page's screenshot (no route GET {path} in this checkout)"
            );
        } else {
            views.push(view);
        }
    }
    let shots = root.join("target/screenshots");
    let docs = std::env::var("UPDATE_SCREENSHOTS")
        .is_ok_and(|v| v == "1")
        .then(|| root.join("docs/screenshots"));
    let args = json!({
        "url": url, "supervisor": SUPERVISOR, "worker": WORKER, "patient": PATIENT,
        "village": VILLAGE, "emergency": emergency, "shots": shots, "docs": docs,
        "views": views,
    });
    let mut script = tokio::process::Command::new(&python)
        .arg(root.join("tests/browser/dashboard.py"))
        .arg(args.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("starting the browser script");
    let mut stdin = script.stdin.take().unwrap();
    let mut lines = BufReader::new(script.stdout.take().unwrap()).lines();
    assert_eq!(
        next_line(&mut lines, Duration::from_secs(60)).await,
        "READY"
    );

    // Three high heart rates: a warning alert, routed to WORKER (no saga).
    let now = chrono::Utc::now();
    let readings: Vec<Value> = [121.0, 128.0, 133.0]
        .into_iter()
        .enumerate()
        .map(|(i, hr)| {
            let mut r = reading(PATIENT, "heart_rate", hr, 0);
            let at = now - chrono::Duration::seconds(3 - i as i64);
            r["timestamp"] = json!(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
            r
        })
        .collect();
    let (status, body) = post(&stack, &Value::Array(readings), None).await;
    assert_eq!(status, 202, "{body}");
    stdin.write_all(b"POSTED\n").await.unwrap();
    stdin.flush().await.unwrap();

    let acked = next_line(&mut lines, Duration::from_secs(60)).await;
    let alert_id = acked
        .strip_prefix("ACKED ")
        .unwrap_or_else(|| panic!("expected ACKED, got {acked:?}"))
        .to_string();
    let escalated_at_ack = escalations_of(&stack, &alert_id).await.len();
    let sms_at_ack = escalation_sms(&stack, &alert_id).await.len();
    assert!(
        escalated_at_ack < 2,
        "escalated to the top before the click"
    );

    // The click recorded the acknowledgement, by the signed-in worker.
    let acks = inspect::events_of_type(&stack, "AlertAcknowledged")
        .await
        .unwrap();
    let ack = acks
        .iter()
        .find(|e| e["data"]["alertId"] == alert_id.as_str())
        .unwrap_or_else(|| panic!("no AlertAcknowledged for {alert_id}: {acks:?}"));
    assert_eq!(ack["data"]["acknowledgedBy"], WORKER, "{ack}");
    let raised = inspect::events_of_type(&stack, "AlertRaised")
        .await
        .unwrap();
    assert!(
        raised
            .iter()
            .any(|e| e["data"]["alertId"] == alert_id.as_str() && e["data"]["patientId"] == PATIENT),
        "the acknowledged alert is {PATIENT}'s"
    );

    assert_eq!(next_line(&mut lines, Duration::from_secs(90)).await, "DONE");
    let status = script.wait().await.unwrap();
    assert!(status.success(), "the browser script failed: {status}");

    // Escalation stopped: after the pending deadline checks have run (wait_idle waits for
    // them), no further AlertEscalated and no further escalation SMS.
    stack.wait_idle(DRAIN).await.unwrap();
    assert_eq!(
        escalations_of(&stack, &alert_id).await.len(),
        escalated_at_ack,
        "the alert escalated after it was acknowledged"
    );
    assert_eq!(escalation_sms(&stack, &alert_id).await.len(), sms_at_ack);
    // ... and not because no check came: the acknowledgement deadline fired and found the
    // alert acknowledged.
    let checks = function_log(&stack, "EmergencyCoordinatorFunction");
    assert!(
        checks
            .iter()
            .any(|line| line["message"] == "acknowledged: no escalation"
                && line["alert_id"] == alert_id.as_str()),
        "no acknowledgement deadline check ran for {alert_id} after the click"
    );
    for name in &views {
        for width in ["desktop", "360"] {
            let file = shots.join(format!("{name}-{width}.png"));
            let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
            assert!(size > 5_000, "{} missing or empty", file.display());
        }
    }
    eprintln!(
        "dashboard browser test: {} s (alert {alert_id}, escalations before the ack {escalated_at_ack})",
        started.elapsed().as_secs()
    );
    stack.shutdown().await.unwrap();
}

fn supervisor(stack: &Stack) -> String {
    bearer(stack, &TokenSpec::supervisor(SUPERVISOR))
}
