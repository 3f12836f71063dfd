//! The query API on the local stack (issue 14): readings that alert flow through detect,
//! route, notify, the emergency saga and project into the dashboard's views, then every
//! read route is asked for them. One stack for the whole binary (one test, sub-cases in
//! sequence). Every response is validated against infra/openapi.yaml by the helpers.
//!
//! Each route: its contents, paging across at least 2 pages (limit 1), `304` on
//! `If-None-Match`, and who may read what (401 / 403). While the reads run the emulator's
//! request log is on: it must hold no `Scan`, and the DynamoDB requests per call are
//! printed.

use std::time::{Duration, Instant};

use devstack::request_log;
use devstack::{Stack, TokenSpec, inspect};
use domain::escalation::{FamilyContact, VillageRoster, Worker};
use domain::routing::DirectoryEntry;
use e2e::*;
use serde_json::{Value, json};

/// Bondo (roster w-01, w-02; supervisor s-01): q-1 and q-2, assigned w-01. Kisumu
/// (roster w-09; supervisor s-09): q-3, assigned w-09.
fn directory_entry(patient: &str, village: &str, worker: &str) -> DirectoryEntry {
    DirectoryEntry {
        device_ids: Vec::new(),
        patient_id: patient.into(),
        patient_name: format!("Patient {patient}"),
        village: village.into(),
        worker_id: worker.into(),
        worker_name: format!("Worker {worker}"),
        worker_phone: format!("+2547000004{}", &worker[worker.len() - 2..]),
    }
}

async fn seed(stack: &Stack) {
    inspect::seed_directory(
        stack,
        &[
            directory_entry("q-1", "Bondo", "w-01"),
            directory_entry("q-2", "Bondo", "w-01"),
            directory_entry("q-3", "Kisumu", "w-09"),
        ],
    )
    .await
    .unwrap();
    let worker = |id: &str, village: &str| Worker {
        language: "en".into(),
        worker_id: id.into(),
        name: format!("Worker {id}"),
        phone: format!("+2547000004{}", &id[id.len() - 2..]),
        village: village.into(),
        available: true,
        reserved_by: None,
    };
    inspect::seed_workers(
        stack,
        &[
            worker("w-01", "Bondo"),
            worker("w-02", "Bondo"),
            worker("s-01", "Bondo"),
            worker("w-09", "Kisumu"),
            worker("s-09", "Kisumu"),
        ],
    )
    .await
    .unwrap();
    let roster = |village: &str, workers: &[&str], supervisor: &str| VillageRoster {
        village: village.into(),
        worker_ids: workers.iter().map(|w| w.to_string()).collect(),
        supervisor_id: supervisor.into(),
    };
    inspect::seed_contacts(
        stack,
        &[
            roster("Bondo", &["w-01", "w-02"], "s-01"),
            roster("Kisumu", &["w-09"], "s-09"),
        ],
        &["q-1", "q-2", "q-3"].map(|p| FamilyContact {
            patient_id: p.into(),
            name: format!("Family of {p}"),
            phone: "+254711000004".into(),
            language: "en".into(),
        }),
    )
    .await
    .unwrap();
}

/// A GET with this token (None: without one) and optional `If-None-Match`.
async fn get(
    stack: &Stack,
    token: Option<&str>,
    path: &str,
    etag: Option<&str>,
) -> (u16, Headers, Value) {
    let headers: Vec<(&str, String)> = etag
        .map(|e| vec![("if-none-match", e.to_string())])
        .unwrap_or_default();
    api_call(stack, token, "GET", path, None, &headers).await
}

