//! Given events already applied, when one more arrives, then the view is ...

use chrono::TimeZone;
use serde_json::json;

use super::*;
use crate::recorded::StoredEvent;
use crate::saga::{CloseReason, EmergencyStarted, FamilyStage, Status};

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 8, minute, 0).unwrap()
}

fn recorded(
    stream: &str,
    version: u64,
    event_type: &str,
    data: serde_json::Value,
) -> RecordedEvent {
    RecordedEvent {
        stream_id: stream.to_string(),
        stream_version: version,
        event: StoredEvent {
            event_id: format!("{stream}-{version}"),
            event_type: event_type.to_string(),
            schema_version: 1,
            timestamp: at(version as u32),
            source: "test".into(),
            correlation_id: "corr".into(),
            causation_id: "cause".into(),
            data,
        },
    }
}

fn raised() -> RecordedEvent {
    recorded(
        "alert-a1",
        1,
        "AlertRaised",
        json!({
            "alertId": "a1", "patientId": "p-1", "ruleId": "spo2-low", "alertType": "hypoxemia",
            "severity": "critical", "village": "Bondo", "description": "SpO2 88 %",
            "evidence": [], "detectedAt": at(0),
        }),
    )
}

fn routed() -> RecordedEvent {
    recorded(
        "alert-a1",
        2,
        "AlertRouted",
        json!({"alertId": "a1", "patientId": "p-1", "workerId": "w-1", "notificationId": "n-1"}),
    )
}

fn sent(notification: &str) -> RecordedEvent {
    recorded(
        &format!("notification-{notification}"),
        1,
        "NotificationSent",
        json!({"notificationId": notification, "alertId": "a1", "recipientId": "w-1",
               "channel": "outbox", "providerMessageId": null}),
    )
}

fn resolved() -> RecordedEvent {
    recorded(
        "alert-resolution-a1",
        1,
        "AlertResolved",
        json!({"alertId": "a1", "patientId": "p-1", "ruleId": "spo2-low",
               "alertType": "hypoxemia", "severity": "critical", "episodeStart": at(0),
               "resolvedAt": at(9), "readingEventId": "r-9"}),
    )
}

/// Projects `events` in order onto `view` (or a fresh one), returning what each did.
fn project(view: &mut Option<View>, events: &[RecordedEvent]) -> Vec<Applied> {
    let upcasters = Upcasters::new();
    events
        .iter()
        .map(|e| {
            let projection = classify(&upcasters, e).expect("classifies");
            let view = view.get_or_insert_with(|| projection.empty_view().expect("a view"));
            apply(
                view,
                &e.stream_id,
                e.stream_version,
                e.event.timestamp,
                &projection,
            )
        })
        .collect()
}

fn alert(view: &Option<View>) -> &AlertView {
    match view {
        Some(View::Alert(v)) => v,
        other => panic!("not an alert view: {other:?}"),
    }
}

#[test]
fn an_alert_view_follows_raise_route_notification() {
    let mut view = None;
    let applied = project(&mut view, &[raised(), routed(), sent("n-1")]);
    assert_eq!(applied, [Applied::Changed; 3]);
    let v = alert(&view);
    assert_eq!(v.status(), AlertStatus::Routed);
    assert_eq!(v.routed_to.as_deref(), Some("w-1"));
    assert_eq!(v.notifications_sent, 1);
    assert_eq!(v.severity, Some(Severity::Critical));
    assert_eq!(v.updated_at, Some(at(2)));
    let view = view.unwrap();
    assert_eq!(view.id(), "alert#a1");
    assert_eq!(view.board(), Some(OPEN_BOARD));
    assert_eq!(view.status_text(), "routed");
}

#[test]
fn redelivered_events_change_nothing() {
    let mut view = None;
    project(&mut view, &[raised(), routed(), sent("n-1")]);
    let before = view.clone();
    let applied = project(&mut view, &[routed(), sent("n-1"), raised()]);
    assert_eq!(applied, [Applied::AlreadyApplied; 3]);
    assert_eq!(view, before);
}

#[test]
fn the_order_of_an_alerts_streams_does_not_matter() {
    let mut in_order = None;
    project(
        &mut in_order,
        &[raised(), routed(), sent("n-1"), resolved()],
    );
    let mut reversed = None;
    project(
        &mut reversed,
        &[resolved(), sent("n-1"), raised(), routed()],
    );
    assert_eq!(in_order, reversed);
    assert_eq!(alert(&in_order).status(), AlertStatus::Resolved);
    assert_eq!(
        in_order.unwrap().board(),
        None,
        "resolved alerts leave the board"
    );
}

#[test]
fn a_later_event_of_a_stream_whose_predecessor_is_missing_is_a_gap() {
    let mut view = None;
    let applied = project(&mut view, &[routed()]);
    assert_eq!(applied, [Applied::Gap { expected: 1 }]);
    assert_eq!(alert(&view).status(), AlertStatus::Pending);
}

