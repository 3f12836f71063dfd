//! Who may do what to whose data (issue 13, docs/security.md), through the local stack:
//! devstack's JWT authorizer (as API Gateway's) and the handlers' checks (`domain::access`).
//!
//! `the_authorization_matrix_holds_and_a_refusal_writes_nothing`: every (role x route x
//! own/other patient) case. The refused ones run first, on an idle stack, with the
//! emulator's request log on: each gets its 401/403 with a reason, and afterwards the log
//! holds no write of any kind (no record, item, message or publish). Then the allowed ones
//! succeed, and an acknowledgement records who acknowledged.
//!
//! `a_burst_is_throttled_while_an_alert_still_goes_out`: the readings route's throttle (a
//! small one, by parameter) answers 429 to a burst, while a critical reading posted in the
//! middle of it reaches `NotificationSent` within 10 s.

use std::time::{Duration, Instant};

use devstack::request_log;
use devstack::{Stack, TokenSpec, inspect};
use domain::access::DeviceBinding;
use domain::escalation::{FamilyContact, VillageRoster, Worker};
use domain::routing::DirectoryEntry;
use e2e::*;
use futures::StreamExt;
use serde_json::{Value, json};

/// Own: Bondo (w-01 assigned, w-02 on the roster, supervisor s-01). Other: Kisumu (w-09,
/// supervisor s-09).
const OWN: &str = "p-own";
const OTHER: &str = "p-other";
const WEARABLE: &str = "test-device-1";
const KIOSK: &str = "test-device-2";
const PHONE: &str = "test-device-3";

fn entry(patient: &str, village: &str, worker: &str) -> DirectoryEntry {
    DirectoryEntry {
        patient_id: patient.into(),
        patient_name: format!("Patient {patient}"),
        village: village.into(),
        worker_id: worker.into(),
        worker_name: format!("Worker {worker}"),
        worker_phone: format!("+2547000003{}", &worker[worker.len() - 2..]),
        device_ids: Vec::new(),
    }
}

fn worker(id: &str, village: &str) -> Worker {
    Worker {
        worker_id: id.into(),
        name: format!("Worker {id}"),
        phone: format!("+2547000003{}", &id[id.len() - 2..]),
        village: village.into(),
        available: true,
        reserved_by: None,
        language: "en".into(),
    }
}

async fn seed(stack: &Stack) {
    inspect::seed_directory(
        stack,
        &[entry(OWN, "Bondo", "w-01"), entry(OTHER, "Kisumu", "w-09")],
    )
    .await
    .unwrap();
    let workers = [
        worker("w-01", "Bondo"),
        worker("w-02", "Bondo"),
        worker("s-01", "Bondo"),
        worker("w-09", "Kisumu"),
        worker("s-09", "Kisumu"),
    ];
    inspect::seed_workers(stack, &workers).await.unwrap();
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
        &[OWN, OTHER].map(|p| FamilyContact {
            patient_id: p.into(),
            name: format!("Family of {p}"),
            phone: "+254711000003".into(),
            language: "en".into(),
        }),
    )
    .await
    .unwrap();
    inspect::seed_devices(
        stack,
        &[
            (
                WEARABLE,
                DeviceBinding::Wearable {
                    bound_patient_id: OWN.into(),
                },
            ),
            (
                KIOSK,
                DeviceBinding::Kiosk {
                    village: "Bondo".into(),
                },
            ),
            (
                PHONE,
                DeviceBinding::Phone {
                    worker_id: "w-01".into(),
                },
            ),
        ],
    )
    .await
    .unwrap();
}

/// One HTTP call with this `Authorization` (None: without one); a new `Idempotency-Key`
/// for each raise.
async fn call(
    stack: &Stack,
    authorization: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let key = (path == "/emergencies").then(|| uuid::Uuid::new_v4().to_string());
    api_request(stack, authorization, method, path, body, key.as_deref()).await
}

fn readings(patients: &[&str]) -> Value {
    Value::Array(
        patients
            .iter()
            .map(|p| reading(p, "heart_rate", 72.0, 1))
            .collect(),
    )
}

fn raise_body(patient: &str) -> Value {
    json!({"patientId": patient, "reason": "collapsed at home", "reporter": "w-01"})
}