fn ids(body: &Value, field: &str) -> Vec<String> {
    body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {body}"))
        .iter()
        .map(|i| i[field].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Every item of a list, page by page (`limit` per page); asserts each page holds at most
/// `limit` and returns the items and the number of pages.
async fn all_pages(stack: &Stack, token: &str, path: &str, limit: usize) -> (Vec<Value>, usize) {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut url = format!("{path}{sep}limit={limit}");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let (status, _, body) = get(stack, Some(token), &url, None).await;
        assert_eq!(status, 200, "{url}: {body}");
        let page = body["items"].as_array().cloned().unwrap_or_default();
        assert!(page.len() <= limit, "{url}: {body}");
        items.extend(page);
        pages += 1;
        assert!(pages < 50, "{path}: paging does not end");
        match body["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return (items, pages),
        }
    }
}

/// Polls `path` (as `token`) until `done` holds for its body.
async fn wait_for(stack: &Stack, token: &str, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + DRAIN;
    loop {
        let (status, _, body) = get(stack, Some(token), path, None).await;
        if status == 200 && done(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{path} never became ready: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// 200 with ETag and Cache-Control, then 304 without a body for the same ETag.
async fn assert_304(stack: &Stack, token: &str, path: &str) {
    let (status, headers, body) = get(stack, Some(token), path, None).await;
    assert_eq!(status, 200, "{path}: {body}");
    let etag = headers
        .get("etag")
        .unwrap_or_else(|| panic!("{path}: no ETag"));
    assert_eq!(
        headers.get("cache-control").map(String::as_str),
        Some("private, max-age=5"),
        "{path}"
    );
    let (status, headers, body) = get(stack, Some(token), path, Some(etag)).await;
    assert_eq!(status, 304, "{path}: {body}");
    assert_eq!(body, json!(""), "{path}: a 304 has no body");
    assert_eq!(headers.get("etag"), Some(etag));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_api_serves_alerts_inboxes_and_emergencies_from_indexes() {
    let stack = start_stack("query_api").await;
    seed(&stack).await;
    let operator = bearer(&stack, &TokenSpec::operator("op-q"));
    let w01 = bearer(&stack, &TokenSpec::health_worker("w-01"));
    let w02 = bearer(&stack, &TokenSpec::health_worker("w-02"));
    let w09 = bearer(&stack, &TokenSpec::health_worker("w-09"));
    let s01 = bearer(&stack, &TokenSpec::supervisor("s-01"));
    let s09 = bearer(&stack, &TokenSpec::supervisor("s-09"));
    let device = bearer(&stack, &TokenSpec::device("test-device-1"));

    // Critical (spo2) alerts for q-1 and q-3 (each starts an emergency), a warning
    // (three high heart rates) for q-2.
    let readings = json!([
        reading("q-1", "spo2", 85.0, 3),
        reading("q-2", "heart_rate", 130.0, 3),
        reading("q-2", "heart_rate", 131.0, 2),
        reading("q-2", "heart_rate", 132.0, 1),
        reading("q-3", "spo2", 84.0, 2),
    ]);
    let (status, body) = post(&stack, &readings, Some("query-api-1")).await;
    assert_eq!(status, 202, "{body}");
    let routed = |body: &Value| {
        let items = body["items"].as_array().cloned().unwrap_or_default();
        items.len() == 3 && items.iter().all(|i| i["routedTo"].is_string())
    };
    let all = wait_for(&stack, &operator, "/alerts?limit=100", routed).await;
    let emergencies = wait_for(&stack, &operator, "/emergencies?limit=100", |b| {
        b["items"].as_array().is_some_and(|i| i.len() == 2)
    })
    .await;

    // q-1's alert has been notified (its view applied the notification's stream).
    let q1_id = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["patientId"] == "q-1")
        .and_then(|i| i["alertId"].as_str())
        .unwrap()
        .to_string();
    wait_for(&stack, &operator, &format!("/alerts/{q1_id}"), |b| {
        b["timeline"]
            .as_array()
            .is_some_and(|t| t.iter().any(|e| e["eventType"] == "NotificationSent"))
    })
    .await;

    request_log::start(&stack).await.unwrap();
    let mut calls = 0usize;

    // ---- GET /alerts: newest first (q-3 at -2 min and q-2 at -1 min are newer than q-1).
    let patients = |items: &[Value]| -> Vec<String> {
        items
            .iter()
            .map(|i| i["patientId"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(
        patients(all["items"].as_array().unwrap()),
        ["q-2", "q-3", "q-1"]
    );
    let (paged, pages) = all_pages(&stack, &operator, "/alerts", 1).await;
    calls += pages;
    assert_eq!(patients(&paged), ["q-2", "q-3", "q-1"]);
    assert!(pages >= 3, "{pages} pages");
    let q1 = &paged[2];
    assert_eq!(q1["severity"], "critical");
    assert_eq!(q1["ruleId"], "spo2-low");
    assert_eq!(q1["village"], "Bondo");
    assert_eq!(q1["routedTo"], "w-01");
    assert_eq!(paged[0]["severity"], "warning");
    assert_eq!(paged[0]["ruleId"], "hr-high-3");
    let (bondo, pages) =
        all_pages(&stack, &operator, "/alerts?village=Bondo&status=routed", 1).await;
    calls += pages;
    assert_eq!(patients(&bondo), ["q-2", "q-1"]);
    let (critical, pages) = all_pages(&stack, &operator, "/alerts?severity=critical", 1).await;
    calls += pages;
    assert_eq!(patients(&critical), ["q-3", "q-1"]);
    let (_, _, body) = get(&stack, Some(&operator), "/alerts?worker=w-09", None).await;
    calls += 1;
    assert_eq!(ids(&body, "patientId"), ["q-3"]);
    // Each role sees its own patients' alerts only.
    for (token, expected) in [
        (&s01, vec!["q-2", "q-1"]),
        (&s09, vec!["q-3"]),
        (&w09, vec!["q-3"]),
        (&w02, vec!["q-2", "q-1"]),
    ] {
        let (status, _, body) = get(&stack, Some(token), "/alerts", None).await;
        calls += 1;
        assert_eq!(status, 200, "{body}");
        assert_eq!(ids(&body, "patientId"), expected);
    }
    assert_304(&stack, &operator, "/alerts?limit=2").await;
    calls += 2;
    let (status, _, body) = get(&stack, Some(&operator), "/alerts?cursor=bogus", None).await;
    calls += 1;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("InvalidCursor")),
        "{body}"
    );
    let (status, _, body) = get(&stack, Some(&operator), "/alerts?limit=500", None).await;
    calls += 1;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("InvalidLimit")),
        "{body}"
    );

    // ---- GET /alerts/{id}: the summary and the timeline in time order.
    assert_eq!(q1["alertId"], q1_id.as_str());
    let (status, _, detail) = get(&stack, Some(&w01), &format!("/alerts/{q1_id}"), None).await;
    calls += 1;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["alert"]["alertId"], q1_id.as_str());
    let timeline = detail["timeline"].as_array().unwrap();
    let types: Vec<&str> = timeline
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(types[..2], ["AlertRaised", "AlertRouted"], "{detail}");
    assert!(types.contains(&"NotificationSent"), "{detail}");
    let times: Vec<&str> = timeline.iter().map(|e| e["at"].as_str().unwrap()).collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "timeline in time order");
    assert!(
        timeline
            .iter()
            .any(|e| e["stream"] == format!("alert-{q1_id}"))
    );
    assert_304(&stack, &s01, &format!("/alerts/{q1_id}")).await;
    calls += 2;
    let (status, _, _) = get(&stack, Some(&w09), &format!("/alerts/{q1_id}"), None).await;
    calls += 1;
    assert_eq!(
        status, 403,
        "w-09 is not q-1's worker nor on Bondo's roster"
    );
    let (status, _, _) = get(&stack, Some(&s09), &format!("/alerts/{q1_id}"), None).await;
    calls += 1;
    assert_eq!(status, 403, "s-09 does not supervise Bondo");
    let (status, _, _) = get(&stack, Some(&operator), "/alerts/no-such-alert", None).await;
    calls += 1;
    assert_eq!(status, 404);

    // ---- GET /workers/{id}/inbox: w-01's two open alerts, over two pages.
    let (inbox, pages) = all_pages(&stack, &w01, "/workers/w-01/inbox", 1).await;
    calls += pages;
    assert_eq!(patients(&inbox), ["q-2", "q-1"]);
    assert!(pages >= 2);
    assert_304(&stack, &w01, "/workers/w-01/inbox").await;
    calls += 2;
    let (status, _, body) = get(&stack, Some(&w02), "/workers/w-01/inbox", None).await;
    calls += 1;
    assert_eq!(status, 403, "another worker's inbox: {body}");
    let (status, _, body) = get(&stack, Some(&s09), "/workers/w-01/inbox", None).await;
    calls += 1;
    assert_eq!(
        (status, ids(&body, "patientId").len()),
        (200, 0),
        "not s-09's district"
    );
    let (status, _, body) = get(&stack, Some(&s01), "/workers/w-01/inbox", None).await;
    calls += 1;
    assert_eq!(
        (status, ids(&body, "patientId")),
        (200, vec!["q-2".to_string(), "q-1".to_string()])
    );

    // ---- GET /emergencies: both sagas, over two pages; by status; by district.
    assert_eq!(emergencies["items"].as_array().unwrap().len(), 2);
    let (paged, pages) = all_pages(&stack, &operator, "/emergencies?status=active", 1).await;
    calls += pages;
    assert!(pages >= 2);
    let mut started: Vec<String> = patients(&paged);
    started.sort();
    assert_eq!(started, ["q-1", "q-3"]);
    for e in &paged {
        assert_eq!(e["status"], "active");
        assert!(e["alertId"].is_string(), "{e}");
        assert_eq!(e["steps"][0]["step"], "EmergencyStarted", "{e}");
    }
    let (_, _, body) = get(&stack, Some(&s09), "/emergencies", None).await;
    calls += 1;
    assert_eq!(ids(&body, "patientId"), ["q-3"]);
    let (_, _, body) = get(
        &stack,
        Some(&operator),
        "/emergencies?status=completed",
        None,
    )
    .await;
    calls += 1;
    assert_eq!(ids(&body, "patientId"), Vec::<String>::new());
    assert_304(&stack, &s01, "/emergencies").await;
    calls += 2;

    // ---- Refusals: no token, a device (no dashboard scope).
    for path in [
        "/alerts",
        &format!("/alerts/{q1_id}"),
        "/workers/w-01/inbox",
        "/emergencies",
    ] {
        let (status, _, _) = get(&stack, None, path, None).await;
        assert_eq!(status, 401, "{path}");
        let (status, _, _) = get(&stack, Some(&device), path, None).await;
        assert_eq!(status, 403, "{path}");
    }

    // ---- No Scan while serving all of that; DynamoDB requests per call.
    let requests = request_log::requests(&stack).await.unwrap();
    let scans: Vec<_> = requests.iter().filter(|r| r.operation == "Scan").collect();
    assert!(scans.is_empty(), "the query API scanned: {scans:?}");
    let reads: Vec<_> = requests
        .iter()
        .filter(|r| {
            r.service == "dynamodb"
                && ["Query", "GetItem", "BatchGetItem"].contains(&r.operation.as_str())
        })
        .collect();
    println!(
        "query API: {calls} calls made {} DynamoDB reads ({:.1} per call)",
        reads.len(),
        reads.len() as f64 / calls as f64
    );

    // ---- An acknowledgement takes the alert out of the inbox.
    let (status, body) = api_request(
        &stack,
        Some(&w01),
        "POST",
        &format!("/alerts/{q1_id}/ack"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let inbox = wait_for(&stack, &w01, "/workers/w-01/inbox", |b| {
        b["items"].as_array().is_some_and(|i| i.len() == 1)
    })
    .await;
    assert_eq!(ids(&inbox, "patientId"), ["q-2"]);
    let detail = wait_for(&stack, &operator, &format!("/alerts/{q1_id}"), |b| {
        b["alert"]["status"] == "acknowledged"
    })
    .await;
    assert_eq!(detail["alert"]["acknowledgedBy"], "w-01");
    assert!(
        detail["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["eventType"] == "AlertAcknowledged")
    );
}
