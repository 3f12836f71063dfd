//! End-to-end tests of the alert policy of issue 10 on the local stack (moto + the real
//! function binaries): a resolved alert sends its worker one `cleared` notification; info
//! alerts reach only the dashboard; a late critical alert (dispatch = manual) starts no
//! emergency saga. Envelopes are appended to the events table and published to the alerts
//! topic with the attributes detect gives them, so the subscriptions' filter policies
//! decide where they go. Assertions read the emulator's tables and the functions' journals.

use application::ports::{EventStore, StoredEvent};
use aws_adapters::DynamoEventStore;
use aws_sdk_sns::types::MessageAttributeValue;
use chrono::Utc;
use devstack::{Stack, inspect};
use domain::envelope::{Envelope, EventData, Lineage};
use domain::escalation::Worker;
use domain::events::{
    AlertRaised, AlertResolved, NotificationKind, Severity, alert_resolution_stream, alert_stream,
};
use domain::routing::notification_id;
use domain::saga::{emergency_id_for_alert, emergency_stream};
use e2e::*;
use serde_json::Value;
use testkit::fixtures::{self, AlertRaisedFixture};

fn lineage(correlation_id: &str) -> Lineage {
    Lineage {
        correlation_id: correlation_id.into(),
        causation_id: "reading-1".into(),
    }
}

/// An alert as detect raises it (`late_by_seconds` set: raised late, for manual dispatch).
fn raised(
    alert_id: &str,
    patient: &str,
    severity: Severity,
    late_by_seconds: Option<f64>,
) -> Envelope<AlertRaised> {
    let (alert_type, rule_id) = match severity {
        Severity::Critical => ("hypoxemia", "spo2-low"),
        Severity::Warning => ("tachycardia", "hr-high-3"),
        Severity::Info => ("spo2_signal_lost", "spo2-missing"),
    };
    let mut alert = fixtures::alert_raised(patient)
        .with_id(alert_id)
        .with_severity(severity)
        .with_rule(rule_id, alert_type, &format!("{alert_type} (test)"));
    if let Some(seconds) = late_by_seconds {
        alert = alert.raised_late(seconds);
    }
    fixtures::from_detect(format!("evt-{alert_id}"), format!("corr-{alert_id}"), alert)
}

/// detect found that the alert's condition no longer holds.
fn resolution(alert: &Envelope<AlertRaised>) -> Envelope<AlertResolved> {
    let a = &alert.data;
    Envelope::new(
        format!("resolved-{}", a.alert_id),
        "detect",
        lineage(&alert.correlation_id),
        Utc::now(),
        AlertResolved {
            alert_id: a.alert_id.clone(),
            patient_id: a.patient_id.clone(),
            rule_id: a.rule_id.clone(),
            alert_type: a.alert_type.clone(),
            severity: a.severity,
            episode_start: a.detected_at,
            resolved_at: a.detected_at + chrono::Duration::minutes(12),
            reading_event_id: "reading-12".into(),
        },
    )
}

/// Appends an event to the events table as detect does before publishing it.
async fn store<T: EventData + serde::Serialize>(stack: &Stack, stream: &str, event: &Envelope<T>) {
    let table = stack.resource("EventsTable").unwrap().ref_value.clone();
    DynamoEventStore::new(stack.sdk_config(), table)
        .append(stream, 0, &StoredEvent::from_envelope(event).unwrap())
        .await
        .unwrap();
}

fn attribute(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .unwrap()
}

/// Publishes an envelope to the alerts topic with these message attributes.
async fn publish<T: serde::Serialize>(stack: &Stack, envelope: &T, attributes: &[(&str, &str)]) {
    let topic = stack.resource("AlertsTopic").unwrap().ref_value.clone();
    let mut request = aws_sdk_sns::Client::new(stack.sdk_config())
        .publish()
        .topic_arn(topic)
        .message(serde_json::to_string(envelope).unwrap());
    for (name, value) in attributes {
        request = request.message_attributes(*name, attribute(value));
    }
    request.send().await.expect("SNS Publish");
}

/// The attributes detect gives an `AlertRaised`.
async fn publish_raised(stack: &Stack, alert: &Envelope<AlertRaised>) {
    let a = &alert.data;
    publish(
        stack,
        alert,
        &[
            ("eventType", "AlertRaised"),
            ("severity", a.severity.as_str()),
            ("alertType", &a.alert_type),
            ("village", &a.village),
            ("correlationId", &alert.correlation_id),
            ("dispatch", a.dispatch()),
        ],
    )
    .await;
}

