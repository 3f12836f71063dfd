//! The patient, readings and village routes with in-memory adapters (docs/read-side.md):
//! blocks and open hours merged in order, a late second block of an hour, paging with the
//! opaque cursor, windows, and the village's days.

use std::collections::HashMap;

use application::ports::PatientStateStore;
use application::vitals::{RecentVitals, VillageStats};
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::query_map::QueryMap;
use chrono::{DateTime, TimeZone, Utc};
use domain::detection::PatientState;
use domain::escalation::VillageRoster;
use domain::reading::VitalType;
use domain::upcast::Upcasters;
use domain::village_stats::StatsDelta;
use domain::vitals;
use query::{Deps, handle};
use serde_json::{Value, json};
use testkit::fixtures::{DirectoryEntryFixture, directory_entry};
use testkit::http::request_with_claims;
use testkit::{
    MemoryDirectory, MemoryEventStore, MemoryReadModels, MemoryStateStore, MemoryVillageStats,
    MemoryVitals,
};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 10, 30, 0).unwrap()
}

struct World {
    views: MemoryReadModels,
    events: MemoryEventStore,
    directory: MemoryDirectory,
    upcasters: Upcasters,
    vitals: MemoryVitals,
    states: MemoryStateStore,
    stats: MemoryVillageStats,
}

impl World {
    fn deps(&self) -> Deps<'_> {
        Deps {
            views: &self.views,
            models: &self.views,
            events: &self.events,
            access: &self.directory,
            upcasters: &self.upcasters,
            vitals: &self.vitals,
            states: &self.states,
            stats: &self.stats,
            now: now(),
        }
    }
}

/// p-1 of Bondo (w-1): a heart rate a minute from 08:00 to 10:29 (08:00 and 09:00 closed
/// and written; 10:00 open in the state), and a late reading of 08:30:30 written as a
/// second block of 08:00.
async fn world() -> World {
    let w = World {
        views: MemoryReadModels::default(),
        events: MemoryEventStore::default(),
        directory: MemoryDirectory::with([directory_entry("p-1", "w-1", "+254700000001")
            .in_village("Bondo")
            .named("Amina")])
        .with_roster(VillageRoster {
            village: "Bondo".into(),
            worker_ids: vec!["w-1".into()],
            supervisor_id: "s-1".into(),
        }),
        upcasters: Upcasters::default(),
        vitals: MemoryVitals::default(),
        states: MemoryStateStore::default(),
        stats: MemoryVillageStats::default(),
    };
    let eight = Utc
        .with_ymd_and_hms(2026, 11, 24, 8, 0, 0)
        .unwrap()
        .timestamp_millis();
    let mut buffer = Vec::new();
    for minute in 0..150 {
        let at = eight + minute * 60_000;
        vitals::record(
            &mut buffer,
            at,
            VitalType::HeartRate,
            60.0 + (minute % 40) as f64,
            "watch",
        );
        for block in vitals::take_closed(&mut buffer, at) {
            w.vitals.put_block("p-1", &block).await.unwrap();
        }
    }
    let mut late = Vec::new();
    vitals::record(
        &mut late,
        eight + 30 * 60_000 + 30_000,
        VitalType::Spo2,
        97.0,
        "kiosk",
    );
    let hour = &late[0];
    let block = vitals::HourBlock {
        start: hour.start,
        devices: hour.devices.clone(),
        count: hour.count,
        readings: hour.readings.clone(),
    };
    w.vitals.put_block("p-1", &block).await.unwrap();
    let state = PatientState {
        vitals: buffer,
        ..PatientState::default()
    };
    w.states.save("p-1", 0, &state).await.unwrap();
    w
}

fn person(id: &str, group: &str) -> Value {
    json!({"username": id, "cognito:groups": format!("[{group}]")})
}

fn get(claims: Value, route: &str, id: &str, query: &[(&str, &str)]) -> ApiGatewayV2httpRequest {
    let mut request = request_with_claims("GET", claims);
    request.route_key = Some(route.into());
    request.path_parameters.insert("id".into(), id.into());
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
        _ => Value::Null,
    }
}

async fn call(w: &World, request: ApiGatewayV2httpRequest) -> (i64, Value) {
    let response = handle(&w.deps(), &request).await;
    (response.status_code, body(&response))
}

const READINGS: &str = "GET /patients/{id}/readings";

