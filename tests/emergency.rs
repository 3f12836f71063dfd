//! End-to-end tests of issue 6 on the local stack (moto + the real function binaries):
//! the emergency-dispatch saga on every path, redelivery of every message, the race for the
//! last free worker, and acknowledgement escalation. Assertions read the emulator's tables
//! and the HTTP API.

use std::time::{Duration, Instant};

use devstack::{Stack, inspect};
use domain::escalation::{FamilyContact, VillageRoster, Worker};
use e2e::*;
use serde_json::{Value, json};

fn worker(id: &str, available: bool) -> Worker {
    Worker {
        worker_id: id.into(),
        name: format!("Worker {id}"),
        phone: format!("+2547000002{}", &id[id.len() - 2..]),
        village: "Bondo".into(),
        available,
        reserved_by: None,
        language: "en".into(),
    }
}

/// Given: p-1 and p-2 in Bondo, both assigned to w-01; roster w-01, w-02; supervisor s-01;
/// families on file. `free` lists the available workers.
async fn seed(stack: &Stack, free: &[&str]) {
    inspect::seed_directory(
        stack,
        &[
            entry("p-1", "w-01", "+254700000201"),
            entry("p-2", "w-01", "+254700000201"),
        ],
    )
    .await
    .unwrap();
    let workers: Vec<Worker> = ["w-01", "w-02", "s-01"]
        .iter()
        .map(|id| worker(id, free.contains(id)))
        .collect();
    inspect::seed_workers(stack, &workers).await.unwrap();
    inspect::seed_contacts(
        stack,
        &[VillageRoster {
            village: "Bondo".into(),
            worker_ids: vec!["w-01".into(), "w-02".into()],
            supervisor_id: "s-01".into(),
        }],
        &["p-1", "p-2"].map(|p| FamilyContact {
            patient_id: p.into(),
            name: format!("Family of {p}"),
            phone: "+254711000001".into(),
            language: "en".into(),
        }),
    )
    .await
    .unwrap();
}

async fn http(stack: &Stack, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    http_with_key(stack, method, path, body, None).await
}

/// With the district supervisor's token (e2e::supervisor_bearer).
async fn http_with_key(
    stack: &Stack,
    method: &str,
    path: &str,
    body: Option<Value>,
    idempotency_key: Option<&str>,
) -> (u16, Value) {
    let authorization = e2e::supervisor_bearer(stack);
    e2e::api_request(
        stack,
        Some(&authorization),
        method,
        path,
        body.as_ref(),
        idempotency_key,
    )
    .await
}

