//! The `project` handler with in-memory adapters: stream records in, views out.

use application::event_store::{Checkpoint, EventStreams, ExpectedVersion};
use application::ports::StoredEvent;
use aws_lambda_events::event::dynamodb::Event;
use chrono::{TimeZone, Utc};
use domain::dashboard::{AlertStatus, View};
use project::{Deps, handle, upcasters};
use serde_json::{Value, json};
use testkit::{MemoryEventStore, MemoryReadModels};

fn stored(event_id: &str, event_type: &str, data: Value) -> StoredEvent {
    StoredEvent {
        event_id: event_id.into(),
        event_type: event_type.into(),
        schema_version: 1,
        timestamp: Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 1).unwrap(),
        source: "test".into(),
        correlation_id: "corr-1".into(),
        causation_id: "cause-1".into(),
        data,
    }
}

fn raised() -> StoredEvent {
    stored(
        "e-raised",
        "AlertRaised",
        json!({
            "alertId": "a1", "patientId": "p-1", "ruleId": "spo2-low", "alertType": "hypoxemia",
            "severity": "critical", "village": "Bondo", "description": "SpO2 88 %",
            "evidence": [], "detectedAt": "2026-11-24T08:00:00Z",
        }),
    )
}

fn routed() -> StoredEvent {
    stored(
        "e-routed",
        "AlertRouted",
        json!({"alertId": "a1", "patientId": "p-1", "workerId": "w-1", "notificationId": "n-1"}),
    )
}

/// The stream record of an event item as the events table writes it.
fn insert(seq: u64, stream: &str, version: u64, event: &StoredEvent) -> Value {
    let image = json!({
        "streamId": stream, "version": version,
        "eventId": event.event_id, "eventType": event.event_type,
        "schemaVersion": event.schema_version, "timestamp": event.timestamp,
        "source": event.source, "correlationId": event.correlation_id,
        "causationId": event.causation_id, "data": event.data,
    });
    record(seq, "INSERT", image)
}

/// The stream record of an event item as the store wrote it before issue 15 (with the global
/// `position` and the index key `allPk`): still projected (docs/event-store.md, migration).
fn legacy_insert(seq: u64, stream: &str, version: u64, event: &StoredEvent) -> Value {
    let mut record = insert(seq, stream, version, event);
    let image = &mut record["dynamodb"]["NewImage"];
    image["position"] = json!({"N": seq.to_string()});
    image["allPk"] = json!({"S": "all"});
    record
}

fn record(seq: u64, event_name: &str, image: Value) -> Value {
    let item: serde_dynamo::Item = serde_dynamo::to_item(image).unwrap();
    json!({
        "eventID": format!("id-{seq}"),
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": 1795507201.0,
            "Keys": {},
            "NewImage": item,
            "SequenceNumber": seq.to_string(),
            "SizeBytes": 100,
            "StreamViewType": "NEW_IMAGE",
        },
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/x",
    })
}

/// The stores a test runs the handler against.
struct World {
    events: MemoryEventStore,
    views: MemoryReadModels,
    upcasters: application::event_store::Upcasters,
    stats: testkit::MemoryVillageStats,
}

impl Default for World {
    fn default() -> World {
        World {
            events: MemoryEventStore::default(),
            views: MemoryReadModels::default(),
            upcasters: upcasters(),
            stats: testkit::MemoryVillageStats::default(),
        }
    }
}

impl World {
    fn deps(&self) -> Deps<'_> {
        Deps {
            events: &self.events,
            views: &self.views,
            upcasters: &self.upcasters,
            stats: &self.stats,
        }
    }
}