#[test]
fn a_view_without_its_raise_is_pending_and_off_the_board() {
    let mut view = None;
    project(&mut view, &[sent("n-1")]);
    assert_eq!(alert(&view).status(), AlertStatus::Pending);
    let view = view.unwrap();
    assert_eq!(view.board(), None);
    let summary = summarise([&view]);
    assert_eq!((summary.open_alerts, summary.pending_alerts), (0, 1));
}

#[test]
fn acknowledgement_and_escalation_show_on_the_view() {
    let escalated = recorded(
        "alert-a1",
        3,
        "AlertEscalated",
        json!({"alertId": "a1", "level": 1, "recipientId": "w-2", "notificationId": "n-2"}),
    );
    let acked = recorded(
        "alert-a1",
        4,
        "AlertAcknowledged",
        json!({"alertId": "a1", "acknowledgedBy": "w-2"}),
    );
    let mut view = None;
    project(&mut view, &[raised(), routed(), escalated]);
    assert_eq!(alert(&view).status(), AlertStatus::Escalated);
    assert_eq!(alert(&view).escalated_to.as_deref(), Some("w-2"));
    project(&mut view, &[acked]);
    assert_eq!(alert(&view).status(), AlertStatus::Acknowledged);
    assert_eq!(
        view.unwrap().board(),
        Some(OPEN_BOARD),
        "open until resolved"
    );
}

fn saga(version: u64, event: SagaEvent) -> RecordedEvent {
    recorded(
        "emergency-e1",
        version,
        event.event_type(),
        serde_json::to_value(&event).unwrap(),
    )
}

fn started() -> SagaEvent {
    SagaEvent::EmergencyStarted(EmergencyStarted {
        emergency_id: "e1".into(),
        patient_id: "p-1".into(),
        village: "Bondo".into(),
        reason: "collapse".into(),
        reporter: "w-1".into(),
        ambulance_required: false,
        request_hash: None,
    })
}

#[test]
fn an_emergency_view_folds_the_saga() {
    let mut view = None;
    let applied = project(
        &mut view,
        &[
            saga(1, started()),
            saga(
                2,
                SagaEvent::WorkerAssigned {
                    worker_id: "w-1".into(),
                },
            ),
            saga(
                2,
                SagaEvent::WorkerAssigned {
                    worker_id: "w-1".into(),
                },
            ),
        ],
    );
    assert_eq!(
        applied,
        [Applied::Changed, Applied::Changed, Applied::AlreadyApplied]
    );
    let Some(View::Emergency(v)) = &view else {
        panic!("not an emergency view");
    };
    assert_eq!(v.saga.status, Status::NotifyingWorker);
    assert_eq!(v.saga.worker_id.as_deref(), Some("w-1"));
    assert_eq!(view.as_ref().unwrap().board(), Some(OPEN_BOARD));

    let applied = project(
        &mut view,
        &[
            saga(
                3,
                SagaEvent::WorkerNotified {
                    notification_id: "n-w".into(),
                },
            ),
            saga(
                4,
                SagaEvent::FamilyNotified {
                    notification_id: None,
                    stage: FamilyStage::Dispatched,
                },
            ),
        ],
    );
    assert_eq!(applied, [Applied::Changed, Applied::Changed]);
    // On site: still open.
    assert_eq!(view.as_ref().unwrap().status_text(), "onSite");
    assert_eq!(view.as_ref().unwrap().board(), Some(OPEN_BOARD));

    let applied = project(
        &mut view,
        &[
            saga(
                5,
                SagaEvent::EmergencyClosed {
                    closed_by: "w-1".into(),
                    reason: CloseReason::Closed,
                },
            ),
            saga(
                6,
                SagaEvent::WorkerReleased {
                    worker_id: "w-1".into(),
                },
            ),
            saga(
                7,
                SagaEvent::FamilyNotified {
                    notification_id: None,
                    stage: FamilyStage::Completed,
                },
            ),
        ],
    );
    assert_eq!(applied, [Applied::Changed; 3]);
    let view = view.unwrap();
    assert_eq!(view.status_text(), "completed");
    assert_eq!(view.board(), None);
    let summary = summarise([&view]);
    assert_eq!(summary.active_emergencies, 0);
    assert_eq!(summary.emergencies_by_status["completed"], 1);
}

#[test]
fn an_emergency_event_after_a_gap_is_reported() {
    let mut view = None;
    let applied = project(
        &mut view,
        &[saga(
            2,
            SagaEvent::WorkerAssigned {
                worker_id: "w-1".into(),
            },
        )],
    );
    assert_eq!(applied, [Applied::Gap { expected: 1 }]);
}