async fn raise(stack: &Stack, patient: &str) -> String {
    let key = format!("raise-{patient}");
    let (status, body) = http_with_key(
        stack,
        "POST",
        "/emergencies",
        Some(json!({"patientId": patient, "reason": "collapsed at home", "reporter": "w-01"})),
        Some(&key),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    body["emergencyId"].as_str().unwrap().to_string()
}

async fn emergency(stack: &Stack, id: &str) -> Value {
    let (status, body) = http(stack, "GET", &format!("/emergencies/{id}"), None).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn history(state: &Value) -> Vec<String> {
    state["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventType"].as_str().unwrap().to_string())
        .collect()
}

/// Waits until the stack is idle (this includes delayed deadline checks).
async fn settle(stack: &Stack) {
    stack.wait_idle(DRAIN).await.unwrap();
}

async fn outbox_to(stack: &Stack, phone: &str) -> Vec<Value> {
    inspect::scan(stack, "OutboxTable")
        .await
        .unwrap()
        .into_iter()
        .filter(|row| row["recipientPhone"] == phone)
        .collect()
}

async fn reserved_by(stack: &Stack, worker_id: &str) -> Option<String> {
    inspect::scan(stack, "WorkersTable")
        .await
        .unwrap()
        .into_iter()
        .find(|w| w["workerId"] == worker_id)
        .and_then(|w| w["reservedBy"].as_str().map(str::to_string))
}

async fn assert_no_dead_letters(stack: &Stack) {
    for (queue, depth) in inspect::dead_letter_depths(stack).await.unwrap() {
        assert_eq!(depth, 0, "{queue} is not empty");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_assigns_a_worker_and_notifies_the_family() {
    let stack = start_stack("emergency_happy").await;
    seed(&stack, &["w-01", "w-02", "s-01"]).await;
    let id = raise(&stack, "p-1").await;
    settle(&stack).await;

    let state = emergency(&stack, &id).await;
    assert_eq!(state["state"]["status"], "onSite", "{state}");
    assert_eq!(state["state"]["workerId"], "w-01");
    assert_eq!(
        history(&state),
        [
            "EmergencyStarted",
            "WorkerAssigned",
            "WorkerNotified",
            "FamilyNotified"
        ]
    );
    assert_eq!(
        reserved_by(&stack, "w-01").await.as_deref(),
        Some(id.as_str()),
        "held while on site"
    );
    let told = outbox_to(&stack, "+254700000201").await;
    assert_eq!(told.len(), 1, "the worker is told");
    assert!(
        told[0]["message"]
            .as_str()
            .unwrap()
            .contains("collapsed at home")
    );
    let family = outbox_to(&stack, "+254711000001").await;
    assert_eq!(family.len(), 1);
    assert_eq!(family[0]["status"], "sent");
    assert!(
        !family[0]["message"].as_str().unwrap().contains("collapsed"),
        "no diagnosis"
    );
    assert_no_dead_letters(&stack).await;

    // The worker closes it: released, the family hears the end.
    let (status, body) = http(&stack, "POST", &format!("/emergencies/{id}/close"), None).await;
    assert_eq!(status, 202, "{body}");
    settle(&stack).await;
    let state = emergency(&stack, &id).await;
    assert_eq!(state["state"]["status"], "completed", "{state}");
    assert_eq!(
        history(&state)[4..],
        ["EmergencyClosed", "WorkerReleased", "FamilyNotified"]
    );
    assert_eq!(reserved_by(&stack, "w-01").await, None);
    assert_eq!(outbox_to(&stack, "+254711000001").await.len(), 2);
    // The dashboard's view of the emergency, projected from its stream.
    let view = dashboard_view(&stack, &format!("emergency#{id}")).await;
    assert_eq!(view["status"], "completed", "{view}");
    assert_eq!(view["view"]["saga"]["workerId"], "w-01");
    assert!(
        view.get("board").is_none(),
        "finished emergencies leave the board"
    );

    // Every message of the path delivered again: same state, no second reservation or
    // notification, no second save of the view.
    redeliver_everything(&stack).await;
    assert_eq!(
        dashboard_view(&stack, &format!("emergency#{id}")).await,
        view
    );
    let again = emergency(&stack, &id).await;
    assert_eq!(history(&again), history(&state));
    assert_eq!(reserved_by(&stack, "w-01").await, None);
    assert_eq!(reserved_by(&stack, "w-02").await, None);
    assert_eq!(outbox_to(&stack, "+254711000001").await.len(), 2);
    assert_no_dead_letters(&stack).await;
    stack.shutdown().await.unwrap();
}

async fn dashboard_view(stack: &Stack, view_id: &str) -> Value {
    dashboard_item(stack, view_id)
        .await
        .unwrap_or_else(|| panic!("no dashboard view {view_id}"))
}

/// Re-invokes every function with every event it received so far, then waits.
async fn redeliver_everything(stack: &Stack) {
    for function in [
        "EmergencyCoordinatorFunction",
        "EmergencyStepsFunction",
        "NotifyFunction",
        "ProjectFunction",
    ] {
        for record in stack.invocations(function) {
            // HTTP requests are not redelivered (a client retry is a new request).
            if record.payload.get("Records").is_none() {
                continue;
            }
            stack
                .invoke(function, record.payload.clone())
                .await
                .unwrap();
        }
    }
    settle(stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_free_worker_an_ambulance_is_dispatched() {
    let stack = start_stack("emergency_ambulance").await;
    seed(&stack, &[]).await;
    let id = raise(&stack, "p-1").await;
    settle(&stack).await;
    let state = emergency(&stack, &id).await;
    assert_eq!(state["state"]["status"], "completed", "{state}");
    assert_eq!(
        history(&state),
        [
            "EmergencyStarted",
            "WorkerUnavailable",
            "AmbulanceDispatched",
            "FamilyNotified"
        ]
    );
    let ledger = inspect::scan(&stack, "StepLedgerTable").await.unwrap();
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0]["status"], "done");

    redeliver_everything(&stack).await;
    assert_eq!(history(&emergency(&stack, &id).await), history(&state));
    assert_eq!(
        inspect::scan(&stack, "StepLedgerTable")
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(outbox_to(&stack, "+254711000001").await.len(), 1);
    assert_no_dead_letters(&stack).await;
    stack.shutdown().await.unwrap();
}

/// A critical SpO2 alert (hypoxemia needs an ambulance) reaches the saga through the SNS
/// filter policy; the provider fails every request: the worker is released and the district
/// hospital told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_ambulance_is_compensated_and_escalated_to_the_hospital() {
    let stack =
        start_stack_with("emergency_dispatch_fails", &[("AmbulanceFailureRate", "1")]).await;
    seed(&stack, &["w-01"]).await;
    let (status, _) = post(&stack, &json!([reading("p-1", "spo2", 85.0, 1)]), None).await;
    assert_eq!(status, 202);
    settle(&stack).await;

    let started = inspect::events_of_type(&stack, "EmergencyStarted")
        .await
        .unwrap();
    assert_eq!(started.len(), 1);
    let id = started[0]["data"]["emergencyId"]
        .as_str()
        .unwrap()
        .to_string();
    let state = emergency(&stack, &id).await;
    assert_eq!(state["state"]["status"], "escalated", "{state}");
    assert_eq!(
        history(&state),
        [
            "EmergencyStarted",
            "WorkerAssigned",
            "AmbulanceDispatchFailed",
            "WorkerReleased",
            "EscalatedToHospital",
            "FamilyNotified"
        ]
    );
    assert_eq!(reserved_by(&stack, "w-01").await, None);
    assert_eq!(outbox_to(&stack, "+254700009999").await.len(), 1);
    assert_eq!(
        outbox_to(&stack, "+254711000001").await.len(),
        1,
        "the family"
    );

    redeliver_everything(&stack).await;
    assert_eq!(history(&emergency(&stack, &id).await), history(&state));
    assert_eq!(reserved_by(&stack, "w-01").await, None);
    assert_eq!(outbox_to(&stack, "+254700009999").await.len(), 1);
    assert_no_dead_letters(&stack).await;
    stack.shutdown().await.unwrap();
}

/// The provider takes 6 s, the step deadline is 2 s: the dispatch times out, the request
/// is cancelled and the case escalated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_that_times_out_is_compensated() {
    let stack = start_stack_with(
        "emergency_timeout",
        &[("StepDeadlineSeconds", "2"), ("AmbulanceDelayMs", "6000")],
    )
    .await;
    seed(&stack, &[]).await;
    let id = raise(&stack, "p-1").await;
    settle(&stack).await;
    let state = emergency(&stack, &id).await;
    assert_eq!(state["state"]["status"], "escalated", "{state}");
    let events = history(&state);
    assert_eq!(
        events[..3],
        ["EmergencyStarted", "WorkerUnavailable", "StepTimedOut"]
    );
    assert_eq!(state["history"][2]["data"]["step"], "dispatchAmbulance");
    for expected in ["AmbulanceCancelled", "EscalatedToHospital"] {
        assert!(events.iter().any(|e| e == expected), "{events:?}");
    }
    // The family hears once: the hospital has taken over.
    let family: Vec<&Value> = state["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["eventType"] == "FamilyNotified")
        .collect();
    assert_eq!(family.len(), 1, "{events:?}");
    assert_eq!(family[0]["data"]["stage"], "hospital");
    assert_eq!(outbox_to(&stack, "+254700009999").await.len(), 1);
    assert_no_dead_letters(&stack).await;
    let ledger = inspect::scan(&stack, "StepLedgerTable")
        .await
        .unwrap()
        .len();

    // Every message of the path delivered again: same history, no second dispatch
    // request (ledger) or hospital notification.
    redeliver_everything(&stack).await;
    assert_eq!(history(&emergency(&stack, &id).await), events);
    assert_eq!(
        inspect::scan(&stack, "StepLedgerTable")
            .await
            .unwrap()
            .len(),
        ledger
    );
    assert_eq!(outbox_to(&stack, "+254700009999").await.len(), 1);
    assert_no_dead_letters(&stack).await;
    stack.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_emergencies_race_for_the_last_free_worker() {
    let stack = start_stack("emergency_race").await;
    seed(&stack, &["w-02"]).await;
    let (a, b) = tokio::join!(raise(&stack, "p-1"), raise(&stack, "p-2"));
    settle(&stack).await;
    let mut winners = Vec::new();
    let mut histories = Vec::new();
    for id in [&a, &b] {
        let state = emergency(&stack, id).await;
        histories.push(history(&state));
        if history(&state).iter().any(|e| e == "WorkerAssigned") {
            assert_eq!(state["state"]["status"], "onSite", "{state}");
            assert_eq!(state["state"]["workerId"], "w-02");
            winners.push(id.clone());
        } else {
            assert_eq!(state["state"]["status"], "completed", "{state}");
            assert!(history(&state).iter().any(|e| e == "AmbulanceDispatched"));
        }
    }
    assert_eq!(winners.len(), 1, "exactly one emergency gets the worker");
    assert_eq!(reserved_by(&stack, "w-02").await, Some(winners[0].clone()));

    // Every message of both sagas delivered again: same histories, same reservation.
    redeliver_everything(&stack).await;
    for (id, before) in [&a, &b].into_iter().zip(&histories) {
        assert_eq!(&history(&emergency(&stack, id).await), before);
    }
    assert_eq!(reserved_by(&stack, "w-02").await, Some(winners[0].clone()));
    assert_no_dead_letters(&stack).await;
    stack.shutdown().await.unwrap();
}

/// Two tachycardia alerts (warning: no saga). One is acknowledged right after routing, the
/// other is not: after the 5 s acknowledgement timeout only the second escalates, to the
/// next worker of the village.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_alerts_escalate_on_time_and_acknowledged_ones_do_not() {
    let stack = start_stack_with("alert_escalation", &[("AckTimeoutSeconds", "5")]).await;
    seed(&stack, &["w-01", "w-02", "s-01"]).await;
    let mut body = Vec::new();
    for p in ["p-1", "p-2"] {
        for (i, hr) in [121.0, 128.0, 133.0].into_iter().enumerate() {
            body.push(reading(p, "heart_rate", hr, 3 - i as i64));
        }
    }
    let (status, _) = post(&stack, &Value::Array(body), None).await;
    assert_eq!(status, 202);

    // Acknowledge p-1's alert as soon as it is routed.
    let started = Instant::now();
    let acked = loop {
        let routed = inspect::events_of_type(&stack, "AlertRouted")
            .await
            .unwrap();
        if let Some(r) = routed.iter().find(|r| r["data"]["patientId"] == "p-1") {
            break r["data"]["alertId"].as_str().unwrap().to_string();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "p-1 never routed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let path = format!("/alerts/{acked}/ack");
    let (status, ack) = http(&stack, "POST", &path, Some(json!({"workerId": "w-01"}))).await;
    assert_eq!(
        (status, &ack["alreadyAcknowledged"]),
        (200, &json!(false)),
        "{ack}"
    );
    let (status, ack) = http(&stack, "POST", &path, Some(json!({"workerId": "w-01"}))).await;
    assert_eq!(
        (status, &ack["alreadyAcknowledged"]),
        (200, &json!(true)),
        "{ack}"
    );
    settle(&stack).await;

    let escalated = inspect::events_of_type(&stack, "AlertEscalated")
        .await
        .unwrap();
    assert!(
        escalated
            .iter()
            .all(|e| e["data"]["alertId"] != acked.as_str()),
        "an acknowledged alert escalated: {escalated:?}"
    );
    // p-2: first to w-02 (level 1), then, still unacknowledged, to the supervisor.
    let recipients: Vec<&str> = escalated
        .iter()
        .map(|e| e["data"]["recipientId"].as_str().unwrap())
        .collect();
    assert_eq!(recipients.len(), 2, "{escalated:?}");
    assert!(recipients.contains(&"w-02") && recipients.contains(&"s-01"));
    // On time: no earlier than the timeout after the alert was raised, and not much later.
    let raised = inspect::events_of_type(&stack, "AlertRaised")
        .await
        .unwrap();
    let p2 = raised
        .iter()
        .find(|r| r["data"]["patientId"] == "p-2")
        .unwrap();
    let at =
        |v: &Value| chrono::DateTime::parse_from_rfc3339(v["timestamp"].as_str().unwrap()).unwrap();
    let first = escalated.iter().find(|e| e["data"]["level"] == 1).unwrap();
    let after = (at(first) - at(p2)).num_milliseconds();
    assert!(
        (5_000..12_000).contains(&after),
        "escalated {after} ms after the alert"
    );
    let to_w02 = outbox_to(&stack, "+254700000202").await;
    assert_eq!(to_w02.len(), 1);
    assert!(
        to_w02[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("[ESCALATED")
    );
    assert_no_dead_letters(&stack).await;
    stack.shutdown().await.unwrap();
}

/// The reservation itself, without the function runtime in between: ten emergencies call
/// the conditional update on moto at the same time; exactly one gets the worker, and a
/// repeat by the winner still succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_conditional_reservations_let_exactly_one_emergency_win() {
    use application::ports::Workers;
    let stack = start_stack("worker_reservation_race").await;
    seed(&stack, &["w-02"]).await;
    let table = stack.resource("WorkersTable").unwrap().ref_value.clone();
    let workers = std::sync::Arc::new(aws_adapters::DynamoWorkers::new(stack.sdk_config(), table));
    let mut attempts = tokio::task::JoinSet::new();
    for i in 0..10 {
        let workers = workers.clone();
        attempts
            .spawn(async move { (i, workers.reserve("w-02", &format!("e-{i}")).await.unwrap()) });
    }
    let results = attempts.join_all().await;
    let winners: Vec<usize> = results
        .iter()
        .filter(|(_, won)| *won)
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    let winner = format!("e-{}", winners[0]);
    assert_eq!(
        reserved_by(&stack, "w-02").await.as_deref(),
        Some(winner.as_str())
    );
    assert!(workers.reserve("w-02", &winner).await.unwrap());
    assert!(
        !workers.reserve("w-01", "e-x").await.unwrap(),
        "w-01 is unavailable"
    );
    workers.release("w-02", "e-other").await.unwrap();
    assert_eq!(
        reserved_by(&stack, "w-02").await.as_deref(),
        Some(winner.as_str())
    );
    workers.release("w-02", &winner).await.unwrap();
    assert_eq!(reserved_by(&stack, "w-02").await, None);
    stack.shutdown().await.unwrap();
}