/// The attributes detect gives an `AlertResolved`.
async fn publish_resolved(stack: &Stack, resolved: &Envelope<AlertResolved>) {
    let r = &resolved.data;
    publish(
        stack,
        resolved,
        &[
            ("eventType", "AlertResolved"),
            ("severity", r.severity.as_str()),
            ("alertType", &r.alert_type),
            ("correlationId", &resolved.correlation_id),
        ],
    )
    .await;
}

/// Stores and publishes an alert, as detect does.
async fn raise(stack: &Stack, alert: &Envelope<AlertRaised>) {
    store(stack, &alert_stream(&alert.data.alert_id), alert).await;
    publish_raised(stack, alert).await;
}

/// Stores and publishes a resolution, as detect does.
async fn resolve(stack: &Stack, resolved: &Envelope<AlertResolved>) {
    store(
        stack,
        &alert_resolution_stream(&resolved.data.alert_id),
        resolved,
    )
    .await;
    publish_resolved(stack, resolved).await;
}

async fn settle(stack: &Stack) {
    stack.wait_idle(DRAIN).await.unwrap();
}

async fn outbox(stack: &Stack) -> Vec<Value> {
    inspect::scan(stack, "OutboxTable").await.unwrap()
}

fn rows_of<'a>(rows: &'a [Value], alert_id: &str) -> Vec<&'a Value> {
    rows.iter().filter(|r| r["alertId"] == alert_id).collect()
}

/// Whether any SQS message a function received (from any queue) mentions `text`.
fn received(stack: &Stack, function: &str, text: &str) -> bool {
    stack.invocations(function).iter().any(|record| {
        record.payload["Records"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|m| m["body"].as_str().is_some_and(|b| b.contains(text)))
    })
}

/// Whether `function` was handed a message from the queue `queue_logical_id` mentioning
/// `text`.
fn received_from(stack: &Stack, function: &str, queue_logical_id: &str, text: &str) -> bool {
    let arn = stack
        .resource(queue_logical_id)
        .unwrap()
        .arn
        .clone()
        .unwrap();
    stack.invocations(function).iter().any(|record| {
        record.payload["Records"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|m| {
                m["eventSourceARN"] == arn.as_str()
                    && m["body"].as_str().is_some_and(|b| b.contains(text))
            })
    })
}

async fn dashboard_view(stack: &Stack, alert_id: &str) -> Value {
    dashboard_item(stack, &format!("alert#{alert_id}"))
        .await
        .unwrap_or_else(|| panic!("no dashboard view of alert {alert_id}"))
}

async fn assert_no_dead_letters(stack: &Stack) {
    for (queue, depth) in inspect::dead_letter_depths(stack).await.unwrap() {
        assert_eq!(depth, 0, "{queue} is not empty");
    }
}