#[tokio::test]
async fn readings_merge_blocks_late_blocks_and_the_open_hour_in_order_over_pages() {
    let w = world().await;
    let worker = person("w-1", "health-worker");
    let window = [
        ("from", "2026-11-24T07:00:00Z"),
        ("to", "2026-11-24T10:30:00Z"),
        ("limit", "100"),
    ];
    let mut items: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut query = window.to_vec();
        if let Some(c) = &cursor {
            query.push(("cursor", c));
        }
        let (status, page) = call(&w, get(worker.clone(), READINGS, "p-1", &query)).await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 2);
    assert_eq!(items.len(), 151, "150 heart rates and the late SpO2");
    let times: Vec<&str> = items.iter().map(|i| i["at"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|p| p[0] <= p[1]), "time order");
    let spo2: Vec<&Value> = items.iter().filter(|i| i["metric"] == "spo2").collect();
    assert_eq!(spo2.len(), 1);
    assert_eq!(spo2[0]["deviceId"], "kiosk");
    assert_eq!(
        items.last().unwrap()["at"],
        "2026-11-24T10:29:00Z",
        "the open hour too"
    );

    // A metric filter and a narrower window.
    let (_, only) = call(
        &w,
        get(
            worker.clone(),
            READINGS,
            "p-1",
            &[
                ("metric", "spo2"),
                ("from", "2026-11-24T08:00:00Z"),
                ("to", "2026-11-24T09:00:00Z"),
            ],
        ),
    )
    .await;
    assert_eq!(only["items"].as_array().unwrap().len(), 1);
    // The default window is the last 24 hours.
    let (_, day) = call(&w, get(worker, READINGS, "p-1", &[("limit", "100")])).await;
    assert_eq!(day["items"].as_array().unwrap().len(), 100);
}

#[tokio::test]
async fn a_patients_status_and_bad_requests() {
    let w = world().await;
    let (status, patient) = call(
        &w,
        get(
            person("s-1", "supervisor"),
            "GET /patients/{id}",
            "p-1",
            &[],
        ),
    )
    .await;
    assert_eq!(status, 200, "{patient}");
    assert_eq!(patient["name"], "Amina");
    assert_eq!(patient["village"], "Bondo");
    assert_eq!(patient["worker"]["workerId"], "w-1");
    assert_eq!(
        patient["latest"]["heart_rate"]["at"],
        "2026-11-24T10:29:00Z"
    );
    assert_eq!(patient["latest"]["spo2"]["value"], 97.0);
    assert_eq!(patient["readings24h"].as_array().unwrap().len(), 151);
    assert_eq!(patient["openAlerts"], json!([]));

    for (who, route, id) in [
        (person("w-2", "health-worker"), "GET /patients/{id}", "p-1"),
        (person("s-2", "supervisor"), READINGS, "p-1"),
        (
            person("w-2", "health-worker"),
            "GET /villages/{id}/stats",
            "Bondo",
        ),
    ] {
        let (status, answer) = call(&w, get(who, route, id, &[])).await;
        assert_eq!(status, 403, "{route}: {answer}");
    }
    let op = person("op-1", "operator");
    for query in [
        vec![("metric", "pulse")],
        vec![
            ("from", "2026-11-10T00:00:00Z"),
            ("to", "2026-11-24T00:00:00Z"),
        ],
        vec![
            ("from", "2026-11-24T00:00:00Z"),
            ("to", "2026-11-23T00:00:00Z"),
        ],
        vec![("cursor", "bm90LWEtY3Vyc29y")],
    ] {
        let (status, answer) = call(&w, get(op.clone(), READINGS, "p-1", &query)).await;
        assert_eq!(status, 400, "{query:?}: {answer}");
    }
    let (status, _) = call(&w, get(op, "GET /patients/{id}", "p-nobody", &[])).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_villages_days_are_zero_filled_and_ranged() {
    let w = world().await;
    let mut counters = std::collections::BTreeMap::new();
    counters.insert("readings".to_string(), 120);
    counters.insert("sev:critical".to_string(), 1);
    counters.insert("rule:spo2-low".to_string(), 1);
    counters.insert("ack:03".to_string(), 1);
    w.stats
        .add(&StatsDelta {
            village: "Bondo".into(),
            date: "2026-11-23".into(),
            marker: None,
            counters,
        })
        .await
        .unwrap();
    let route = "GET /villages/{id}/stats";
    let (status, stats) = call(
        &w,
        get(
            person("s-1", "supervisor"),
            route,
            "Bondo",
            &[("from", "2026-11-22"), ("to", "2026-11-24")],
        ),
    )
    .await;
    assert_eq!(status, 200, "{stats}");
    let days = stats["days"].as_array().unwrap();
    assert_eq!(days.len(), 3);
    assert_eq!(
        days[0],
        json!({"date": "2026-11-22", "readings": 0, "alertsBySeverity": {}, "alertsByType": {}, "emergencies": 0, "medianAckSeconds": null})
    );
    assert_eq!(days[1]["readings"], 120);
    assert_eq!(days[1]["alertsByType"]["spo2-low"], 1);
    assert_eq!(days[1]["medianAckSeconds"], 300);
    // Default: the last 7 days up to today.
    let (_, week) = call(&w, get(person("op-1", "operator"), route, "Bondo", &[])).await;
    assert_eq!(week["days"].as_array().unwrap().len(), 7);
    assert_eq!(week["to"], "2026-11-24");
    let (status, _) = call(
        &w,
        get(
            person("op-1", "operator"),
            route,
            "Bondo",
            &[("from", "2026-01-01"), ("to", "2026-11-24")],
        ),
    )
    .await;
    assert_eq!(status, 400);
}
