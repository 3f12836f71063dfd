//! The query API's route logic with in-memory adapters: filters and index choice, paging
//! and cursors, ETag/304, and who reads what (docs/security.md).

use std::collections::HashMap;

use application::event_store::{EventStreams, ExpectedVersion};
use application::ports::ReadModels;
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::HeaderValue;
use aws_lambda_events::query_map::QueryMap;
use chrono::{DateTime, Duration, TimeZone, Utc};
use domain::dashboard::{AlertView, EmergencyStep, EmergencyView, View};
use domain::escalation::{AlertAcknowledged, VillageRoster};
use domain::events::{AlertRouted, Severity};
use domain::recorded::StoredEvent;
use domain::saga::{EmergencyStarted, Status};
use domain::upcast::Upcasters;
use query::{Deps, handle};
use serde_json::{Value, json};
use testkit::fixtures::{
    AlertRaisedFixture, DirectoryEntryFixture, alert_envelope, alert_raised, directory_entry,
    from_detect,
};
use testkit::http::request_with_claims;
use testkit::{MemoryDirectory, MemoryEventStore, MemoryReadModels};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap()
}

struct World {
    views: MemoryReadModels,
    events: MemoryEventStore,
    directory: MemoryDirectory,
    upcasters: Upcasters,
}

impl World {
    fn deps(&self) -> Deps<'_> {
        Deps {
            views: &self.views,
            models: &self.views,
            events: &self.events,
            access: &self.directory,
            upcasters: &self.upcasters,
        }
    }
}

fn alert(id: &str, patient: &str, village: &str, minutes: i64, severity: Severity) -> AlertView {
    let mut v = AlertView::new(id);
    v.patient_id = Some(patient.into());
    v.village = Some(village.into());
    v.severity = Some(severity);
    v.rule_id = Some("spo2-low".into());
    v.description = Some("spo2 below 90 %".into());
    v.raised_at = Some(t0() + Duration::minutes(minutes));
    v
}

fn routed(mut v: AlertView, worker: &str) -> AlertView {
    v.routed_to = Some(worker.into());
    v
}

/// Bondo (roster w-1, w-2; supervisor s-1): p-1 (w-1), p-2 (w-2). Kibera (roster w-3;
/// supervisor s-2): p-3 (w-3). Alerts newest last: a-1 (p-1, routed w-1, critical), a-2
/// (p-2, routed w-2, warning), a-3 (p-3, routed w-3, critical), a-4 (p-1, acknowledged by
/// w-1, warning), a-5 (p-1, resolved, info). Emergencies: e-1 (p-1, on site), e-2 (p-3,
/// completed).
async fn world() -> World {
    let directory = MemoryDirectory::with([
        directory_entry("p-1", "w-1", "+254700000001"),
        directory_entry("p-2", "w-2", "+254700000002"),
        directory_entry("p-3", "w-3", "+254700000003").in_village("Kibera"),
    ])
    .with_roster(VillageRoster {
        village: "Bondo".into(),
        worker_ids: vec!["w-1".into(), "w-2".into()],
        supervisor_id: "s-1".into(),
    })
    .with_roster(VillageRoster {
        village: "Kibera".into(),
        worker_ids: vec!["w-3".into()],
        supervisor_id: "s-2".into(),
    });
    let views = MemoryReadModels::default();
    let mut a4 = routed(alert("a-4", "p-1", "Bondo", 3, Severity::Warning), "w-1");
    a4.acknowledged_by = Some("w-1".into());
    let mut a5 = routed(alert("a-5", "p-1", "Bondo", 4, Severity::Info), "w-1");
    a5.resolved_at = Some(t0() + Duration::minutes(30));
    let alerts = [
        routed(alert("a-1", "p-1", "Bondo", 0, Severity::Critical), "w-1"),
        routed(alert("a-2", "p-2", "Bondo", 1, Severity::Warning), "w-2"),
        routed(alert("a-3", "p-3", "Kibera", 2, Severity::Critical), "w-3"),
        a4,
        a5,
    ];
    for a in alerts {
        views.save(0, &View::Alert(a)).await.unwrap();
    }
    for (id, patient, village, status, minutes) in [
        ("e-1", "p-1", "Bondo", Status::OnSite, 5),
        ("e-2", "p-3", "Kibera", Status::Completed, 6),
    ] {
        let mut e = EmergencyView::new(id);
        e.saga.status = status;
        e.saga.started = Some(EmergencyStarted {
            emergency_id: id.into(),
            patient_id: patient.into(),
            village: village.into(),
            reason: "fainted".into(),
            reporter: "alert:a-1".into(),
            ambulance_required: false,
            request_hash: None,
        });
        let at = t0() + Duration::minutes(minutes);
        e.updated_at = Some(at);
        e.steps = vec![EmergencyStep {
            at,
            step: "EmergencyStarted".into(),
            outcome: "started by alert:a-1".into(),
        }];
        views.save(0, &View::Emergency(e)).await.unwrap();
    }
    World {
        views,
        events: MemoryEventStore::default(),
        directory,
        upcasters: Upcasters::default(),
    }
}