/// Waits until `patient`'s alert was routed; returns its id.
async fn routed_alert(stack: &Stack, patient: &str) -> String {
    let started = Instant::now();
    loop {
        let routed = inspect::events_of_type(stack, "AlertRouted").await.unwrap();
        if let Some(r) = routed.iter().find(|r| r["data"]["patientId"] == patient) {
            return r["data"]["alertId"].as_str().unwrap().to_string();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{patient}'s alert never routed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Who calls: a token spec, or a raw `Authorization` value.
enum As {
    Token(TokenSpec),
    Raw(Option<String>),
}

struct Case {
    who: &'static str,
    caller: As,
    method: &'static str,
    path: String,
    body: Option<Value>,
    /// The answers that are right (several where the saga's progress decides, e.g. 200
    /// "already done" or 202 "queued").
    statuses: Vec<u16>,
}

fn case(who: &'static str, spec: TokenSpec, method: &'static str, path: &str) -> Case {
    Case {
        who,
        caller: As::Token(spec),
        method,
        path: path.to_string(),
        body: None,
        statuses: Vec::new(),
    }
}

impl Case {
    fn body(mut self, body: Value) -> Case {
        self.body = Some(body);
        self
    }
    fn is(mut self, status: u16) -> Case {
        self.statuses = vec![status];
        self
    }
    fn answers_one_of(mut self, statuses: &[u16]) -> Case {
        self.statuses = statuses.to_vec();
        self
    }
}

async fn run(stack: &Stack, cases: &[Case]) -> Vec<String> {
    let mut wrong = Vec::new();
    for c in cases {
        let authorization = match &c.caller {
            As::Token(spec) => Some(bearer(stack, spec)),
            As::Raw(raw) => raw.clone(),
        };
        let (status, body) = call(
            stack,
            authorization.as_deref(),
            c.method,
            &c.path,
            c.body.as_ref(),
        )
        .await;
        let what = format!("{} {} {}", c.who, c.method, c.path);
        if !c.statuses.contains(&status) {
            wrong.push(format!(
                "{what}: {status} (expected {:?}): {body}",
                c.statuses
            ));
            continue;
        }
        if status == 401 || status == 403 {
            // A reason: the authorizer's `message`, or the handler's error and message.
            let reason = body["message"].as_str().unwrap_or_default();
            if reason.is_empty() {
                wrong.push(format!("{what}: {status} without a reason: {body}"));
            }
        }
    }
    wrong
}

fn health_worker(id: &str) -> TokenSpec {
    TokenSpec::health_worker(id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorization_matrix_holds_and_a_refusal_writes_nothing() {
    let stack = start_stack_configured("access", |config| {
        // Schedules only when the test says (the sweep would read, but keep it quiet).
        config.schedule_interval = Some(Duration::from_secs(3600));
    })
    .await;
    seed(&stack).await;

    // Given: an alert (a warning: three fast heartbeats) and an emergency of each patient,
    // all settled.
    for patient in [OWN, OTHER] {
        let fast: Vec<Value> = (1..=3)
            .map(|m| reading(patient, "heart_rate", 120.0, 4 - m))
            .collect();
        let (status, body) = post(&stack, &json!(fast), None).await;
        assert_eq!(status, 202, "{body}");
    }
    let alert_own = routed_alert(&stack, OWN).await;
    let alert_other = routed_alert(&stack, OTHER).await;
    let raise = |who: &str, patient: &str| {
        let spec = TokenSpec::supervisor(who);
        let stack = &stack;
        let body = raise_body(patient);
        async move {
            let (status, body) = call(
                stack,
                Some(&bearer(stack, &spec)),
                "POST",
                "/emergencies",
                Some(&body),
            )
            .await;
            assert_eq!(status, 202, "{body}");
            body["emergencyId"].as_str().unwrap().to_string()
        }
    };
    let emergency_own = raise("s-01", OWN).await;
    let emergency_other = raise("s-09", OTHER).await;
    stack.wait_idle(Duration::from_secs(90)).await.unwrap();

    let get_other = format!("/emergencies/{emergency_other}");
    let close_other = format!("/emergencies/{emergency_other}/close");
    let ambulance_other = format!("/emergencies/{emergency_other}/ambulance");
    let ack_other = format!("/alerts/{alert_other}/ack");
    let ack_own = format!("/alerts/{alert_own}/ack");
    let get_own = format!("/emergencies/{emergency_own}");

    // ---- refused: every role on the other patient, and each role where it has no right.
    let mut refused = Vec::new();
    let devices = [
        ("wearable", TokenSpec::device(WEARABLE)),
        ("kiosk", TokenSpec::device(KIOSK)),
        ("phone", TokenSpec::device(PHONE)),
    ];
    for (who, spec) in &devices {
        refused.push(
            case(who, spec.clone(), "POST", "/readings")
                .body(readings(&[OTHER]))
                .is(403),
        );
        // Devices hold only vitals/readings.write: the authorizer refuses the rest.
        refused.push(
            case(who, spec.clone(), "POST", "/emergencies")
                .body(raise_body(OWN))
                .is(403),
        );
        refused.push(case(who, spec.clone(), "GET", &get_own).is(403));
        refused.push(case(who, spec.clone(), "POST", &ack_own).is(403));
    }
    // An unbound device (in the audience, no binding) posts for nobody.
    let unbound = TokenSpec::device("unbound-device");
    refused.push(
        case("unbound device", unbound, "POST", "/readings")
            .body(readings(&[OWN]))
            .is(403),
    );
    for (who, spec) in [
        ("health worker w-01", health_worker("w-01")),
        ("roster worker w-02", health_worker("w-02")),
        ("supervisor s-01", TokenSpec::supervisor("s-01")),
    ] {
        refused.push(
            case(who, spec.clone(), "POST", "/readings")
                .body(readings(&[OTHER]))
                .is(403),
        );
        refused.push(
            case(who, spec.clone(), "POST", "/emergencies")
                .body(raise_body(OTHER))
                .is(403),
        );
        refused.push(case(who, spec.clone(), "GET", &get_other).is(403));
        refused.push(case(who, spec.clone(), "POST", &close_other).is(403));
        refused.push(case(who, spec.clone(), "POST", &ambulance_other).is(403));
        refused.push(case(who, spec.clone(), "POST", &ack_other).is(403));
    }
    // One foreign patient makes the whole request a 403.
    refused.push(
        case(
            "health worker w-01",
            health_worker("w-01"),
            "POST",
            "/readings",
        )
        .body(readings(&[OWN, OTHER]))
        .is(403),
    );
    // A supervisor posts no readings, even for their district.
    refused.push(
        case(
            "supervisor s-01",
            TokenSpec::supervisor("s-01"),
            "POST",
            "/readings",
        )
        .body(readings(&[OWN]))
        .is(403),
    );
    // An operator onboards and replays: no emergencies, alerts or histories.
    let operator = TokenSpec::operator("op-1");
    refused.push(
        case("operator", operator.clone(), "POST", "/emergencies")
            .body(raise_body(OWN))
            .is(403),
    );
    refused.push(case("operator", operator.clone(), "GET", &get_own).is(403));
    refused.push(case("operator", operator.clone(), "POST", &ack_own).is(403));
    refused.push(
        case(
            "operator",
            operator.clone(),
            "POST",
            &format!("/emergencies/{emergency_own}/close"),
        )
        .is(403),
    );
    // A person without a known group.
    refused.push(
        case(
            "no group",
            TokenSpec::person("x-1", &["visitors"]),
            "GET",
            &get_own,
        )
        .is(403),
    );
    // Tokens the authorizer refuses: none, expired, another audience, a bad signature.
    let expired = TokenSpec::operator("op-1").with_lifetime_seconds(-60);
    let elsewhere = TokenSpec::operator("op-1").with_client_id("another-app");
    let tampered = devstack::auth::tamper(
        &stack
            .issue_token(&TokenSpec::operator("op-1"))
            .expect("a token"),
    );
    for (who, caller) in [
        ("no token", As::Raw(None)),
        ("expired", As::Token(expired)),
        ("wrong audience", As::Token(elsewhere)),
        ("tampered", As::Raw(Some(format!("Bearer {tampered}")))),
    ] {
        refused.push(Case {
            who,
            caller,
            method: "POST",
            path: "/readings".into(),
            body: Some(readings(&[OWN])),
            statuses: vec![401],
        });
    }
    refused.push(Case {
        who: "no token",
        caller: As::Raw(None),
        method: "POST",
        path: ack_own.clone(),
        body: None,
        statuses: vec![401],
    });

    // ---- the query API (issue 14): reads refused like the rest.
    let read_other = format!("/alerts/{alert_other}");
    let read_own = format!("/alerts/{alert_own}");
    for (who, spec) in &devices {
        // Devices hold no vitals/dashboard.read: the authorizer refuses.
        for path in [
            "/alerts",
            read_own.as_str(),
            "/workers/w-01/inbox",
            "/emergencies",
        ] {
            refused.push(case(who, spec.clone(), "GET", path).is(403));
        }
    }
    for (who, spec) in [
        ("health worker w-01", health_worker("w-01")),
        ("roster worker w-02", health_worker("w-02")),
        ("supervisor s-01", TokenSpec::supervisor("s-01")),
    ] {
        refused.push(case(who, spec, "GET", &read_other).is(403));
    }
    // A health worker reads their own inbox only.
    refused.push(
        case(
            "roster worker w-02",
            health_worker("w-02"),
            "GET",
            "/workers/w-01/inbox",
        )
        .is(403),
    );
    refused.push(
        case(
            "health worker w-01",
            health_worker("w-01"),
            "GET",
            "/workers/w-09/inbox",
        )
        .is(403),
    );
    refused.push(
        case(
            "no group",
            TokenSpec::person("x-1", &["visitors"]),
            "GET",
            "/alerts",
        )
        .is(403),
    );
    for path in [
        "/alerts",
        read_own.as_str(),
        "/workers/w-01/inbox",
        "/emergencies",
    ] {
        refused.push(Case {
            who: "no token",
            caller: As::Raw(None),
            method: "GET",
            path: path.to_string(),
            body: None,
            statuses: vec![401],
        });
    }

    request_log::start(&stack).await.unwrap();
    let wrong = run(&stack, &refused).await;
    assert!(wrong.is_empty(), "refused cases:\n{}", wrong.join("\n"));
    stack.wait_idle(Duration::from_secs(30)).await.unwrap();
    let writes: Vec<_> = request_log::requests(&stack)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.is_write())
        .collect();
    assert!(
        writes.is_empty(),
        "{} refused requests wrote: {writes:?}",
        refused.len()
    );

    // ---- allowed: own patients, each role within its rights.
    let mut allowed = Vec::new();
    for (who, spec) in &devices {
        allowed.push(
            case(who, spec.clone(), "POST", "/readings")
                .body(readings(&[OWN]))
                .is(202),
        );
    }
    for (who, spec) in [
        ("health worker w-01", health_worker("w-01")),
        ("roster worker w-02", health_worker("w-02")),
    ] {
        allowed.push(
            case(who, spec.clone(), "POST", "/readings")
                .body(readings(&[OWN]))
                .is(202),
        );
    }
    allowed.push(
        case("operator", operator.clone(), "POST", "/readings")
            .body(readings(&[OWN, OTHER]))
            .is(202),
    );
    // A patient nobody registered yet, seen at the kiosk or by the worker: not lost.
    for (who, spec) in [
        ("kiosk", TokenSpec::device(KIOSK)),
        ("health worker w-01", health_worker("w-01")),
    ] {
        allowed.push(
            case(who, spec, "POST", "/readings")
                .body(readings(&[OWN, "p-unregistered"]))
                .is(202),
        );
    }
    for (who, spec) in [
        ("health worker w-01", health_worker("w-01")),
        ("roster worker w-02", health_worker("w-02")),
        ("supervisor s-01", TokenSpec::supervisor("s-01")),
    ] {
        allowed.push(case(who, spec, "GET", &get_own).is(200));
    }
    allowed.push(
        case(
            "health worker w-01",
            health_worker("w-01"),
            "POST",
            "/emergencies",
        )
        .body(raise_body(OWN))
        .is(202),
    );
    allowed.push(
        case(
            "roster worker w-02",
            health_worker("w-02"),
            "POST",
            &ack_own,
        )
        .is(200),
    );
    allowed.push(
        case(
            "supervisor s-01",
            TokenSpec::supervisor("s-01"),
            "POST",
            &format!("/emergencies/{emergency_own}/close"),
        )
        // Queued, or already done; 409 while the saga has not reached the patient yet.
        .answers_one_of(&[200, 202, 409]),
    );
    // The query API: operators read everything; people their own patients' and inbox.
    for path in [
        "/alerts",
        read_other.as_str(),
        "/workers/w-09/inbox",
        "/emergencies",
    ] {
        allowed.push(case("operator", operator.clone(), "GET", path).is(200));
    }
    allowed.push(
        case(
            "health worker w-01",
            health_worker("w-01"),
            "GET",
            "/workers/w-01/inbox",
        )
        .is(200),
    );
    allowed.push(
        case(
            "roster worker w-02",
            health_worker("w-02"),
            "GET",
            &read_own,
        )
        .is(200),
    );
    allowed.push(
        case(
            "supervisor s-01",
            TokenSpec::supervisor("s-01"),
            "GET",
            &read_own,
        )
        .is(200),
    );
    allowed.push(
        case(
            "supervisor s-01",
            TokenSpec::supervisor("s-01"),
            "GET",
            "/workers/w-01/inbox",
        )
        .is(200),
    );
    allowed.push(
        case(
            "health worker w-01",
            health_worker("w-01"),
            "GET",
            "/emergencies",
        )
        .is(200),
    );
    let wrong = run(&stack, &allowed).await;
    assert!(wrong.is_empty(), "allowed cases:\n{}", wrong.join("\n"));

    // The acknowledgement names its caller, not anything in a body.
    let acknowledged = inspect::events_of_type(&stack, "AlertAcknowledged")
        .await
        .unwrap();
    let by: Vec<&Value> = acknowledged
        .iter()
        .filter(|e| e["data"]["alertId"] == alert_own.as_str())
        .map(|e| &e["data"]["acknowledgedBy"])
        .collect();
    assert_eq!(by, [&json!("w-02")], "{acknowledged:#?}");
    eprintln!(
        "access matrix: {} refused (0 writes), {} allowed",
        refused.len(),
        allowed.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_throttled_while_an_alert_still_goes_out() {
    let stack = start_stack_configured("throttle", |config| {
        for (name, value) in [
            ("ReadingsThrottleBurst", "10"),
            ("ReadingsThrottleRate", "5"),
        ] {
            config.parameter_overrides.insert(name.into(), value.into());
        }
        config.schedule_interval = Some(Duration::from_secs(3600));
    })
    .await;
    seed(&stack).await;
    let token = bearer(&stack, &TokenSpec::device(KIOSK));

    // A noisy client: 150 requests as fast as 15 connections go.
    let noisy = {
        let stack = &stack;
        let token = token.clone();
        async move {
            futures::stream::iter(0..150)
                .map(|i| {
                    let token = token.clone();
                    async move {
                        let body = json!([reading(OWN, "heart_rate", 70.0 + (i % 10) as f64, 1)]);
                        call(stack, Some(&token), "POST", "/readings", Some(&body))
                            .await
                            .0
                    }
                })
                .buffer_unordered(15)
                .collect::<Vec<u16>>()
                .await
        }
    };
    // Mid-burst, the wearable sends a critical SpO2; like any client it retries a 429.
    let critical = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let wearable = bearer(&stack, &TokenSpec::device(WEARABLE));
        let body = json!([reading(OWN, "spo2", 82.0, 0)]);
        let posted = Instant::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (status, body) =
                call(&stack, Some(&wearable), "POST", "/readings", Some(&body)).await;
            match status {
                202 => break (posted, attempts),
                429 => tokio::time::sleep(Duration::from_millis(100)).await,
                other => panic!("the critical reading got {other}: {body}"),
            }
        }
    };
    let (statuses, (posted, attempts)) = tokio::join!(noisy, critical);
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    let accepted = statuses.iter().filter(|s| **s == 202).count();
    assert!(throttled > 0, "no 429 in the burst: {statuses:?}");
    assert_eq!(throttled + accepted, statuses.len(), "{statuses:?}");

    // The critical reading's alert reaches the worker's notification within 10 s.
    let sent = loop {
        let raised = inspect::events_of_type(&stack, "AlertRaised")
            .await
            .unwrap();
        let spo2: Vec<&Value> = raised
            .iter()
            .filter(|e| e["data"]["ruleId"] == "spo2-low")
            .collect();
        if let Some(alert) = spo2.first() {
            let alert_id = alert["data"]["alertId"].as_str().unwrap().to_string();
            let sent = inspect::events_of_type(&stack, "NotificationSent")
                .await
                .unwrap()
                .into_iter()
                .any(|e| e["data"]["alertId"] == alert_id.as_str());
            if sent {
                break posted.elapsed();
            }
        }
        assert!(
            posted.elapsed() < Duration::from_secs(10),
            "the critical reading's alert was not notified within 10 s of its first attempt"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!(
        "throttle: {accepted} accepted, {throttled} refused with 429 of {}; critical reading accepted after {attempts} attempt(s), notified {:.1} s after its first",
        statuses.len(),
        sent.as_secs_f64()
    );
}