#[test]
fn newer_schema_versions_and_malformed_events_are_errors_and_others_are_ignored() {
    let upcasters = Upcasters::new();
    let mut newer = raised();
    newer.event.schema_version = 2;
    assert!(matches!(
        classify(&upcasters, &newer),
        Err(ProjectionError::Upcast(UpcastError::NoPath {
            version: 2,
            ..
        }))
    ));
    let mut saga_newer = saga(1, started());
    saga_newer.event.schema_version = 3;
    assert!(classify(&upcasters, &saga_newer).is_err());

    let mut malformed = raised();
    malformed.event.data = json!({"alertId": 7});
    assert!(classify(&upcasters, &malformed).is_err());
    let broken_saga = recorded(
        "emergency-e1",
        1,
        "EmergencyStarted",
        json!({"type": "Nope"}),
    );
    assert!(matches!(
        classify(&upcasters, &broken_saga),
        Err(ProjectionError::Malformed { .. })
    ));

    let late = recorded("late-r1", 1, "ReadingLate", json!({}));
    assert_eq!(classify(&upcasters, &late), Ok(Projection::Ignored));
    assert_eq!(Projection::Ignored.view_id(), None);
}

#[test]
fn views_survive_a_round_trip_through_json() {
    let mut view = None;
    project(&mut view, &[raised(), routed(), resolved()]);
    let view = view.unwrap();
    let back: View = serde_json::from_value(serde_json::to_value(&view).unwrap()).unwrap();
    assert_eq!(back, view);
}

fn sent_cleared(notification: &str) -> RecordedEvent {
    recorded(
        &format!("notification-{notification}"),
        1,
        "NotificationSent",
        json!({"notificationId": notification, "alertId": "a1", "recipientId": "w-1",
               "channel": "outbox", "providerMessageId": null, "kind": "cleared"}),
    )
}

#[test]
fn a_late_alert_shows_how_late_it_was_and_that_it_needs_a_manual_dispatch() {
    let mut late = raised();
    late.event.data["lateBySeconds"] = json!(5400.0);
    late.event.data["autoDispatch"] = json!(false);
    let mut view = None;
    project(&mut view, &[late]);
    let v = alert(&view);
    assert_eq!(v.late_by_seconds, Some(5400.0));
    assert_eq!(v.auto_dispatch, Some(false));
    let json = serde_json::to_value(view.as_ref().unwrap()).unwrap();
    assert_eq!(json["lateBySeconds"], 5400.0);
    assert_eq!(json["autoDispatch"], false);

    // An alert raised in time (stored before the fields existed): no lateBySeconds.
    let mut view = None;
    project(&mut view, &[raised()]);
    assert_eq!(alert(&view).late_by_seconds, None);
    assert_eq!(alert(&view).auto_dispatch, Some(true));
    let json = serde_json::to_value(view.as_ref().unwrap()).unwrap();
    assert!(json.get("lateBySeconds").is_none(), "{json}");
}

#[test]
fn the_cleared_notification_shows_on_the_view() {
    let mut view = None;
    project(
        &mut view,
        &[
            raised(),
            routed(),
            sent("n-1"),
            resolved(),
            sent_cleared("n-2"),
        ],
    );
    let v = alert(&view);
    assert_eq!(v.status(), AlertStatus::Resolved);
    assert_eq!(v.notifications_sent, 2);
    assert!(v.cleared_notified);

    let mut view = None;
    project(&mut view, &[raised(), routed(), sent("n-1"), resolved()]);
    assert!(
        !alert(&view).cleared_notified,
        "an alert notification is not a cleared one"
    );
}

#[test]
fn an_info_alert_has_a_view_like_any_other() {
    let mut info = raised();
    info.event.data["severity"] = json!("info");
    let mut view = None;
    assert_eq!(project(&mut view, &[info]), [Applied::Changed]);
    assert_eq!(alert(&view).severity, Some(Severity::Info));
    assert_eq!(alert(&view).status(), AlertStatus::Raised);
    assert_eq!(view.unwrap().board(), Some(OPEN_BOARD));
}

#[test]
fn views_stored_before_the_late_and_cleared_fields_still_decode() {
    let stored = json!({
        "kind": "alert", "alertId": "a1", "patientId": "p-1", "village": "Bondo",
        "ruleId": "spo2-low", "severity": "critical", "description": "SpO2 88 %",
        "raisedAt": at(0), "routedTo": "w-1", "notificationsSent": 1, "escalationLevel": 0,
        "escalatedTo": null, "acknowledgedBy": null, "resolvedAt": null, "updatedAt": at(2),
        "applied": {"alert-a1": 2, "notification-n-1": 1},
    });
    let View::Alert(v) = serde_json::from_value::<View>(stored).unwrap() else {
        panic!("not an alert view");
    };
    assert_eq!(v.late_by_seconds, None);
    assert_eq!(v.auto_dispatch, None);
    assert!(!v.cleared_notified);
    assert_eq!(v.notifications_sent, 1);
}
