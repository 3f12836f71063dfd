//! `GET /patients/{id}`, `GET /patients/{id}/readings` and `GET /villages/{id}/stats` on the
//! stack the write-budget case filled (20 patients of Vitalsville, 50 heart rates each):
//! contents, paging across pages, 304 on `If-None-Match`, 400s, who may read what (401
//! without a token, 403 for other people's patients and villages, devices) and no `Scan`
//! in the emulator's request log. Every response is validated against infra/openapi.yaml
//! (`e2e::api_call`).

use std::time::{Duration, Instant};

use devstack::{Stack, TokenSpec, inspect, request_log};
use domain::escalation::VillageRoster;
use e2e::*;
use serde_json::{Value, json};

use super::{PER_PATIENT, VILLAGE};

const PATIENT: &str = "pv-00";

async fn get(stack: &Stack, spec: Option<&TokenSpec>, path: &str) -> (u16, Headers, Value) {
    let authorization = spec.map(|s| bearer(stack, s));
    api_call(stack, authorization.as_deref(), "GET", path, None, &[]).await
}

async fn not_modified(stack: &Stack, spec: &TokenSpec, path: &str, etag: &str) {
    let authorization = bearer(stack, spec);
    let (status, headers, body) = api_call(
        stack,
        Some(&authorization),
        "GET",
        path,
        None,
        &[("if-none-match", etag.to_string())],
    )
    .await;
    assert_eq!(status, 304, "{path}: {body}");
    assert_eq!(headers.get("etag").map(String::as_str), Some(etag));
}

