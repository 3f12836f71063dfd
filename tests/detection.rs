//! Detection as a rural clinic's readings really arrive (issue 10), end to end: the real
//! binaries (`detect`, the sweep, route, notify, project) on the local stack, driven
//! through the HTTP API, asserting on the events table, the outbox and the dashboard.
//!
//! One stack for the whole file, one patient per scenario, scenarios run concurrently.
//! The rules are the embedded defaults with a 10 s allowed lateness (the shortest allowed),
//! so the waits the semantics imply take seconds, not minutes; the sweep runs every 2 s.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use devstack::{Stack, inspect};
use e2e::*;
use serde_json::{Value, json};

const LATENESS_SECONDS: u64 = 10;

fn rules_file(test: &str) -> PathBuf {
    let text = detect::DEFAULT_RULES_YAML.replace(
        "allowedLatenessSeconds: 60",
        &format!("allowedLatenessSeconds: {LATENESS_SECONDS}"),
    );
    assert_ne!(
        text,
        detect::DEFAULT_RULES_YAML,
        "the default lateness line moved"
    );
    let dir = workspace_root().join("target").join("e2e-rules");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{test}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// The stack with the default layout of detection state (per shard, docs/detection.md),
/// its snapshot written at most 2 s after a change rather than 60 s: the tests read
/// patients' states from it, and the shard's state is restored (snapshot + replay) often.
async fn start(test: &str, schedule: Duration) -> Stack {
    let rules = rules_file(test).display().to_string();
    start_stack_configured(test, |config| {
        config.schedule_interval = Some(schedule);
        config
            .parameter_overrides
            .insert("DetectFlushSeconds".to_string(), "2".to_string());
        for function in ["DetectFunction", "SweepFunction"] {
            config.function_environment.insert(
                function.to_string(),
                [("DETECT_RULES_PATH".to_string(), rules.clone())].into(),
            );
        }
    })
    .await
}

fn unit(vital: &str) -> &'static str {
    match vital {
        "heart_rate" => "bpm",
        "spo2" => "%",
        "temperature" => "celsius",
        _ => "mmHg",
    }
}

fn reading_at(patient: &str, device: &str, vital: &str, value: f64, at: DateTime<Utc>) -> Value {
    json!({
        "patientId": patient,
        "type": vital,
        "value": value,
        "unit": unit(vital),
        "timestamp": at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "deviceId": device,
    })
}

async fn send(stack: &Stack, readings: &[Value], correlation_id: &str) {
    let (status, body) = post(stack, &json!(readings), Some(correlation_id)).await;
    assert_eq!(status, 202, "{body}");
}

/// The `AlertRaised` events of a patient (optionally of one rule).
async fn alerts_of(stack: &Stack, patient: &str, rule: Option<&str>) -> Vec<Value> {
    inspect::events_of_type(stack, "AlertRaised")
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e["data"]["patientId"] == patient)
        .filter(|e| rule.is_none_or(|r| e["data"]["ruleId"] == r))
        .collect()
}