fn person(id: &str, group: &str) -> Value {
    json!({"username": id, "cognito:groups": format!("[{group}]")})
}

fn get(
    claims: Value,
    route: &str,
    path_id: Option<&str>,
    query: &[(&str, &str)],
) -> ApiGatewayV2httpRequest {
    let mut request = request_with_claims("GET", claims);
    request.route_key = Some(route.into());
    if let Some(id) = path_id {
        request.path_parameters.insert("id".into(), id.into());
    }
    let params: HashMap<String, String> = query
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    request.query_string_parameters = QueryMap::from(params);
    request
}

fn body(response: &ApiGatewayV2httpResponse) -> Value {
    match &response.body {
        Some(Body::Text(text)) => serde_json::from_str(text).unwrap(),
        None => Value::Null,
        other => panic!("unexpected body {other:?}"),
    }
}

async fn call(w: &World, request: ApiGatewayV2httpRequest) -> (i64, Value) {
    let response = handle(&w.deps(), &request).await;
    let b = body(&response);
    (response.status_code, b)
}

fn ids(body: &Value, field: &str) -> Vec<String> {
    body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items in {body}"))
        .iter()
        .map(|i| i[field].as_str().unwrap().to_string())
        .collect()
}

fn operator() -> Value {
    person("op-1", "operator")
}

#[tokio::test]
async fn an_operator_pages_through_every_alert_newest_first() {
    let w = world().await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut query = vec![("limit", "2")];
        if let Some(c) = &cursor {
            query.push(("cursor", c.as_str()));
        }
        let (status, body) = call(&w, get(operator(), "GET /alerts", None, &query)).await;
        assert_eq!(status, 200, "{body}");
        pages += 1;
        seen.extend(ids(&body, "alertId"));
        match body["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, ["a-5", "a-4", "a-3", "a-2", "a-1"]);
    assert_eq!(pages, 3);
}

#[tokio::test]
async fn filters_combine_on_the_most_selective_index() {
    let w = world().await;
    let list = async |query: &[(&str, &str)]| {
        let (status, body) = call(&w, get(operator(), "GET /alerts", None, query)).await;
        assert_eq!(status, 200, "{body}");
        ids(&body, "alertId")
    };
    assert_eq!(
        list(&[("status", "routed"), ("village", "Bondo")]).await,
        ["a-2", "a-1"]
    );
    assert_eq!(list(&[("severity", "critical")]).await, ["a-3", "a-1"]);
    assert_eq!(list(&[("worker", "w-1")]).await, ["a-5", "a-4", "a-1"]);
    assert_eq!(
        list(&[("worker", "w-1"), ("status", "acknowledged")]).await,
        ["a-4"]
    );
    assert_eq!(list(&[("village", "Nowhere")]).await, Vec::<String>::new());
    // A page whose filter keeps one item per index page still fills (limit 1, two items).
    let (_, body) = call(
        &w,
        get(
            operator(),
            "GET /alerts",
            None,
            &[("severity", "critical"), ("limit", "1")],
        ),
    )
    .await;
    assert_eq!(ids(&body, "alertId"), ["a-3"]);
    let next = body["nextCursor"].as_str().unwrap().to_string();
    let (_, body) = call(
        &w,
        get(
            operator(),
            "GET /alerts",
            None,
            &[("severity", "critical"), ("limit", "1"), ("cursor", &next)],
        ),
    )
    .await;
    assert_eq!(ids(&body, "alertId"), ["a-1"]);
    assert_eq!(body["nextCursor"], Value::Null);
}

#[tokio::test]
async fn each_role_lists_only_its_own_patients_alerts() {
    let w = world().await;
    let list = async |claims: Value| {
        let (status, body) = call(&w, get(claims, "GET /alerts", None, &[])).await;
        assert_eq!(status, 200, "{body}");
        ids(&body, "alertId")
    };
    assert_eq!(
        list(person("s-1", "supervisor")).await,
        ["a-5", "a-4", "a-2", "a-1"]
    );
    assert_eq!(list(person("s-2", "supervisor")).await, ["a-3"]);
    assert_eq!(list(person("w-3", "health-worker")).await, ["a-3"]);
    // w-2 is on Bondo's roster: every Bondo patient's alerts.
    assert_eq!(
        list(person("w-2", "health-worker")).await,
        ["a-5", "a-4", "a-2", "a-1"]
    );
    let device = json!({"client_id": "kiosk-3", "sub": "kiosk-3"});
    let (status, body) = call(&w, get(device, "GET /alerts", None, &[])).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("Forbidden")));
    let (status, _) = call(&w, get(json!({}), "GET /alerts", None, &[])).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_workers_inbox_holds_what_waits_for_them_and_is_theirs_alone() {
    let w = world().await;
    let inbox = async |claims: Value, worker: &str| {
        call(
            &w,
            get(claims, "GET /workers/{id}/inbox", Some(worker), &[]),
        )
        .await
    };
    let (status, body) = inbox(person("w-1", "health-worker"), "w-1").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids(&body, "alertId"), ["a-1"]);
    assert_eq!(body["items"][0]["status"], "routed");
    assert_eq!(body["items"][0]["routedTo"], "w-1");
    let (status, body) = inbox(person("w-1", "health-worker"), "w-2").await;
    assert_eq!(status, 403, "{body}");
    assert!(body["message"].as_str().unwrap().contains("own inbox"));
    let (_, body) = inbox(person("s-1", "supervisor"), "w-2").await;
    assert_eq!(ids(&body, "alertId"), ["a-2"]);
    let (_, body) = inbox(person("s-2", "supervisor"), "w-2").await;
    assert_eq!(ids(&body, "alertId"), Vec::<String>::new());
    let (_, body) = inbox(operator(), "w-3").await;
    assert_eq!(ids(&body, "alertId"), ["a-3"]);
}