/// A warning alert is routed and notified; when it resolves, its worker gets a second,
/// `cleared` notification with its own id, and the alert's own outbox row is untouched.
/// A repeated resolution sends nothing more; one for a patient nobody looks after is
/// dropped without a retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolved_alert_sends_its_worker_one_cleared_notification() {
    let stack = start_stack_with("alert_cleared", &[("AckTimeoutSeconds", "2")]).await;
    inspect::seed_directory(&stack, &[entry("p-1", "w-01", "+254700000401")])
        .await
        .unwrap();
    let alert = raised("a-warn-1", "p-1", Severity::Warning, None);
    raise(&stack, &alert).await;
    settle(&stack).await;
    let rows = outbox(&stack).await;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    let original = rows[0].clone();
    assert_eq!(original["kind"], "alert");
    assert_eq!(original["status"], "sent");
    assert_eq!(
        original["notificationId"],
        notification_id("a-warn-1", "w-01", NotificationKind::Alert)
    );

    let resolved = resolution(&alert);
    resolve(&stack, &resolved).await;
    settle(&stack).await;
    let rows = outbox(&stack).await;
    assert_eq!(rows.len(), 2, "{rows:#?}");
    let now_original = rows
        .iter()
        .find(|r| r["notificationId"] == original["notificationId"])
        .expect("the alert's row is still there");
    assert_eq!(now_original, &original, "the alert's row is untouched");
    let cleared = rows
        .iter()
        .find(|r| r["kind"] == "cleared")
        .expect("a cleared row");
    assert_eq!(
        cleared["notificationId"],
        notification_id("a-warn-1", "w-01", NotificationKind::Cleared)
    );
    assert_ne!(cleared["notificationId"], original["notificationId"]);
    assert_eq!(cleared["alertId"], "a-warn-1");
    assert_eq!(cleared["recipientPhone"], "+254700000401");
    assert_eq!(cleared["status"], "sent");
    assert_eq!(cleared["correlationId"], "corr-a-warn-1");
    let message = cleared["message"].as_str().unwrap();
    assert!(
        message.starts_with("Cleared: Patient p-1's tachycardia alert from 2026-11-24 08:00 UTC"),
        "{message}"
    );
    let sent = inspect::events_of_type(&stack, "NotificationSent")
        .await
        .unwrap();
    let mut kinds: Vec<&str> = sent
        .iter()
        .map(|e| e["data"]["kind"].as_str().unwrap())
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["alert", "cleared"]);

    // The dashboard: resolved, two notifications, the cleared one among them.
    let view = dashboard_view(&stack, "a-warn-1").await;
    assert_eq!(view["status"], "resolved", "{view}");
    assert_eq!(view["view"]["notificationsSent"], 2, "{view}");
    assert_eq!(view["view"]["clearedNotified"], true, "{view}");

    // The resolution again (published twice, and every route batch redelivered): no
    // second cleared notification, not even a second attempt at one.
    publish_resolved(&stack, &resolved).await;
    settle(&stack).await;
    for record in stack.invocations("RouteFunction") {
        let outcome = stack
            .invoke("RouteFunction", record.payload.clone())
            .await
            .unwrap();
        assert_eq!(
            batch_item_failures("RouteFunction", &outcome),
            Vec::<String>::new()
        );
    }
    settle(&stack).await;
    let rows = outbox(&stack).await;
    assert_eq!(rows.len(), 2, "{rows:#?}");
    let cleared_again = rows.iter().find(|r| r["kind"] == "cleared").unwrap();
    assert_eq!(cleared_again["attempts"], 1, "{cleared_again}");

    // A resolution for a patient with no directory entry: acknowledged and dropped.
    let stranger = raised("a-warn-9", "p-9", Severity::Warning, None);
    store(&stack, &alert_stream("a-warn-9"), &stranger).await;
    let stranger_resolved = resolution(&stranger);
    resolve(&stack, &stranger_resolved).await;
    settle(&stack).await;
    assert!(received(&stack, "RouteFunction", "resolved-a-warn-9"));
    for record in stack.invocations("RouteFunction") {
        assert_eq!(
            batch_item_failures("RouteFunction", &record.outcome),
            Vec::<String>::new()
        );
    }
    assert_eq!(outbox(&stack).await.len(), 2);
    assert_no_dead_letters(&stack).await;
    stack.shutdown().await.unwrap();
}

/// An info alert and its resolution reach no queue but the dashboard's source (the events
/// table): nothing is routed, sent or escalated. A warning alert published alongside goes
/// everywhere it should (the filter policies do let alerts through).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_alerts_reach_only_the_dashboard() {
    let stack = start_stack_with("alert_info", &[("AckTimeoutSeconds", "2")]).await;
    inspect::seed_directory(&stack, &[entry("p-1", "w-01", "+254700000401")])
        .await
        .unwrap();
    let info = raised("a-info-1", "p-1", Severity::Info, None);
    raise(&stack, &info).await;
    resolve(&stack, &resolution(&info)).await;
    let control = raised("a-warn-2", "p-1", Severity::Warning, None);
    raise(&stack, &control).await;
    settle(&stack).await;

    // The warning alert was routed, notified and checked for acknowledgement.
    assert!(received(&stack, "RouteFunction", "a-warn-2"));
    assert!(received_from(
        &stack,
        "EmergencyCoordinatorFunction",
        "EscalationQueue",
        "a-warn-2"
    ));
    // The info alert reached none of the queues.
    assert!(!received(&stack, "RouteFunction", "a-info-1"));
    assert!(!received(
        &stack,
        "EmergencyCoordinatorFunction",
        "a-info-1"
    ));
    for queue in ["RouteQueue", "EscalationQueue", "EmergencyQueue"] {
        assert_eq!(
            inspect::queue_depth(&stack, queue).await.unwrap(),
            0,
            "{queue}"
        );
    }
    let rows = outbox(&stack).await;
    assert!(rows_of(&rows, "a-info-1").is_empty(), "{rows:#?}");
    assert_eq!(rows_of(&rows, "a-warn-2").len(), 1, "{rows:#?}");
    let routed = inspect::events_of_type(&stack, "AlertRouted")
        .await
        .unwrap();
    assert!(routed.iter().all(|e| e["data"]["alertId"] != "a-info-1"));

    // The dashboard shows it (projected from the events table).
    let view = dashboard_view(&stack, "a-info-1").await;
    assert_eq!(view["view"]["severity"], "info", "{view}");
    assert_eq!(view["status"], "resolved", "{view}");
    assert_eq!(view["view"]["notificationsSent"], 0, "{view}");
    assert!(view["view"]["routedTo"].is_null(), "{view}");
    assert_no_dead_letters(&stack).await;
    stack.shutdown().await.unwrap();
}