fn batch(records: Vec<Value>) -> Event {
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

fn failures(response: &aws_lambda_events::event::streams::DynamoDbEventResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .filter_map(|f| f.item_identifier.clone())
        .collect()
}

fn alert_view(views: &MemoryReadModels) -> domain::dashboard::AlertView {
    match views.get("alert#a1") {
        Some(View::Alert(v)) => v,
        other => panic!("no alert view: {other:?}"),
    }
}

#[tokio::test]
async fn events_become_views_and_other_items_are_skipped() {
    let world = World::default();
    let views = &world.views;
    let deps = world.deps();
    let records = vec![
        record(
            1,
            "MODIFY",
            json!({"streamId": "$all", "version": 0, "position": 2}),
        ),
        insert(2, "alert-a1", 1, &raised()),
        record(
            3,
            "INSERT",
            json!({"streamId": "$event#e-raised", "version": 0, "eventStream": "alert-a1"}),
        ),
        legacy_insert(4, "alert-a1", 2, &routed()),
        insert(5, "late-r1", 1, &stored("e-late", "ReadingLate", json!({}))),
        record(6, "REMOVE", json!({"streamId": "$event#old", "version": 0})),
    ];
    let response = handle(&deps, &batch(records.clone())).await.unwrap();
    assert!(failures(&response).is_empty());
    let view = alert_view(views);
    assert_eq!(view.status(), AlertStatus::Routed);
    assert_eq!(view.routed_to.as_deref(), Some("w-1"));
    assert_eq!(*views.saves.lock().unwrap(), 2);

    // The same batch again (Lambda retried it): nothing is written.
    let response = handle(&deps, &batch(records)).await.unwrap();
    assert!(failures(&response).is_empty());
    assert_eq!(*views.saves.lock().unwrap(), 2);
}

#[tokio::test]
async fn the_batch_stops_at_an_event_newer_than_the_projector() {
    let world = World::default();
    let views = &world.views;
    let deps = world.deps();
    let mut newer = routed();
    newer.schema_version = 2;
    let resolved = stored(
        "e-resolved",
        "AlertResolved",
        json!({"alertId": "a1", "patientId": "p-1", "ruleId": "spo2-low",
               "alertType": "hypoxemia", "severity": "critical",
               "episodeStart": "2026-11-24T08:00:00Z", "resolvedAt": "2026-11-24T08:09:00Z",
               "readingEventId": "r-9"}),
    );
    let response = handle(
        &deps,
        &batch(vec![
            insert(10, "alert-a1", 1, &raised()),
            insert(11, "alert-a1", 2, &newer),
            insert(12, "alert-resolution-a1", 1, &resolved),
        ]),
    )
    .await
    .unwrap();
    assert_eq!(failures(&response), ["11"]);
    let view = alert_view(views);
    assert_eq!(
        view.status(),
        AlertStatus::Raised,
        "the record after the failure did not run"
    );
}

#[tokio::test]
async fn a_view_with_a_gap_catches_up_from_the_store() {
    let world = World::default();
    let (events, views) = (&world.events, &world.views);
    events
        .append("alert-a1", ExpectedVersion::NoStream, &[raised(), routed()])
        .await
        .unwrap();
    let deps = world.deps();
    // Only the second event's record arrives (the first was skipped after failing).
    let response = handle(&deps, &batch(vec![insert(21, "alert-a1", 2, &routed())]))
        .await
        .unwrap();
    assert!(failures(&response).is_empty());
    let view = alert_view(views);
    assert_eq!(view.status(), AlertStatus::Routed);
    assert_eq!(
        view.severity,
        Some(domain::events::Severity::Critical),
        "the raise was read from the store"
    );
    assert_eq!(view.applied["alert-a1"], 2);
}

#[tokio::test]
async fn a_gap_the_store_cannot_fill_is_a_failure() {
    let world = World::default();
    let views = &world.views;
    let deps = world.deps();
    let response = handle(&deps, &batch(vec![insert(31, "alert-a1", 2, &routed())]))
        .await
        .unwrap();
    assert_eq!(failures(&response), ["31"]);
    assert!(views.get("alert#a1").is_none());
}

#[tokio::test]
async fn the_sample_stream_event_projects_the_alert() {
    let text = include_str!("../../../events/samples/dynamodb-events-stream.json");
    let event: Event = serde_json::from_str(text).unwrap();
    let world = World::default();
    let views = &world.views;
    let deps = world.deps();
    let response = handle(&deps, &event).await.unwrap();
    assert!(failures(&response).is_empty());
    let Some(View::Alert(view)) = views.get("alert#a3f1e2d4-1111-5222-8333-944455566677") else {
        panic!("no view");
    };
    assert_eq!(view.status(), AlertStatus::Raised);
    assert_eq!(view.village.as_deref(), Some("Kisumu"));
}

#[tokio::test]
async fn a_replay_of_the_store_rebuilds_the_views_and_resumes_from_its_checkpoint() {
    let world = World::default();
    let (events, views) = (&world.events, &world.views);
    events
        .append("alert-a1", ExpectedVersion::NoStream, &[raised(), routed()])
        .await
        .unwrap();
    events
        .append(
            "late-r1",
            ExpectedVersion::NoStream,
            &[stored("e-late", "ReadingLate", json!({}))],
        )
        .await
        .unwrap();
    let deps = world.deps();

    // A page of 2: the raise and the routing.
    let first = project::rebuild(&deps, &project::Rebuild::from(Checkpoint::start(), 2))
        .await
        .unwrap();
    assert_eq!((first.read, first.projected, first.done), (2, 2, false));
    assert_eq!(alert_view(views).status(), AlertStatus::Routed);
    // The rest from the saved position: the late reading is not on the dashboard.
    let rest = project::rebuild(&deps, &project::Rebuild::from(first.next.clone(), 100))
        .await
        .unwrap();
    assert_eq!((rest.read, rest.projected, rest.done), (1, 0, true));
    // From the start again: every view is up to date, nothing is written.
    let saves = *views.saves.lock().unwrap();
    let again: project::Rebuild = serde_json::from_value(json!({})).unwrap();
    let replay = project::rebuild(&deps, &again).await.unwrap();
    assert_eq!((replay.read, replay.projected), (3, 0));
    assert_eq!(*views.saves.lock().unwrap(), saves);
    // The former request shape: afterPosition 0 is the start, any other is refused.
    let legacy: project::Rebuild = serde_json::from_value(json!({"afterPosition": 0})).unwrap();
    assert_eq!(project::rebuild(&deps, &legacy).await.unwrap().read, 3);
    let stale: project::Rebuild = serde_json::from_value(json!({"afterPosition": 7})).unwrap();
    let err = project::rebuild(&deps, &stale).await.unwrap_err();
    assert!(err.to_string().contains("checkpoint"), "{err}");
}

/// A late critical alert (its readings were uploaded an hour and a half late), routed,
/// resolved, and its worker told it cleared: the view shows how late it was, that it was
/// not auto-dispatched, and the cleared notification.
#[tokio::test]
async fn a_late_alert_and_its_cleared_notification_show_on_the_view() {
    let world = World::default();
    let deps = world.deps();
    let mut late = raised();
    late.data["lateBySeconds"] = json!(5400.0);
    late.data["autoDispatch"] = json!(false);
    let sent = |id: &str, kind: &str| {
        stored(
            &format!("e-sent-{id}"),
            "NotificationSent",
            json!({"notificationId": id, "alertId": "a1", "recipientId": "w-1",
                   "channel": "outbox", "providerMessageId": null, "kind": kind}),
        )
    };
    let resolved = stored(
        "e-resolved",
        "AlertResolved",
        json!({"alertId": "a1", "patientId": "p-1", "ruleId": "spo2-low",
               "alertType": "hypoxemia", "severity": "critical",
               "episodeStart": "2026-11-24T08:00:00Z", "resolvedAt": "2026-11-24T08:09:00Z",
               "readingEventId": "r-9"}),
    );
    let response = handle(
        &deps,
        &batch(vec![
            insert(1, "alert-a1", 1, &late),
            insert(2, "alert-a1", 2, &routed()),
            insert(3, "notification-n-1", 1, &sent("n-1", "alert")),
            insert(4, "alert-resolution-a1", 1, &resolved),
            insert(5, "notification-n-2", 1, &sent("n-2", "cleared")),
        ]),
    )
    .await
    .unwrap();
    assert!(failures(&response).is_empty());
    let view = alert_view(&world.views);
    assert_eq!(view.status(), AlertStatus::Resolved);
    assert_eq!(view.late_by_seconds, Some(5400.0));
    assert_eq!(view.auto_dispatch, Some(false));
    assert_eq!(view.notifications_sent, 2);
    assert!(view.cleared_notified);
}

/// Info alerts are not notified, but the dashboard shows them (it reads the events table).
#[tokio::test]
async fn an_info_alert_is_projected_like_any_other() {
    let world = World::default();
    let deps = world.deps();
    let mut info = raised();
    info.data["severity"] = json!("info");
    let response = handle(&deps, &batch(vec![insert(1, "alert-a1", 1, &info)]))
        .await
        .unwrap();
    assert!(failures(&response).is_empty());
    let view = alert_view(&world.views);
    assert_eq!(view.severity, Some(domain::events::Severity::Info));
    assert_eq!(view.status(), AlertStatus::Raised);
    assert_eq!(view.notifications_sent, 0);
}

#[tokio::test]
async fn village_statistics_count_each_alert_acknowledgement_and_emergency_once() {
    let world = World::default();
    let deps = world.deps();
    let mut ack = stored(
        "e-ack",
        "AlertAcknowledged",
        json!({"alertId": "a1", "acknowledgedBy": "w-1"}),
    );
    // Acknowledged 4 min 1 s after the reading that raised it: the 600 s bucket.
    ack.timestamp = Utc.with_ymd_and_hms(2026, 11, 24, 8, 4, 1).unwrap();
    let started = stored(
        "e-started",
        "EmergencyStarted",
        json!({"type": "EmergencyStarted", "emergencyId": "em-1", "patientId": "p-1",
               "village": "Bondo", "reason": "r", "reporter": "alert:a1",
               "ambulanceRequired": true}),
    );
    let records = vec![
        insert(1, "alert-a1", 1, &raised()),
        insert(2, "alert-a1", 2, &routed()),
        insert(3, "alert-a1", 3, &ack),
        insert(4, "emergency-em-1", 1, &started),
    ];
    let response = handle(&deps, &batch(records.clone())).await.unwrap();
    assert!(failures(&response).is_empty());
    // Redelivered: nothing counted twice.
    let response = handle(&deps, &batch(records)).await.unwrap();
    assert!(failures(&response).is_empty());
    let days = world.stats.days.lock().unwrap().clone();
    let counters = &days[&("Bondo".to_string(), "2026-11-24".to_string())];
    let day = domain::village_stats::DayStats::from_counters("2026-11-24", counters);
    assert_eq!(day.alerts_by_severity["critical"], 1);
    assert_eq!(day.alerts_by_type["spo2-low"], 1);
    assert_eq!(day.emergencies, 1, "{counters:?}");
    assert_eq!(day.median_ack_seconds, Some(300));
    assert_eq!(counters["alerts"], 1);
}