#[tokio::test]
async fn bad_limits_cursors_and_filters_are_400s() {
    let w = world().await;
    let inbox_cursor = {
        let (_, body) = call(
            &w,
            get(
                operator(),
                "GET /workers/{id}/inbox",
                Some("w-1"),
                &[("limit", "1")],
            ),
        )
        .await;
        assert_eq!(body["nextCursor"], Value::Null, "one item: no next page");
        query::paging::encode_cursor(
            &query::paging::Listing {
                index: application::views::ViewIndex::Inbox,
                partition: "w-1".into(),
            },
            &[
                ("viewId", "alert#a-1"),
                ("inbox", "w-1"),
                ("since", "2026-11-24T08:00:00.000000Z"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        )
    };
    for (query, code) in [
        (vec![("limit", "0")], "InvalidLimit"),
        (vec![("limit", "101")], "InvalidLimit"),
        (vec![("limit", "ten")], "InvalidLimit"),
        (vec![("cursor", "not-a-cursor")], "InvalidCursor"),
        (vec![("cursor", inbox_cursor.as_str())], "InvalidCursor"),
        (vec![("status", "lost")], "InvalidParameter"),
        (vec![("severity", "high")], "InvalidParameter"),
    ] {
        let (status, body) = call(&w, get(operator(), "GET /alerts", None, &query)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some(code)),
            "{query:?}: {body}"
        );
        assert!(body["correlationId"].is_string());
    }
    let (status, body) = call(
        &w,
        get(
            operator(),
            "GET /emergencies",
            None,
            &[("status", "onSite")],
        ),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("InvalidParameter"))
    );
}

#[tokio::test]
async fn a_matching_if_none_match_is_a_304_without_body() {
    let w = world().await;
    let request = get(operator(), "GET /alerts", None, &[("limit", "2")]);
    let first = handle(&w.deps(), &request).await;
    assert_eq!(first.status_code, 200);
    let etag = first.headers["etag"].to_str().unwrap().to_string();
    assert!(etag.starts_with('"') && etag.len() == 34, "{etag}");
    assert_eq!(first.headers["cache-control"], "private, max-age=5");
    let mut again = request.clone();
    again
        .headers
        .insert("if-none-match", HeaderValue::from_str(&etag).unwrap());
    let second = handle(&w.deps(), &again).await;
    assert_eq!(second.status_code, 304);
    assert!(second.body.is_none());
    assert_eq!(second.headers["etag"].to_str().unwrap(), etag);
    let mut stale = request;
    stale
        .headers
        .insert("if-none-match", HeaderValue::from_static("\"stale\""));
    assert_eq!(handle(&w.deps(), &stale).await.status_code, 200);
}