/// Three critical alerts: one raised late (dispatch = manual), one in time (dispatch =
/// auto), one published without a dispatch attribute (as before the attribute existed).
/// All three are routed to their workers; only the manual one starts no emergency saga.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_critical_alert_starts_no_saga_and_a_timely_one_does() {
    let stack = start_stack_with("alert_dispatch", &[("AckTimeoutSeconds", "2")]).await;
    inspect::seed_directory(
        &stack,
        &[
            entry("p-1", "w-01", "+254700000401"),
            entry("p-2", "w-02", "+254700000402"),
            entry("p-3", "w-03", "+254700000403"),
        ],
    )
    .await
    .unwrap();
    let workers: Vec<Worker> = ["w-01", "w-02", "w-03"]
        .iter()
        .map(|id| Worker {
            worker_id: id.to_string(),
            name: format!("Worker {id}"),
            phone: format!("+2547000004{}", &id[2..]),
            village: "Bondo".into(),
            available: true,
            reserved_by: None,
            language: "en".into(),
        })
        .collect();
    inspect::seed_workers(&stack, &workers).await.unwrap();

    let manual = raised("a-crit-late", "p-1", Severity::Critical, Some(5_400.0));
    assert_eq!(manual.data.dispatch(), "manual");
    raise(&stack, &manual).await;
    let auto = raised("a-crit-now", "p-2", Severity::Critical, None);
    assert_eq!(auto.data.dispatch(), "auto");
    raise(&stack, &auto).await;
    let legacy = raised("a-crit-legacy", "p-3", Severity::Critical, None);
    store(&stack, &alert_stream("a-crit-legacy"), &legacy).await;
    publish(
        &stack,
        &legacy,
        &[
            ("eventType", "AlertRaised"),
            ("severity", "critical"),
            ("alertType", "hypoxemia"),
            ("village", "Bondo"),
            ("correlationId", "corr-a-crit-legacy"),
        ],
    )
    .await;
    settle(&stack).await;

    let started = inspect::events_of_type(&stack, "EmergencyStarted")
        .await
        .unwrap();
    let mut streams: Vec<&str> = started
        .iter()
        .map(|e| e["streamId"].as_str().unwrap())
        .collect();
    streams.sort();
    let mut expected = [
        emergency_stream(&emergency_id_for_alert("a-crit-now")),
        emergency_stream(&emergency_id_for_alert("a-crit-legacy")),
    ];
    expected.sort();
    assert_eq!(streams, expected, "{started:#?}");
    assert!(!received_from(
        &stack,
        "EmergencyCoordinatorFunction",
        "EmergencyQueue",
        "a-crit-late"
    ));
    assert!(received_from(
        &stack,
        "EmergencyCoordinatorFunction",
        "EmergencyQueue",
        "a-crit-now"
    ));

    // Every one of them was routed: the late one's worker is told and decides.
    let rows = outbox(&stack).await;
    for alert_id in ["a-crit-late", "a-crit-now", "a-crit-legacy"] {
        let to_worker: Vec<_> = rows_of(&rows, alert_id)
            .into_iter()
            .filter(|r| r["kind"] == "alert")
            .collect();
        assert_eq!(to_worker.len(), 1, "{alert_id}: {rows:#?}");
    }
    let view = dashboard_view(&stack, "a-crit-late").await;
    assert_eq!(view["view"]["lateBySeconds"], 5_400.0, "{view}");
    assert_eq!(view["view"]["autoDispatch"], false, "{view}");
    let view = dashboard_view(&stack, "a-crit-now").await;
    assert!(view["view"].get("lateBySeconds").is_none(), "{view}");
    assert_eq!(view["view"]["autoDispatch"], true, "{view}");
    assert_no_dead_letters(&stack).await;
    stack.shutdown().await.unwrap();
}