/// Waits until the patient has an `AlertRaised` of `rule`; returns it and when it was seen.
async fn wait_for_alert(
    stack: &Stack,
    patient: &str,
    rule: &str,
    within: Duration,
) -> (Value, Instant) {
    let started = Instant::now();
    loop {
        if let Some(alert) = alerts_of(stack, patient, Some(rule))
            .await
            .into_iter()
            .next()
        {
            return (alert, Instant::now());
        }
        assert!(
            started.elapsed() < within,
            "no {rule} alert for {patient} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn seed(patients: &[&str]) -> Vec<domain::routing::DirectoryEntry> {
    patients
        .iter()
        .enumerate()
        .map(|(i, p)| entry(p, &format!("w-{p}"), &format!("+2547000{i:05}")))
        .collect()
}

/// A kiosk spot check: one SpO2 of 85, then nothing. Alerted within 5 s, routed and
/// notified; the sweep running afterwards adds nothing.
async fn spot_check(stack: &Stack) {
    let now = Utc::now();
    send(
        stack,
        &[reading_at("p-spot", "kiosk-1", "spo2", 85.0, now)],
        "spot-1",
    )
    .await;
    let accepted = Instant::now();
    let (alert, seen) = wait_for_alert(stack, "p-spot", "spo2-low", Duration::from_secs(30)).await;
    // The stored event's own time is detect's clock when it raised the alert.
    let raised = DateTime::parse_from_rfc3339(alert["timestamp"].as_str().unwrap()).unwrap();
    let latency = raised.with_timezone(&Utc) - now;
    assert!(
        latency < chrono::Duration::seconds(5),
        "raised {latency} after the reading (seen {:?} after the 202)",
        seen - accepted
    );
    assert!(alert["data"].get("lateBySeconds").is_none(), "{alert}");
    assert_eq!(alert["data"]["autoDispatch"], true);
}

/// Device A's clock runs 4 minutes ahead; device B's correct readings are still alerted:
/// a threshold (SpO2 84) and an order-sensitive rule (3 fast heartbeats).
async fn fast_clock(stack: &Stack) {
    let now = Utc::now();
    let ahead = now + chrono::Duration::minutes(4);
    send(
        stack,
        &[reading_at(
            "p-clock",
            "wearable-a",
            "heart_rate",
            72.0,
            ahead,
        )],
        "clock-a",
    )
    .await;
    send(
        stack,
        &[reading_at("p-clock", "kiosk-b", "spo2", 84.0, now)],
        "clock-b",
    )
    .await;
    wait_for_alert(stack, "p-clock", "spo2-low", Duration::from_secs(30)).await;

    let now = Utc::now();
    send(
        stack,
        &[reading_at(
            "p-clock2",
            "wearable-a",
            "heart_rate",
            72.0,
            now + chrono::Duration::minutes(4),
        )],
        "clock2-a",
    )
    .await;
    for (i, back) in [4, 2, 0].iter().enumerate() {
        let at = Utc::now() - chrono::Duration::seconds(*back);
        send(
            stack,
            &[reading_at("p-clock2", "phone-b", "heart_rate", 112.0, at)],
            &format!("clock2-b{i}"),
        )
        .await;
    }
    wait_for_alert(stack, "p-clock2", "hr-high-3", Duration::from_secs(60)).await;
}

/// The wearable sends current readings; the worker's phone then uploads a visit of two
/// hours ago with three fast heartbeats: a late hr-high-3 alert, notified, on the
/// dashboard as late; it does not dispatch by itself.
async fn late_upload(stack: &Stack) {
    let now = Utc::now();
    let current: Vec<Value> = (0..5)
        .map(|i| {
            reading_at(
                "p-late",
                "wearable-c",
                "heart_rate",
                75.0,
                now - chrono::Duration::seconds(40 - 10 * i),
            )
        })
        .collect();
    send(stack, &current, "late-wearable").await;
    let visit = now - chrono::Duration::hours(2);
    let upload: Vec<Value> = [0, 60, 120]
        .iter()
        .map(|s| {
            reading_at(
                "p-late",
                "phone-c",
                "heart_rate",
                115.0,
                visit + chrono::Duration::seconds(*s),
            )
        })
        .chain([reading_at(
            "p-late",
            "phone-c",
            "heart_rate",
            80.0,
            visit + chrono::Duration::seconds(180),
        )])
        .collect();
    send(stack, &upload, "late-upload").await;
    let (alert, _) = wait_for_alert(stack, "p-late", "hr-high-3", Duration::from_secs(60)).await;
    let late_by = alert["data"]["lateBySeconds"]
        .as_f64()
        .expect("marked late");
    assert!((7000.0..7400.0).contains(&late_by), "{alert}");
    assert_eq!(alert["data"]["autoDispatch"], false, "{alert}");
    assert_eq!(
        alert["data"]["detectedAt"],
        json!(
            (visit + chrono::Duration::seconds(120)).to_rfc3339_opts(SecondsFormat::Millis, true)
        )
    );
}

/// The SpO2 sensor of a wearable stops while its heart rate goes on: spo2-missing.
async fn sensor_stops(stack: &Stack) {
    let now = Utc::now();
    let mut readings = vec![reading_at(
        "p-miss",
        "wearable-d",
        "spo2",
        97.0,
        now - chrono::Duration::minutes(20),
    )];
    readings.extend((0..20).map(|m| {
        reading_at(
            "p-miss",
            "wearable-d",
            "heart_rate",
            72.0,
            now - chrono::Duration::minutes(19 - m),
        )
    }));
    send(stack, &readings, "miss-1").await;
    wait_for_alert(stack, "p-miss", "spo2-missing", Duration::from_secs(30)).await;
}

/// Two devices, then silence: the wearable's fast heartbeats wait for the cuff, and the
/// sweep evaluates them once the cuff has been silent for the allowed lateness.
///
/// Which function raises the alert depends on when detect reads the batch: one that
/// reaches detect after the lateness has passed is rightly evaluated by detect itself.
/// So the scenario first waits until detect has read another patient's reading (the
/// stream poller and the function are up), and leaves detect 9 s to read its batch.
async fn goes_silent(stack: &Stack) {
    send(
        stack,
        &[reading_at(
            "p-warm",
            "kiosk-w",
            "heart_rate",
            72.0,
            Utc::now(),
        )],
        "silent-0",
    )
    .await;
    let warm = Instant::now();
    while patient_state(stack, "p-warm").await.is_none() {
        assert!(
            warm.elapsed() < Duration::from_secs(60),
            "detect never read p-warm"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let now = Utc::now();
    let mut readings = vec![reading_at(
        "p-silent",
        "cuff-e",
        "systolic_bp",
        120.0,
        now - chrono::Duration::milliseconds(1_000),
    )];
    readings.extend([750, 500, 250].iter().map(|back| {
        reading_at(
            "p-silent",
            "wearable-e",
            "heart_rate",
            115.0,
            now - chrono::Duration::milliseconds(*back),
        )
    }));
    send(stack, &readings, "silent-1").await;
    let posted = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        alerts_of(stack, "p-silent", Some("hr-high-3"))
            .await
            .is_empty(),
        "the run waits for the cuff"
    );
    wait_for_alert(stack, "p-silent", "hr-high-3", Duration::from_secs(60)).await;
    assert!(posted.elapsed() >= Duration::from_secs(LATENESS_SECONDS - 1));
    // Per shard (the default), a due patient is evaluated by the sweep or by detect after
    // any later batch of its shard (other scenarios' readings); not on arrival (above).
    let raised_by = |function: &str| {
        function_log(stack, function)
            .into_iter()
            .any(|line| line["message"] == "alert raised" && line["patient_id"] == "p-silent")
    };
    // (The line follows the event's append and publish: give it a moment.)
    let seen = Instant::now();
    while !(raised_by("SweepFunction") || raised_by("DetectFunction")) {
        assert!(seen.elapsed() < Duration::from_secs(10), "raised once due");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A clinic uploads 20-minute-old readings out of order in one request: every reading is
/// evaluated, whatever batches the stream cuts it into; one alert.
async fn old_upload_out_of_order(stack: &Stack) {
    let base = Utc::now() - chrono::Duration::minutes(20);
    let mut readings: Vec<Value> = (0..24)
        .map(|i| {
            let value = if (10..13).contains(&i) { 118.0 } else { 76.0 };
            reading_at(
                "p-upload",
                "kiosk-f",
                "heart_rate",
                value,
                base + chrono::Duration::seconds(5 * i),
            )
        })
        .collect();
    // Slightly out of order: swap neighbours.
    for i in (0..readings.len() - 1).step_by(3) {
        readings.swap(i, i + 1);
    }
    send(stack, &readings, "upload-1").await;
    wait_for_alert(stack, "p-upload", "hr-high-3", Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_as_clinics_send_them_are_all_evaluated() {
    let stack = start("detection", Duration::from_secs(2)).await;
    let patients = [
        "p-spot", "p-clock", "p-clock2", "p-late", "p-miss", "p-warm", "p-silent", "p-upload",
    ];
    inspect::seed_directory(&stack, &seed(&patients))
        .await
        .unwrap();

    tokio::join!(
        spot_check(&stack),
        fast_clock(&stack),
        late_upload(&stack),
        sensor_stops(&stack),
        goes_silent(&stack),
        old_upload_out_of_order(&stack),
    );
    stack.wait_idle(DRAIN).await.unwrap();
    // Let the sweep run again over everything, then check the whole outcome.
    stack.run_schedule("SweepFunction").await.unwrap();
    stack.wait_idle(DRAIN).await.unwrap();

    let expected = [
        ("p-spot", vec!["spo2-low"]),
        ("p-clock", vec!["spo2-low"]),
        ("p-clock2", vec!["hr-high-3"]),
        ("p-late", vec!["hr-high-3"]),
        ("p-miss", vec!["spo2-missing"]),
        ("p-silent", vec!["hr-high-3"]),
        ("p-upload", vec!["hr-high-3"]),
    ];
    for (patient, rules) in expected {
        let mut got: Vec<String> = alerts_of(&stack, patient, None)
            .await
            .iter()
            .map(|a| a["data"]["ruleId"].as_str().unwrap().to_string())
            .collect();
        got.sort();
        assert_eq!(got, rules, "alerts of {patient}");
    }
    // Warning and critical alerts are routed and notified; info (spo2-missing) is not.
    let routed = inspect::events_of_type(&stack, "AlertRouted")
        .await
        .unwrap();
    let sent = inspect::events_of_type(&stack, "NotificationSent")
        .await
        .unwrap();
    for patient in [
        "p-spot", "p-clock", "p-clock2", "p-late", "p-silent", "p-upload",
    ] {
        let alert = alerts_of(&stack, patient, None).await.remove(0);
        let id = &alert["data"]["alertId"];
        assert_eq!(
            routed
                .iter()
                .filter(|e| &e["data"]["alertId"] == id)
                .count(),
            1,
            "{patient} routed"
        );
        assert!(
            sent.iter()
                .any(|e| &e["data"]["alertId"] == id && e["data"]["kind"] != "cleared"),
            "{patient} notified"
        );
    }
    let missing = alerts_of(&stack, "p-miss", None).await.remove(0);
    assert!(
        !routed
            .iter()
            .any(|e| e["data"]["alertId"] == missing["data"]["alertId"])
    );
    // The late alert's view on the dashboard says how late it was.
    let late = alerts_of(&stack, "p-late", None).await.remove(0);
    let view = dashboard_item(
        &stack,
        &format!("alert#{}", late["data"]["alertId"].as_str().unwrap()),
    )
    .await
    .expect("a dashboard view of the late alert");
    assert!(view["view"]["lateBySeconds"].as_f64().is_some(), "{view}");
    for (queue, depth) in inspect::dead_letter_depths(&stack).await.unwrap() {
        assert_eq!(depth, 0, "{queue} is not empty");
    }
    stack.shutdown().await.unwrap();
}

/// Redelivering every Kinesis batch while the sweep runs on the same patients gives no
/// duplicate alert and loses no update of the patient's state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivery_and_the_sweep_racing_detect_change_nothing() {
    let stack = start("detection_race", Duration::from_secs(3600)).await;
    inspect::seed_directory(&stack, &seed(&["p-race"]))
        .await
        .unwrap();
    let now = Utc::now();
    let mut readings = vec![
        reading_at(
            "p-race",
            "kiosk-r",
            "spo2",
            85.0,
            now - chrono::Duration::seconds(30),
        ),
        reading_at(
            "p-race",
            "cuff-r",
            "systolic_bp",
            120.0,
            now - chrono::Duration::seconds(9),
        ),
    ];
    readings.extend([8, 7, 6].iter().map(|back| {
        reading_at(
            "p-race",
            "wearable-r",
            "heart_rate",
            118.0,
            now - chrono::Duration::seconds(*back),
        )
    }));
    let ids: Vec<String> = {
        let (status, body) = post(&stack, &json!(readings), Some("race-1")).await;
        assert_eq!(status, 202, "{body}");
        body["eventIds"]
            .as_array()
            .expect("event ids")
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    stack.wait_idle(DRAIN).await.unwrap();
    tokio::time::sleep(Duration::from_secs(LATENESS_SECONDS + 1)).await;

    // Every batch again, and the sweep, at the same time, twice over.
    let batches = stack.invocations("DetectFunction");
    for _ in 0..2 {
        let redeliveries = batches
            .iter()
            .map(|b| stack.invoke("DetectFunction", b.payload.clone()));
        let (outcomes, swept) = tokio::join!(
            futures::future::join_all(redeliveries),
            stack.run_schedule("SweepFunction")
        );
        for outcome in outcomes {
            assert!(batch_item_failures("DetectFunction", &outcome.unwrap()).is_empty());
        }
        assert!(matches!(swept.unwrap(), devstack::InvokeOutcome::Ok(_)));
    }
    stack.wait_idle(DRAIN).await.unwrap();

    let alerts = alerts_of(&stack, "p-race", None).await;
    let mut rules: Vec<&str> = alerts
        .iter()
        .map(|a| a["data"]["ruleId"].as_str().unwrap())
        .collect();
    rules.sort();
    assert_eq!(rules, ["hr-high-3", "spo2-low"], "one alert per episode");
    let routed = inspect::events_of_type(&stack, "AlertRouted")
        .await
        .unwrap();
    assert_eq!(routed.len(), 2);
    // No update lost: the state remembers every reading, and owes no effect (per shard,
    // once the last change is in the snapshot: the sweep writes it when the header is due).
    let recent_ids = |state: &Value| -> Vec<String> {
        state["state"]["recent"]
            .as_array()
            .map(|ids| {
                ids.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let settled = |state: &Value| {
        let recent = recent_ids(state);
        ids.iter().all(|id| recent.contains(id)) && state["state"].get("outbox").is_none()
    };
    let started = Instant::now();
    let state = loop {
        let state = patient_state(&stack, "p-race").await;
        if let Some(state) = state.as_ref().filter(|s| settled(s)) {
            break state.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "p-race's state misses readings or owes effects: {state:?}"
        );
        stack.run_schedule("SweepFunction").await.unwrap();
        stack.wait_idle(DRAIN).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(
        alerts_of(&stack, "p-race", None).await.len(),
        2,
        "no alert raised twice by the sweeps"
    );
    // Nothing is due for detection: only the open hour of recent vitals, at its end plus
    // the flush grace (docs/read-side.md).
    let open_hour = state["state"]["vitals"][0]["s"].as_i64();
    assert_eq!(
        state["dueAt"].as_i64(),
        open_hour.map(|s| s + domain::vitals::HOUR_MS + domain::vitals::FLUSH_GRACE_MS),
        "nothing else is due: {state}"
    );
    for (queue, depth) in inspect::dead_letter_depths(&stack).await.unwrap() {
        assert_eq!(depth, 0, "{queue} is not empty");
    }
    stack.shutdown().await.unwrap();
}