#[tokio::test]
async fn an_alert_comes_with_its_whole_timeline_in_time_order() {
    let w = world().await;
    // a-1's streams: raised, routed, then acknowledged; the view has applied them.
    let raised = alert_raised("p-1").with_id("a-1");
    let raised = alert_envelope(raised);
    let mut routed_env = from_detect(
        "evt-routed",
        "corr-1",
        AlertRouted {
            alert_id: "a-1".into(),
            patient_id: "p-1".into(),
            worker_id: "w-1".into(),
            notification_id: "n-1".into(),
        },
    );
    routed_env.timestamp = raised.timestamp + Duration::seconds(2);
    let mut ack = from_detect(
        "evt-ack",
        "corr-1",
        AlertAcknowledged {
            alert_id: "a-1".into(),
            acknowledged_by: "w-1".into(),
        },
    );
    ack.timestamp = raised.timestamp + Duration::seconds(9);
    let stored = |e: StoredEvent| e;
    w.events
        .append(
            "alert-a-1",
            ExpectedVersion::Any,
            &[
                stored(StoredEvent::from_envelope(&raised).unwrap()),
                stored(StoredEvent::from_envelope(&routed_env).unwrap()),
            ],
        )
        .await
        .unwrap();
    w.events
        .append(
            "alert-ack-a-1",
            ExpectedVersion::Any,
            &[StoredEvent::from_envelope(&ack).unwrap()],
        )
        .await
        .unwrap();
    let mut view = match w.views.get("alert#a-1") {
        Some(View::Alert(v)) => v,
        other => panic!("{other:?}"),
    };
    view.applied.insert("alert-a-1".into(), 2);
    view.applied.insert("alert-ack-a-1".into(), 1);
    let version = w.views.views.lock().unwrap()["alert#a-1"].version;
    w.views.save(version, &View::Alert(view)).await.unwrap();

    let (status, body) = call(
        &w,
        get(
            person("w-1", "health-worker"),
            "GET /alerts/{id}",
            Some("a-1"),
            &[],
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["alert"]["alertId"], "a-1");
    let timeline: Vec<(&str, &str, u64)> = body["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["eventType"].as_str().unwrap(),
                e["stream"].as_str().unwrap(),
                e["version"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        timeline,
        [
            ("AlertRaised", "alert-a-1", 1),
            ("AlertRouted", "alert-a-1", 2),
            ("AlertAcknowledged", "alert-ack-a-1", 1)
        ]
    );
    assert_eq!(body["timeline"][1]["summary"], "routed to w-1");
    assert_eq!(body["timeline"][2]["summary"], "acknowledged by w-1");

    let (status, _) = call(&w, get(operator(), "GET /alerts/{id}", Some("nope"), &[])).await;
    assert_eq!(status, 404);
    let (status, body) = call(
        &w,
        get(
            person("w-3", "health-worker"),
            "GET /alerts/{id}",
            Some("a-1"),
            &[],
        ),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = call(
        &w,
        get(
            person("s-1", "supervisor"),
            "GET /alerts/{id}",
            Some("a-1"),
            &[],
        ),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn emergencies_are_listed_by_status_for_their_district() {
    let w = world().await;
    let list = async |claims: Value, query: &[(&str, &str)]| {
        let (status, body) = call(&w, get(claims, "GET /emergencies", None, query)).await;
        assert_eq!(status, 200, "{body}");
        body
    };
    let body = list(operator(), &[]).await;
    assert_eq!(ids(&body, "emergencyId"), ["e-2", "e-1"]);
    let active = list(operator(), &[("status", "active")]).await;
    assert_eq!(ids(&active, "emergencyId"), ["e-1"]);
    let e1 = &active["items"][0];
    assert_eq!(e1["stage"], "onSite");
    assert_eq!(e1["alertId"], "a-1");
    assert_eq!(e1["patientId"], "p-1");
    assert_eq!(e1["steps"][0]["step"], "EmergencyStarted");
    let body = list(person("s-2", "supervisor"), &[]).await;
    assert_eq!(ids(&body, "emergencyId"), ["e-2"]);
    let body = list(person("w-1", "health-worker"), &[]).await;
    assert_eq!(ids(&body, "emergencyId"), ["e-1"]);
}
