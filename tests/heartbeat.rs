//! The pipeline heartbeat (issue 13): with `Heartbeat=on`, each beat of `HeartbeatFunction`
//! puts the canary patient's readings on the stream; their alert is raised by detect,
//! routed to the canary recipient, and counted by notify (`HeartbeatDelivered`, the
//! metric of `HeartbeatAlarm`) without an SMS to anyone; it is never escalated, and the
//! next beat raises a new alert.

use std::time::{Duration, Instant};

use devstack::{InvokeOutcome, Stack, inspect};
use domain::canary::{CANARY_PATIENT, CANARY_RECIPIENT};
use e2e::*;
use serde_json::Value;

async fn heartbeat_notifications(stack: &Stack) -> Vec<Value> {
    inspect::events_of_type(stack, "NotificationSent")
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e["data"]["recipientId"] == CANARY_RECIPIENT)
        .collect()
}

/// Waits until `count` heartbeat notifications (alert and cleared) were recorded.
async fn wait_for_notifications(stack: &Stack, count: usize) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let sent = heartbeat_notifications(stack).await;
        if sent.len() >= count {
            return sent;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{} of {count} heartbeat notifications after 60 s: {sent:#?}",
            sent.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The `HeartbeatDelivered` values notify emitted (EMF lines of its log).
fn heartbeat_metric_values(stack: &Stack) -> f64 {
    function_log(stack, "NotifyFunction")
        .iter()
        .filter_map(|line| line.get("HeartbeatDelivered").and_then(Value::as_f64))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_beat_reaches_notify_and_nobody_is_texted_or_escalated() {
    let stack = start_stack_configured("heartbeat", |config| {
        config
            .parameter_overrides
            .insert("Heartbeat".into(), "on".into());
        // SMS through moto's SNS, so a text to anyone would show.
        config
            .parameter_overrides
            .insert("NotificationChannel".into(), "sms".into());
        // Beats only when the test says so.
        config.schedule_interval = Some(Duration::from_secs(3600));
    })
    .await;

    devstack::request_log::start(&stack).await.unwrap();
    let outcome = stack.run_schedule("HeartbeatFunction").await.unwrap();
    // One request per beat, not one per reading.
    let puts: Vec<_> = devstack::request_log::requests(&stack)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.service == "kinesis" && r.is_write())
        .collect();
    assert_eq!(puts.len(), 1, "{puts:?}");
    assert_eq!(puts[0].operation, "PutRecords");
    let InvokeOutcome::Ok(answer) = outcome else {
        panic!("the heartbeat failed: {outcome:?}");
    };
    assert_eq!(answer["readings"], 4, "{answer}");
    // Alert and cleared.
    let first = wait_for_notifications(&stack, 2).await;
    let kinds: Vec<&str> = first
        .iter()
        .filter_map(|e| e["data"]["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"alert") && kinds.contains(&"cleared"),
        "{kinds:?}"
    );

    // The next beat is a new episode: a new alert.
    stack.run_schedule("HeartbeatFunction").await.unwrap();
    let both = wait_for_notifications(&stack, 4).await;
    stack.wait_idle(Duration::from_secs(30)).await.unwrap();
    let raised: Vec<Value> = inspect::events_of_type(&stack, "AlertRaised")
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e["data"]["patientId"] == CANARY_PATIENT)
        .collect();
    assert_eq!(raised.len(), 2, "one alert per beat: {raised:#?}");
    assert_eq!(raised[0]["data"]["severity"], "warning", "no saga starts");
    assert_eq!(both.len(), 4, "{both:#?}");
    assert_eq!(heartbeat_metric_values(&stack), 4.0, "HeartbeatDelivered");

    // Nobody texted, nothing escalated (the local acknowledgement timeout is 5 s and
    // wait_idle waited it out), no emergency, nothing dead-lettered.
    assert_eq!(sms_messages(&stack).await, Vec::<(String, String)>::new());
    for event_type in ["AlertEscalated", "EmergencyStarted"] {
        assert!(
            inspect::events_of_type(&stack, event_type)
                .await
                .unwrap()
                .is_empty(),
            "{event_type}"
        );
    }
    for (queue, depth) in inspect::dead_letter_depths(&stack).await.unwrap() {
        assert_eq!(depth, 0, "{queue}");
    }
}