/// Polls `path` until `ready` holds (the pipeline and the projector run asynchronously).
async fn until(
    stack: &Stack,
    spec: &TokenSpec,
    path: &str,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + DRAIN;
    loop {
        let (status, _, body) = get(stack, Some(spec), path).await;
        if status == 200 && ready(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{path} never got there: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub async fn patient_readings_and_village_routes(stack: &Stack, flushed: i64) {
    inspect::seed_contacts(
        stack,
        &[
            VillageRoster {
                village: VILLAGE.into(),
                worker_ids: vec!["w-31".into()],
                supervisor_id: "s-31".into(),
            },
            VillageRoster {
                village: "Elsewhere".into(),
                worker_ids: vec!["w-32".into()],
                supervisor_id: "s-32".into(),
            },
        ],
        &[],
    )
    .await
    .expect("seeding the rosters");
    let worker = TokenSpec::health_worker("w-31");
    let supervisor = TokenSpec::supervisor("s-31");

    // A low SpO2 of pv-00 now: a critical alert (routed to w-31, starting an emergency).
    let (status, body) = post(stack, &json!([reading(PATIENT, "spo2", 85.0, 0)]), None).await;
    assert_eq!(status, 202, "{body}");
    let patient_path = format!("/patients/{PATIENT}");
    let status_body = until(stack, &worker, &patient_path, |b| {
        b["openAlerts"].as_array().is_some_and(|a| !a.is_empty())
            && b["openAlerts"][0]["routedTo"] == "w-31"
    })
    .await;
    let alert_id = status_body["openAlerts"][0]["alertId"]
        .as_str()
        .expect("an alert id")
        .to_string();
    let (status, _, ack) = api_call(
        stack,
        Some(&bearer(stack, &worker)),
        "POST",
        &format!("/alerts/{alert_id}/ack"),
        Some(&json!({"workerId": "w-31"})),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{ack}");

    request_log::start(stack).await.expect("recording requests");

    // GET /patients/{id}: entry, latest per metric, open alerts, the last 24 h.
    let (status, headers, patient) = get(stack, Some(&worker), &patient_path).await;
    assert_eq!(status, 200, "{patient}");
    assert_eq!(patient["name"], "Patient pv-00");
    assert_eq!(patient["village"], VILLAGE);
    assert_eq!(
        patient["worker"],
        json!({"workerId": "w-31", "name": "Worker w-31"})
    );
    assert_eq!(
        patient["latest"]["heart_rate"]["value"],
        json!(70.0 + ((PER_PATIENT - 1) % 9) as f64)
    );
    assert_eq!(patient["latest"]["spo2"]["value"], json!(85.0));
    assert_eq!(patient["latest"]["spo2"]["unit"], "%");
    assert_eq!(patient["openAlerts"][0]["alertId"], alert_id.as_str());
    assert_eq!(patient["openAlerts"][0]["ruleId"], "spo2-low");
    let day = patient["readings24h"].as_array().expect("readings24h");
    assert_eq!(
        day.len(),
        PER_PATIENT as usize + 1,
        "50 heart rates and the SpO2"
    );
    let times: Vec<&str> = day.iter().filter_map(|r| r["at"].as_str()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "in time order");
    assert_eq!(
        headers.get("cache-control").map(String::as_str),
        Some("private, max-age=5")
    );
    not_modified(stack, &worker, &patient_path, &headers["etag"]).await;

    // GET /patients/{id}/readings: two pages of heart rates, then the end.
    let base = format!("/patients/{PATIENT}/readings?metric=heart_rate&limit=30");
    let (status, headers, first) = get(stack, Some(&supervisor), &base).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["items"].as_array().map(Vec::len), Some(30));
    let cursor = first["nextCursor"]
        .as_str()
        .expect("a second page")
        .to_string();
    not_modified(stack, &supervisor, &base, &headers["etag"]).await;
    let (status, _, second) =
        get(stack, Some(&supervisor), &format!("{base}&cursor={cursor}")).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["items"].as_array().map(Vec::len), Some(20));
    assert_eq!(second["nextCursor"], Value::Null);
    let all: Vec<&Value> = first["items"]
        .as_array()
        .into_iter()
        .chain(second["items"].as_array())
        .flatten()
        .collect();
    let values: Vec<f64> = all.iter().filter_map(|r| r["value"].as_f64()).collect();
    let expected: Vec<f64> = (0..PER_PATIENT).map(|k| 70.0 + (k % 9) as f64).collect();
    assert_eq!(values, expected, "every heart rate once, in time order");
    assert!(
        all.iter().all(|r| r["metric"] == "heart_rate"
            && r["unit"] == "bpm"
            && r["deviceId"] == "watch-00")
    );

    // Bad parameters are 400s.
    let other_cursor = {
        let (_, _, page) = get(
            stack,
            Some(&TokenSpec::operator("op-31")),
            "/patients/pv-01/readings?limit=1",
        )
        .await;
        page["nextCursor"]
            .as_str()
            .expect("pv-01 has more")
            .to_string()
    };
    for bad in [
        format!("/patients/{PATIENT}/readings?metric=pulse"),
        format!("/patients/{PATIENT}/readings?from=yesterday"),
        format!("/patients/{PATIENT}/readings?from=2026-01-01T00:00:00Z&to=2026-01-09T00:00:00Z"),
        format!("/patients/{PATIENT}/readings?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z"),
        format!("/patients/{PATIENT}/readings?cursor=%25%25"),
        format!("/patients/{PATIENT}/readings?cursor={other_cursor}"),
        format!("/patients/{PATIENT}/readings?limit=0"),
        format!("/villages/{VILLAGE}/stats?from=soon"),
        format!("/villages/{VILLAGE}/stats?from=2026-01-01&to=2026-03-01"),
    ] {
        let (status, _, body) = get(stack, Some(&supervisor), &bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body["error"].is_string() && body["correlationId"].is_string(),
            "{body}"
        );
    }

    // GET /villages/{id}/stats: the flushed readings, the alert by rule and severity, the
    // emergency and the acknowledgement (the projector runs asynchronously).
    let today = chrono::Utc::now().date_naive();
    let stats_path = format!(
        "/villages/{VILLAGE}/stats?from={}&to={today}",
        today - chrono::Duration::days(1)
    );
    let stats = until(stack, &supervisor, &stats_path, |b| {
        let days = b["days"].as_array().cloned().unwrap_or_default();
        let sum = |f: &dyn Fn(&Value) -> i64| days.iter().map(f).sum::<i64>();
        sum(&|d| d["alertsByType"]["spo2-low"].as_i64().unwrap_or(0)) == 1
            && sum(&|d| d["emergencies"].as_i64().unwrap_or(0)) == 1
            && days.iter().any(|d| d["medianAckSeconds"].is_number())
    })
    .await;
    let days = stats["days"].as_array().expect("days");
    assert_eq!(days.len(), 2);
    assert_eq!(days[1]["date"], today.to_string());
    let readings: i64 = days.iter().filter_map(|d| d["readings"].as_i64()).sum();
    assert_eq!(readings, flushed, "the readings detect flushed");
    let critical: i64 = days
        .iter()
        .filter_map(|d| d["alertsBySeverity"]["critical"].as_i64())
        .sum();
    assert_eq!(critical, 1);
    let (status, headers, _) = get(stack, Some(&supervisor), &stats_path).await;
    assert_eq!(status, 200);
    assert_eq!(
        headers.get("cache-control").map(String::as_str),
        Some("private, max-age=60")
    );
    not_modified(stack, &supervisor, &stats_path, &headers["etag"]).await;

    // Who may read what.
    let readings_path = format!("/patients/{PATIENT}/readings");
    let village_path = format!("/villages/{VILLAGE}/stats");
    let paths = [
        patient_path.as_str(),
        readings_path.as_str(),
        village_path.as_str(),
    ];
    for path in paths {
        let (status, _, body) = get(stack, None, path).await;
        assert_eq!(status, 401, "{path} without a token: {body}");
        for (who, spec) in [
            ("another village's worker", TokenSpec::health_worker("w-32")),
            (
                "another district's supervisor",
                TokenSpec::supervisor("s-32"),
            ),
            ("a device", TokenSpec::device("test-device-1")),
        ] {
            let (status, _, body) = get(stack, Some(&spec), path).await;
            assert_eq!(status, 403, "{path} as {who}: {body}");
        }
        for spec in [
            TokenSpec::operator("op-31"),
            worker.clone(),
            supervisor.clone(),
        ] {
            let (status, _, body) = get(stack, Some(&spec), path).await;
            assert_eq!(status, 200, "{path} as {spec:?}: {body}");
        }
    }
    let (status, _, body) = get(
        stack,
        Some(&TokenSpec::operator("op-31")),
        "/patients/nobody",
    )
    .await;
    assert_eq!(status, 404, "{body}");

    let requests = request_log::requests(stack).await.expect("the request log");
    let scans: Vec<_> = requests.iter().filter(|r| r.operation == "Scan").collect();
    assert!(scans.is_empty(), "no Scan: {scans:?}");
}
