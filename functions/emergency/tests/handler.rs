//! Given/when/then tests of the emergency handler with in-memory ports. A small pump plays
//! SQS: it delivers every message the handler sent (optionally each one twice) until none
//! is left; deadline checks are held back until a test lets them fire.

use std::collections::BTreeSet;
use std::time::Duration;

use application::ports::{Channel, EventStore, StoredEvent};
use aws_adapters::SimulatedAmbulance;
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use chrono::Utc;
use domain::envelope::Envelope;
use domain::escalation::{FamilyContact, VillageRoster, Worker};
use domain::events::{AlertRaised, AlertRouted, Severity, alert_stream};
use domain::saga::{Status, emergency_id_for_alert, emergency_stream};
use emergency::{Config, Deps, handle};
use serde_json::{Value, json};
use testkit::fixtures::{self, AlertRaisedFixture};
use testkit::*;

const ESCALATION_ARN: &str = "arn:aws:sqs:us-east-1:000000000000:EscalationQueue";

struct World {
    events: MemoryEventStore,
    bus: MemoryBus,
    directory: MemoryDirectory,
    contacts: MemoryContacts,
    workers: MemoryWorkers,
    ambulance: SimulatedAmbulance,
    ledger: MemoryLedger,
    notifications: FlakyQueue,
    ack_codes: MemoryAckCodes,
    /// Deadline checks sent but not delivered yet.
    deadlines: std::sync::Mutex<Vec<String>>,
}

/// The notification queue, failing its next `failures` sends (a process that dies or a
/// queue that refuses between two side effects).
#[derive(Default)]
struct FlakyQueue {
    inner: MemoryQueue,
    failures: std::sync::atomic::AtomicUsize,
}

impl std::ops::Deref for FlakyQueue {
    type Target = MemoryQueue;
    fn deref(&self) -> &MemoryQueue {
        &self.inner
    }
}

#[async_trait::async_trait]
impl application::ports::NotificationQueue for FlakyQueue {
    async fn send(
        &self,
        request: &Envelope<domain::events::NotificationRequested>,
    ) -> Result<(), application::ports::PortError> {
        use std::sync::atomic::Ordering;
        if self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(application::ports::PortError::Backend(
                "injected: the notify queue is unreachable".into(),
            ));
        }
        self.inner.send(request).await
    }
}

fn worker(id: &str, available: bool) -> Worker {
    Worker {
        worker_id: id.into(),
        name: format!("Worker {id}"),
        phone: format!("+2547000001{}", &id[id.len() - 2..]),
        village: "Bondo".into(),
        available,
        reserved_by: None,
        language: "en".into(),
    }
}

impl World {
    /// Given: p-1 of Bondo (assigned w-01), roster w-01, w-02, supervisor s-01; family known.
    fn new(ambulance_failure_rate: f64, free_workers: &[&str]) -> World {
        let entry = |p: &str| fixtures::directory_entry(p, "w-01", "+254700000101");
        let contacts = MemoryContacts::default();
        let roster = VillageRoster {
            village: "Bondo".into(),
            worker_ids: vec!["w-01".into(), "w-02".into()],
            supervisor_id: "s-01".into(),
        };
        contacts
            .rosters
            .lock()
            .unwrap()
            .insert("Bondo".into(), roster.clone());
        for p in ["p-1", "p-2"] {
            contacts.families.lock().unwrap().insert(
                p.into(),
                FamilyContact {
                    patient_id: p.into(),
                    name: format!("Family of {p}"),
                    phone: "+254711000001".into(),
                    language: "en".into(),
                },
            );
        }
        World {
            events: MemoryEventStore::default(),
            bus: MemoryBus::default(),
            directory: MemoryDirectory::with([entry("p-1"), entry("p-2")]).with_roster(roster),
            contacts,
            workers: MemoryWorkers::with(
                ["w-01", "w-02", "s-01"].map(|id| worker(id, free_workers.contains(&id))),
            ),
            ambulance: SimulatedAmbulance::new(ambulance_failure_rate, Duration::ZERO),
            ledger: MemoryLedger::default(),
            notifications: FlakyQueue::default(),
            ack_codes: MemoryAckCodes::default(),
            deadlines: Default::default(),
        }
    }

    fn deps(&self) -> Deps<'_> {
        Deps {
            events: &self.events,
            reader: &self.events,
            bus: &self.bus,
            directory: &self.directory,
            access: &self.directory,
            contacts: &self.contacts,
            workers: &self.workers,
            ambulance: &self.ambulance,
            ledger: &self.ledger,
            notifications: &self.notifications,
            ack_codes: &self.ack_codes,
            config: Config {
                step_deadline_seconds: 5,
                ack_timeout_seconds: 7,
                hospital_phone: "+254700009999".into(),
                hospital_language: "en".into(),
                escalation_queue_arn: ESCALATION_ARN.into(),
                open_timeout_seconds: 3600,
                inbound_queue_arn: "arn:aws:sqs:us-east-1:000000000000:InboundSmsQueue".into(),
            },
        }
    }

    async fn sqs(&self, arn: &str, bodies: &[String]) -> Value {
        let response = self.sqs_response(arn, bodies).await;
        assert_eq!(response["batchItemFailures"], json!([]), "{response}");
        response
    }

    /// Delivers an SQS batch and returns the handler's response, failures included.
    async fn sqs_response(&self, arn: &str, bodies: &[String]) -> Value {
        let records: Vec<Value> = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| json!({"messageId": format!("m-{i}"), "body": b, "eventSourceARN": arn}))
            .collect();
        handle(&self.deps(), json!({ "Records": records }), Utc::now())
            .await
            .unwrap()
    }

    /// Delivers saga and step messages (each `copies` times) until none is left.
    async fn pump(&self, copies: usize) {
        for _ in 0..50 {
            let saga = self.bus.take(Channel::Saga);
            let steps = self.bus.take(Channel::Steps);
            if saga.is_empty() && steps.is_empty() {
                return;
            }
            let mut now_saga = Vec::new();
            for (body, delay) in saga {
                if delay > 0 {
                    self.deadlines.lock().unwrap().push(body);
                } else {
                    now_saga.extend(std::iter::repeat_n(body, copies));
                }
            }
            let steps: Vec<String> = steps
                .into_iter()
                .flat_map(|(b, _)| std::iter::repeat_n(b, copies))
                .collect();
            for body in steps {
                self.sqs("arn:StepsQueue", &[body]).await;
            }
            for body in now_saga {
                self.sqs("arn:SagaQueue", &[body]).await;
            }
        }
        panic!("the saga did not settle");
    }

    async fn fire_deadlines(&self) {
        let due: Vec<String> = self.deadlines.lock().unwrap().drain(..).collect();
        for body in due {
            self.sqs("arn:SagaQueue", &[body]).await;
        }
    }

    /// An API request by Bondo's supervisor s-01, with a fresh `Idempotency-Key`.
    async fn http(&self, route: &str, id: Option<&str>, body: Value) -> (i64, Value) {
        self.http_by(person("s-01", "supervisor"), route, id, body)
            .await
    }

    /// An API request by the person with these token claims, with a fresh
    /// `Idempotency-Key`.
    async fn http_by(
        &self,
        claims: Value,
        route: &str,
        id: Option<&str>,
        body: Value,
    ) -> (i64, Value) {
        let key = uuid::Uuid::new_v4().to_string();
        let request = token_request(route, id, body, Some(&key), Some(claims));
        let (status, body, _) = call_api(&self.deps(), &request).await;
        (status, body)
    }

    /// `POST /emergencies` for `patient` by the health worker w-01, with a fresh
    /// `Idempotency-Key`.
    async fn raise(&self, patient: &str) -> String {
        self.raise_with_key(patient, &uuid::Uuid::new_v4().to_string())
            .await
    }

    async fn raise_with_key(&self, patient: &str, key: &str) -> String {
        let request = signed_request(
            "POST /emergencies",
            None,
            json!({"patientId": patient, "reason": "collapsed", "reporter": "w-01"}),
            Some(key),
            "w-01",
        );
        let (status, body, _) = call_api(&self.deps(), &request).await;
        assert_eq!(status, 202, "{body}");
        self.deliver_queued_inputs().await;
        body["emergencyId"].as_str().unwrap().to_string()
    }

    /// Delivers the saga inputs the API queued (deadline checks stay queued).
    async fn deliver_queued_inputs(&self) {
        use application::ports::MessageBus;
        let (now, later): (Vec<_>, Vec<_>) = self
            .bus
            .take(Channel::Saga)
            .into_iter()
            .partition(|(_, delay)| *delay == 0);
        for (body, delay) in later {
            self.bus
                .send(Channel::Saga, "SagaInput", &body, delay)
                .await
                .unwrap();
        }
        for (body, _) in now {
            self.sqs("arn:SagaQueue", &[body]).await;
        }
    }

    /// The worker on site closes the emergency.
    async fn close(&self, emergency_id: &str) {
        let (status, body) = self
            .http(
                "POST /emergencies/{id}/close",
                Some(emergency_id),
                json!({}),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        self.pump(1).await;
    }

    async fn state(&self, emergency_id: &str) -> Value {
        let (status, body) = self
            .http("GET /emergencies/{id}", Some(emergency_id), json!(null))
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    fn history(&self, emergency_id: &str) -> Vec<String> {
        self.events
            .stream(&emergency_stream(emergency_id))
            .into_iter()
            .map(|e| e.event_type)
            .collect()
    }

    fn notification_ids(&self) -> BTreeSet<String> {
        self.notifications
            .sent
            .lock()
            .unwrap()
            .iter()
            .map(|n| n.data.notification_id.clone())
            .collect()
    }
}

/// i18n (issue 16): the worker reads their emergency SMS in their language, the family in
/// theirs (the family contact's `language`).
#[tokio::test]
async fn the_worker_and_the_family_are_told_in_their_own_languages() {
    let world = World::new(0.0, &["w-01", "w-02", "s-01"]);
    if let Some(w) = world.workers.workers.lock().unwrap().get_mut("w-01") {
        w.language = "hi".into();
    }
    if let Some(f) = world.contacts.families.lock().unwrap().get_mut("p-1") {
        f.language = "sw".into();
    }
    let id = world.raise("p-1").await;
    world.pump(1).await;
    let sent = world.notifications.sent.lock().unwrap().clone();
    let reference = &id[..8];
    let worker = &sent[0].data.message;
    assert!(worker.starts_with("[आपातकाल] "), "{worker}");
    assert!(worker.contains(&format!("संदर्भ {reference}")), "{worker}");
    assert!(worker.contains("जवाब दें: ACK "), "{worker}");
    let family = &sent[1].data.message;
    assert_eq!(
        family,
        &format!(
            "Family of p-1: dharura ya afya imeripotiwa kwa mwanafamilia wako. Msaada uko njiani. Kumb {reference}."
        )
    );
}

#[tokio::test]
async fn happy_path_reserves_the_assigned_worker_and_notifies_the_family() {
    let world = World::new(0.0, &["w-01", "w-02", "s-01"]);
    let id = world.raise("p-1").await;
    world.pump(1).await;

    let state = world.state(&id).await;
    assert_eq!(state["state"]["status"], "onSite");
    assert_eq!(state["state"]["workerId"], "w-01");
    assert_eq!(
        world.history(&id),
        [
            "EmergencyStarted",
            "WorkerAssigned",
            "WorkerNotified",
            "FamilyNotified"
        ]
    );
    assert_eq!(
        world.workers.reserved_by("w-01").as_deref(),
        Some(id.as_str()),
        "held while the worker is on site"
    );
    let phones: Vec<String> = world
        .notifications
        .sent
        .lock()
        .unwrap()
        .iter()
        .map(|n| n.data.recipient_phone.clone())
        .collect();
    assert_eq!(
        phones,
        ["+254700000101", "+254711000001"],
        "worker, then family"
    );
    let family = world.notifications.sent.lock().unwrap()[1].clone();
    assert!(
        !family.data.message.contains("collapsed"),
        "no diagnosis for the family: {}",
        family.data.message
    );

    world.close(&id).await;
    assert_eq!(world.state(&id).await["state"]["status"], "completed");
    assert_eq!(world.workers.reserved_by("w-01"), None);
    assert_eq!(
        world.history(&id)[4..],
        ["EmergencyClosed", "WorkerReleased", "FamilyNotified"]
    );
    assert_eq!(
        world.notification_ids().len(),
        3,
        "the family hears the end"
    );
}

#[tokio::test]
async fn without_a_free_worker_an_ambulance_is_dispatched() {
    let world = World::new(0.0, &[]);
    let id = world.raise("p-1").await;
    world.pump(1).await;
    assert_eq!(
        world.history(&id),
        [
            "EmergencyStarted",
            "WorkerUnavailable",
            "AmbulanceDispatched",
            "FamilyNotified"
        ],
        "nobody on site: done once the family knows"
    );
    assert_eq!(world.state(&id).await["state"]["status"], "completed");
}

/// A critical hypoxemia alert needs an ambulance; the provider fails: the worker is
/// released and the hospital told.
#[tokio::test]
async fn failed_dispatch_releases_the_worker_and_escalates_to_the_hospital() {
    let world = World::new(1.0, &["w-01"]);
    let alert = critical_alert("p-1");
    world
        .sqs(
            "arn:EmergencyQueue",
            &[serde_json::to_string(&alert).unwrap()],
        )
        .await;
    world.pump(1).await;
    let id = emergency_id_for_alert(&alert.data.alert_id);
    assert_eq!(
        world.history(&id),
        [
            "EmergencyStarted",
            "WorkerAssigned",
            "AmbulanceDispatchFailed",
            "WorkerReleased",
            "EscalatedToHospital",
            "FamilyNotified"
        ]
    );
    assert_eq!(world.state(&id).await["state"]["status"], "escalated");
    assert_eq!(world.workers.reserved_by("w-01"), None);
    let sent = world.notifications.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].data.recipient_phone, "+254700009999");
    assert_eq!(sent[1].data.recipient_phone, "+254711000001", "the family");
}

#[tokio::test]
async fn a_step_that_misses_its_deadline_is_compensated() {
    let world = World::new(0.0, &["w-01"]);
    let id = world.raise("p-1").await;
    // The reservation happens, but its result is lost before the coordinator sees it; the
    // deadline fires first.
    world
        .sqs(
            "arn:StepsQueue",
            &[world.bus.take(Channel::Steps)[0].0.clone()],
        )
        .await;
    let lost = world.bus.take(Channel::Saga);
    world
        .deadlines
        .lock()
        .unwrap()
        .extend(lost.iter().filter(|(_, d)| *d > 0).map(|(b, _)| b.clone()));
    world.fire_deadlines().await;
    world.pump(1).await;
    assert_eq!(
        world.history(&id),
        [
            "EmergencyStarted",
            "StepTimedOut",
            "EscalatedToHospital",
            "FamilyNotified"
        ]
    );
    // The late result arrives: the worker reserved after the timeout is released.
    for (body, _) in lost.iter().filter(|(_, d)| *d == 0) {
        world.sqs("arn:SagaQueue", std::slice::from_ref(body)).await;
    }
    world.pump(1).await;
    assert_eq!(
        world.history(&id),
        [
            "EmergencyStarted",
            "StepTimedOut",
            "EscalatedToHospital",
            "FamilyNotified",
            "WorkerAssigned",
            "WorkerReleased"
        ]
    );
    assert_eq!(world.state(&id).await["state"]["status"], "escalated");
    assert_eq!(world.workers.reserved_by("w-01"), None);
}

#[tokio::test]
async fn every_message_delivered_twice_gives_the_same_outcome() {
    // (failure rate, free workers, notifications: worker + family, family, hospital + family)
    for (rate, free, sent) in [(0.0, vec!["w-01"], 2), (0.0, vec![], 1), (1.0, vec![], 2)] {
        let once = World::new(rate, &free);
        let twice = World::new(rate, &free);
        let a = once.raise("p-1").await;
        once.pump(1).await;
        // Same idempotency: the request itself is repeated too.
        let b = twice.raise_with_key("p-1", "k-twice").await;
        assert_eq!(b, twice.raise_with_key("p-1", "k-twice").await);
        twice.pump(2).await;
        once.fire_deadlines().await;
        twice.fire_deadlines().await;
        assert_eq!(
            once.history(&a),
            twice.history(&b),
            "rate {rate}, free {free:?}"
        );
        assert_eq!(
            once.state(&a).await["state"]["status"],
            twice.state(&b).await["state"]["status"]
        );
        assert_eq!(
            *twice.workers.reservations.lock().unwrap(),
            free.len().min(1)
        );
        let dispatches = twice
            .ambulance
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.starts_with("dispatch"))
            .count();
        assert!(dispatches <= 1, "{dispatches} dispatches");
        // Different emergency ids, so compare how many distinct notifications there were.
        assert_eq!(
            once.notification_ids().len(),
            twice.notification_ids().len()
        );
        assert_eq!(twice.notification_ids().len(), sent);
    }
}

#[tokio::test]
async fn two_emergencies_race_for_the_last_free_worker() {
    let world = World::new(0.0, &["w-02"]);
    let first = world.raise("p-1").await;
    let second = world.raise("p-2").await;
    world.pump(1).await;
    let assigned: Vec<bool> = [&first, &second]
        .iter()
        .map(|id| world.history(id).contains(&"WorkerAssigned".to_string()))
        .collect();
    assert_eq!(assigned.iter().filter(|a| **a).count(), 1, "{assigned:?}");
    for (id, assigned) in [(&first, assigned[0]), (&second, assigned[1])] {
        let expected = if assigned { "onSite" } else { "completed" };
        assert_eq!(world.state(id).await["state"]["status"], expected);
    }
}

#[tokio::test]
async fn bad_requests_get_clear_errors() {
    let world = World::new(0.0, &[]);
    let (status, body) = world
        .http("POST /emergencies", None, json!({"patientId": "p-1"}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "BadRequest");
    assert_eq!(body["message"], "missing or empty fields: reason, reporter");
    let (status, _) = world
        .http(
            "POST /emergencies",
            None,
            json!({"patientId": "p-9", "reason": "x", "reporter": "w"}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = world
        .http("GET /emergencies/{id}", Some("nope"), json!(null))
        .await;
    assert_eq!(status, 404);
}

/// An API request with `body` as given (e.g. a key twice), with a fresh `Idempotency-Key`.
async fn raw_http(world: &World, route: &str, id: Option<&str>, body: &str) -> (i64, Value) {
    // By Bondo's supervisor: identity passes, so the input checks answer.
    let mut request = testkit::http::request_with_claims("POST", person("s-01", "supervisor"));
    request.route_key = Some(route.into());
    if let Some(id) = id {
        request.path_parameters.insert("id".into(), id.into());
    }
    request.body = Some(body.to_string());
    let key = uuid::Uuid::new_v4().to_string();
    request
        .headers
        .insert("idempotency-key", key.parse().unwrap());
    let (status, body, _) = call_api(&world.deps(), &request).await;
    (status, body)
}

/// Issue 13: the API's inputs are bounded and checked as ingest's are; a refused request
/// queues nothing.
#[tokio::test]
async fn oversized_unknown_duplicate_and_control_character_inputs_are_400_and_queue_nothing() {
    let world = World::new(0.0, &["w-01"]);
    let raise = "POST /emergencies";
    let valid = json!({"patientId": "p-1", "reason": "collapsed", "reporter": "w-01"});
    let refused = |name: &str, body: String| (name.to_string(), body);
    let mut cases = Vec::new();
    let with = |field: &str, value: Value| {
        let mut body = valid.clone();
        body[field] = value;
        body.to_string()
    };
    cases.push(refused(
        "a 300 KB reason",
        with("reason", json!("x".repeat(300_000))),
    ));
    cases.push(refused(
        "a 101-character reporter",
        with("reporter", json!("r".repeat(101))),
    ));
    cases.push(refused(
        "a patient id of 65 characters",
        with("patientId", json!("p".repeat(65))),
    ));
    cases.push(refused(
        "a patient id with a space",
        with("patientId", json!("p 1")),
    ));
    cases.push(refused(
        "a control character",
        with("reporter", json!("w-01\u{7}")),
    ));
    cases.push(refused("an unknown field", with("reasn", json!("typo"))));
    cases.push(refused(
        "a non-boolean ambulance flag",
        with("ambulanceRequired", json!("yes")),
    ));
    cases.push(refused(
        "a key twice",
        r#"{"patientId": "p-1", "reason": "collapsed", "reporter": "w-01", "reason": "other"}"#
            .to_string(),
    ));
    for (name, body) in cases {
        let (status, reply) = raw_http(&world, raise, None, &body).await;
        assert_eq!(status, 400, "{name}: {reply}");
        assert_eq!(reply["error"], "BadRequest", "{name}");
        assert!(
            reply["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty() && m.len() < 2048),
            "{name}: {reply}"
        );
    }
    // The other bodies and the path ids.
    let long_id = "e".repeat(129);
    let others = [
        (
            "POST /emergencies/{id}/close",
            "e-1",
            r#"{"closedBy": "me"}"#,
        ),
        ("POST /emergencies/{id}/ambulance", "e-1", r#"{"x": 1}"#),
        ("POST /emergencies/{id}/close", long_id.as_str(), "{}"),
        ("GET /emergencies/{id}", "e 1", ""),
        ("POST /alerts/{id}/ack", "a-1", r#"{"workerId": "w\n01"}"#),
        (
            "POST /alerts/{id}/ack",
            "a-1",
            r#"{"workerId": "w-01", "workerId": "w-02"}"#,
        ),
        ("POST /alerts/{id}/ack", "a-1", r#"{"worker": "w-01"}"#),
    ];
    for (route, id, body) in others {
        let (status, reply) = raw_http(&world, route, Some(id), body).await;
        assert_eq!(status, 400, "{route} {id} {body}: {reply}");
    }
    assert!(world.bus.take(Channel::Saga).is_empty(), "nothing queued");
    assert!(world.events.all().is_empty(), "nothing recorded");

    // A reason of 500 characters (with a line break) is fine.
    let mut body = valid.clone();
    body["reason"] = json!(format!("{}\n{}", "a".repeat(250), "b".repeat(249)));
    let (status, reply) = raw_http(&world, raise, None, &body.to_string()).await;
    assert_eq!(status, 202, "{reply}");
}

/// p's critical hypoxemia alert as detect publishes it.
fn critical_alert(patient: &str) -> Envelope<AlertRaised> {
    fixtures::alert_envelope(fixtures::alert_raised(patient))
}

/// Stores the alert and its routing to w-01 as detect and route leave them.
async fn store_routed(world: &World, alert: &Envelope<AlertRaised>) {
    let stream = alert_stream(&alert.data.alert_id);
    world
        .events
        .append(&stream, 0, &StoredEvent::from_envelope(alert).unwrap())
        .await
        .unwrap();
    let routed = Envelope::new(
        format!("routed-{}", alert.data.patient_id),
        "route",
        alert.child_lineage(),
        Utc::now(),
        AlertRouted {
            alert_id: alert.data.alert_id.clone(),
            patient_id: alert.data.patient_id.clone(),
            worker_id: "w-01".into(),
            notification_id: "n-1".into(),
        },
    );
    world
        .events
        .append(&stream, 1, &StoredEvent::from_envelope(&routed).unwrap())
        .await
        .unwrap();
}

/// p's critical alert, stored and routed.
async fn routed_alert(world: &World, patient: &str) -> Envelope<AlertRaised> {
    let alert = critical_alert(patient);
    store_routed(world, &alert).await;
    alert
}

/// i18n (issue 16): each person of the escalation chain reads the forwarded alert in their
/// own language.
#[tokio::test]
async fn an_escalated_alert_is_in_each_recipients_language() {
    let world = World::new(0.0, &["w-01", "w-02"]);
    for (id, language) in [("w-02", "sw"), ("s-01", "hi")] {
        if let Some(w) = world.workers.workers.lock().unwrap().get_mut(id) {
            w.language = language.into();
        }
    }
    let alert = routed_alert(&world, "p-1").await;
    world
        .sqs(ESCALATION_ARN, &[serde_json::to_string(&alert).unwrap()])
        .await;
    let due = world.bus.take(Channel::Escalation);
    world.sqs(ESCALATION_ARN, &[due[0].0.clone()]).await;
    let sent = world.notifications.sent.lock().unwrap().clone();
    let texts: Vec<(&str, &str)> = sent
        .iter()
        .map(|n| (n.data.recipient_id.as_str(), n.data.message.as_str()))
        .collect();
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert_eq!(texts[0].0, "w-02");
    assert!(
        texts[0].1.starts_with("[IMEPANDISHWA, ngazi 1] [HATARI] "),
        "{texts:?}"
    );
    assert!(texts[0].1.contains(" Jibu ACK "), "{texts:?}");
    assert_eq!(texts[1].0, "s-01");
    assert!(
        texts[1].1.starts_with("[आगे भेजा, स्तर 2] [गंभीर] "),
        "{texts:?}"
    );
    assert!(texts[1].1.contains("जवाब दें: ACK "), "{texts:?}");
}

#[tokio::test]
async fn unacknowledged_alerts_escalate_along_the_chain_and_acknowledged_ones_do_not() {
    let world = World::new(0.0, &["w-01", "w-02"]);
    let alert = routed_alert(&world, "p-1").await;
    let body = serde_json::to_string(&alert).unwrap();

    // Level 0 deadline (the escalation queue delivers the alert late): w-02 is told.
    world
        .sqs(ESCALATION_ARN, &[body.clone(), body.clone()])
        .await;
    let stream = alert_stream(&alert.data.alert_id);
    let types: Vec<String> = world
        .events
        .stream(&stream)
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(types, ["AlertRaised", "AlertRouted", "AlertEscalated"]);
    // A repeated check re-sends the same request (notify dedupes by its id).
    assert_eq!(
        world.notification_ids().len(),
        1,
        "a repeated check tells nobody new"
    );
    let sent = world.notifications.sent.lock().unwrap().clone();
    assert_eq!(sent[0].data.recipient_id, "w-02");
    let due = world.bus.take(Channel::Escalation);
    assert!(due.iter().all(|d| d == &due[0]), "{due:?}");
    assert_eq!(due[0].1, 7);

    // Level 1 deadline: the supervisor.
    world.sqs(ESCALATION_ARN, &[due[0].0.clone()]).await;
    let last = world.events.stream(&stream).pop().unwrap();
    assert_eq!(last.data["recipientId"], "s-01");
    assert_eq!(last.data["level"], 2);
    assert!(
        world.bus.take(Channel::Escalation).is_empty(),
        "the chain ends"
    );

    // Acknowledged: idempotent, and a later check escalates nothing.
    let other = routed_alert(&world, "p-2").await;
    let (status, body) = world
        .http(
            "POST /alerts/{id}/ack",
            Some(&other.data.alert_id),
            json!({"workerId": "w-01"}),
        )
        .await;
    assert_eq!((status, &body["alreadyAcknowledged"]), (200, &json!(false)));
    let (status, body) = world
        .http(
            "POST /alerts/{id}/ack",
            Some(&other.data.alert_id),
            json!({"workerId": "w-01"}),
        )
        .await;
    assert_eq!((status, &body["alreadyAcknowledged"]), (200, &json!(true)));
    world
        .sqs(ESCALATION_ARN, &[serde_json::to_string(&other).unwrap()])
        .await;
    let types: Vec<String> = world
        .events
        .stream(&alert_stream(&other.data.alert_id))
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(types, ["AlertRaised", "AlertRouted", "AlertAcknowledged"]);
    let (status, _) = world
        .http("POST /alerts/{id}/ack", Some("unknown"), json!({}))
        .await;
    assert_eq!(status, 404);
}

#[test]
fn status_names_are_camel_case() {
    assert_eq!(
        serde_json::to_value(Status::Completed).unwrap(),
        "completed"
    );
}

/// A critical alert found in readings older than the auto-dispatch cut-off (late upload):
/// the health worker decides, no saga starts. The same alert in time starts one.
#[tokio::test]
async fn a_critical_alert_for_manual_dispatch_starts_no_saga() {
    let world = World::new(0.0, &["w-01"]);
    let late = fixtures::alert_envelope(fixtures::alert_raised("p-1").raised_late(3_600.0));
    world
        .sqs(
            "arn:EmergencyQueue",
            &[serde_json::to_string(&late).unwrap()],
        )
        .await;
    world.pump(1).await;
    let id = emergency_id_for_alert(&late.data.alert_id);
    assert!(world.history(&id).is_empty(), "{:?}", world.history(&id));
    assert!(world.events.all().is_empty());
    assert!(world.bus.take(Channel::Steps).is_empty());
    assert_eq!(world.workers.reserved_by("w-01"), None);
    assert!(world.notifications.sent.lock().unwrap().is_empty());

    let timely = critical_alert("p-2");
    world
        .sqs(
            "arn:EmergencyQueue",
            &[serde_json::to_string(&timely).unwrap()],
        )
        .await;
    world.pump(1).await;
    let id = emergency_id_for_alert(&timely.data.alert_id);
    assert_eq!(world.history(&id)[0], "EmergencyStarted");
}

/// Info alerts are for the dashboard only: an acknowledgement check of one (which the
/// filter policy should have kept off the escalation queue) escalates nothing, even when
/// it was routed and nobody acknowledged it.
#[tokio::test]
async fn info_alerts_never_escalate() {
    let world = World::new(0.0, &["w-01", "w-02"]);
    let info =
        fixtures::alert_envelope(fixtures::alert_raised("p-1").with_severity(Severity::Info));
    let stream = alert_stream(&info.data.alert_id);
    store_routed(&world, &info).await;

    // The level-0 check (the alert itself, delayed) and a later level's check.
    let due = Envelope::new(
        "due-info",
        "emergency",
        info.child_lineage(),
        Utc::now(),
        domain::escalation::AlertEscalationDue {
            alert_id: info.data.alert_id.clone(),
            patient_id: "p-1".into(),
            level: 0,
            routing_waits: 0,
        },
    );
    world
        .sqs(
            ESCALATION_ARN,
            &[
                serde_json::to_string(&info).unwrap(),
                serde_json::to_string(&due).unwrap(),
            ],
        )
        .await;
    let types: Vec<String> = world
        .events
        .stream(&stream)
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(types, ["AlertRaised", "AlertRouted"]);
    assert!(world.notifications.sent.lock().unwrap().is_empty());
    assert!(world.bus.take(Channel::Escalation).is_empty());

    // An info alert on the emergency queue starts nothing either.
    world
        .sqs(
            "arn:EmergencyQueue",
            &[serde_json::to_string(&info).unwrap()],
        )
        .await;
    assert!(
        world
            .history(&emergency_id_for_alert(&info.data.alert_id))
            .is_empty()
    );
}

/// Runs one API request through the handler: the status, the JSON body and the
/// response's `x-correlation-id`.
async fn call_api(deps: &Deps<'_>, request: &ApiGatewayV2httpRequest) -> (i64, Value, String) {
    let response = handle(deps, serde_json::to_value(request).unwrap(), Utc::now())
        .await
        .unwrap();
    let text = response["body"].as_str().unwrap_or("null");
    (
        response["statusCode"].as_i64().unwrap(),
        serde_json::from_str(text).unwrap(),
        response["headers"]["x-correlation-id"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

/// A raw `POST /emergencies` by the supervisor s-01: `body` as given, base64-marked or not, with an optional
/// `x-correlation-id`.
async fn raw_request(
    deps: &Deps<'_>,
    body: &str,
    base64: bool,
    correlation: Option<&str>,
) -> (i64, Value, String) {
    let key = uuid::Uuid::new_v4().to_string();
    let mut request = token_request(
        "POST /emergencies",
        None,
        json!(null),
        Some(&key),
        Some(person("s-01", "supervisor")),
    );
    request.body = Some(body.to_string());
    request.is_base64_encoded = base64;
    if let Some(c) = correlation {
        request
            .headers
            .insert("x-correlation-id", c.parse().unwrap());
    }
    call_api(deps, &request).await
}

#[tokio::test]
async fn the_api_decodes_base64_bodies_and_keeps_only_valid_correlation_ids() {
    use base64::Engine;
    let world = World::new(0.0, &["w-01"]);
    let deps = world.deps();
    let emergency = json!({"patientId": "p-1", "reason": "collapsed", "reporter": "w-01"});
    let encoded = base64::engine::general_purpose::STANDARD.encode(emergency.to_string());

    // A base64 body (API Gateway marks bodies it encoded) is decoded and accepted.
    let (status, body, echoed) = raw_request(&deps, &encoded, true, Some("clinic-7:req.1")).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(echoed, "clinic-7:req.1");
    world.deliver_queued_inputs().await;
    let id = body["emergencyId"].as_str().unwrap().to_string();
    let stored = world.events.stream(&emergency_stream(&id));
    assert!(!stored.is_empty());
    assert!(stored.iter().all(|e| e.correlation_id == "clinic-7:req.1"));

    // An unusable correlation id is replaced by a fresh one, used everywhere.
    let (status, body, echoed) =
        raw_request(&deps, &emergency.to_string(), false, Some("bad id; drop")).await;
    assert_eq!(status, 202, "{body}");
    assert_ne!(echoed, "bad id; drop");
    assert!(uuid::Uuid::parse_str(&echoed).is_ok(), "{echoed}");
    let id = body["emergencyId"].as_str().unwrap().to_string();
    let stored = world.events.stream(&emergency_stream(&id));
    assert!(stored.iter().all(|e| e.correlation_id == echoed));

    // A body marked base64 that does not decode is a clear 400, and nothing starts.
    let before = world.events.all().len();
    let (status, body, echoed) = raw_request(&deps, "not base64!", true, Some("corr-9")).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "InvalidBody");
    assert_eq!(body["correlationId"], "corr-9");
    assert_eq!(echoed, "corr-9");
    assert_eq!(world.events.all().len(), before);
}

/// An event reader that yields to the scheduler before every read, so that concurrent
/// requests interleave on one thread (what a span entered across an await mislabels).
struct YieldingReader<'a>(&'a MemoryEventStore);

#[async_trait::async_trait]
impl application::ports::EventReader for YieldingReader<'_> {
    async fn read_stream(
        &self,
        stream_id: &str,
    ) -> Result<Vec<StoredEvent>, application::ports::PortError> {
        tokio::task::yield_now().await;
        application::ports::EventReader::read_stream(self.0, stream_id).await
    }
}

#[tokio::test(flavor = "current_thread")]
async fn log_lines_carry_the_correlation_id_of_their_own_request() {
    // The process-wide subscriber: a thread-local one misses callsites that other tests,
    // running at the same time without a subscriber, registered first.
    static LOGS: std::sync::OnceLock<testkit::logs::Capture> = std::sync::OnceLock::new();
    let logs = LOGS.get_or_init(|| {
        use tracing_subscriber::layer::SubscriberExt;
        let logs = testkit::logs::Capture::default();
        let subscriber = tracing_subscriber::registry().with(
            lambda_kit::telemetry::json_layer("vitals", "emergency").with_writer(logs.clone()),
        );
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
        logs
    });

    let world = World::new(0.0, &["w-01", "w-02"]);
    let reader = YieldingReader(&world.events);
    let deps = Deps {
        reader: &reader,
        ..world.deps()
    };
    let request = |patient: &'static str| {
        json!({"patientId": patient, "reason": "collapsed", "reporter": "w-01"}).to_string()
    };
    // Two emergencies raised at once, interleaved on this one thread.
    let (first, second) = (request("p-1"), request("p-2"));
    let (a, b) = tokio::join!(
        raw_request(&deps, &first, false, Some("corr-a")),
        raw_request(&deps, &second, false, Some("corr-b")),
    );
    world.deliver_queued_inputs().await;
    let (ida, idb) = (
        a.1["emergencyId"].as_str().unwrap(),
        b.1["emergencyId"].as_str().unwrap(),
    );
    let expected = |emergency: &str| if emergency == ida { "corr-a" } else { "corr-b" };
    let lines = logs.json_lines();
    // Other tests log too: keep the lines of these two requests (by either field).
    let ours = |l: &&Value| {
        [ida, idb].contains(&l["emergency_id"].as_str().unwrap_or_default())
            || ["corr-a", "corr-b"].contains(&l["correlation_id"].as_str().unwrap_or_default())
    };
    let saga_lines: Vec<&Value> = lines.iter().filter(ours).collect();
    for id in [ida, idb] {
        assert!(
            saga_lines
                .iter()
                .any(|l| l["emergency_id"] == id && l["message"] == "saga advanced"),
            "no saga line for {id}: {lines:#?}"
        );
    }
    for line in saga_lines {
        if let Some(emergency) = line["emergency_id"].as_str() {
            assert_eq!(line["correlation_id"], expected(emergency), "{line}");
        }
    }
}

// ---- Issue 12: paths that lost or blocked work (each test was committed before its fix).

/// The token claims of a person (as API Gateway's JWT authorizer passes them: strings).
fn person(username: &str, group: &str) -> Value {
    json!({"sub": format!("uuid-{username}"), "client_id": "people-client",
           "username": username, "cognito:groups": format!("[{group}]"),
           "scope": "vitals/emergencies.write vitals/emergencies.read vitals/alerts.ack",
           "token_use": "access"})
}

/// An API request as API Gateway delivers it from the health worker `caller` (a people
/// token), with an optional `Idempotency-Key`.
fn signed_request(
    route: &str,
    id: Option<&str>,
    body: Value,
    key: Option<&str>,
    caller: &str,
) -> ApiGatewayV2httpRequest {
    token_request(route, id, body, key, Some(person(caller, "health-worker")))
}

/// An API request as API Gateway delivers it: with the JWT authorizer's context for
/// `claims`, or with none at all.
fn token_request(
    route: &str,
    id: Option<&str>,
    body: Value,
    key: Option<&str>,
    claims: Option<Value>,
) -> ApiGatewayV2httpRequest {
    let authorizer = match claims {
        Some(claims) => json!({"jwt": {"claims": claims, "scopes": null}}),
        None => json!({}),
    };
    let mut headers = serde_json::Map::new();
    if let Some(key) = key {
        headers.insert("idempotency-key".into(), json!(key));
    }
    let mut path = serde_json::Map::new();
    if let Some(id) = id {
        path.insert("id".into(), json!(id));
    }
    serde_json::from_value(json!({
        "version": "2.0",
        "routeKey": route,
        "rawPath": "/",
        "headers": headers,
        "pathParameters": path,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "api",
            "authorizer": authorizer,
            "domainName": "api.local",
            "domainPrefix": "api",
            "http": {"method": "POST", "path": "/", "protocol": "HTTP/1.1",
                     "sourceIp": "10.0.0.1", "userAgent": "test"},
            "requestId": "r-1",
            "routeKey": route,
            "stage": "$default",
            "time": "30/Nov/2026:12:00:00 +0000",
            "timeEpoch": 0,
        },
        "body": body.to_string(),
        "isBase64Encoded": false,
    }))
    .unwrap()
}

/// The recipients of every notification requested so far, in order.
fn recipients(world: &World) -> Vec<String> {
    world
        .notifications
        .sent
        .lock()
        .unwrap()
        .iter()
        .map(|n| n.data.recipient_id.clone())
        .collect()
}

#[tokio::test]
async fn an_escalation_whose_sms_request_fails_after_its_fact_is_sent_on_the_retry() {
    let world = World::new(0.0, &["w-01", "w-02"]);
    let alert = routed_alert(&world, "p-1").await;
    let body = serde_json::to_string(&alert).unwrap();

    // The level-0 deadline: the SMS request to w-02 fails (the process could as well die).
    world
        .notifications
        .failures
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let response = world
        .sqs_response(ESCALATION_ARN, std::slice::from_ref(&body))
        .await;
    assert_ne!(response["batchItemFailures"], json!([]), "{response}");

    // SQS redelivers the check: w-02 is told once, and level 1 gets its deadline.
    world.sqs(ESCALATION_ARN, &[body]).await;
    assert_eq!(recipients(&world), ["w-02"]);
    let due = world.bus.take(Channel::Escalation);
    assert_eq!(due.len(), 1, "the next level's deadline is sent: {due:?}");
}

#[tokio::test]
async fn an_alert_not_yet_routed_is_checked_again_and_an_unroutable_one_reaches_the_supervisor() {
    let world = World::new(0.0, &["w-01", "w-02"]);
    // p-1 is known but its routing has not happened yet when the deadline fires.
    let pending = critical_alert("p-1");
    world
        .events
        .append(
            &alert_stream(&pending.data.alert_id),
            0,
            &StoredEvent::from_envelope(&pending).unwrap(),
        )
        .await
        .unwrap();
    world
        .sqs(ESCALATION_ARN, &[serde_json::to_string(&pending).unwrap()])
        .await;
    assert_eq!(recipients(&world), Vec::<String>::new());
    let again = world.bus.take(Channel::Escalation);
    assert_eq!(again.len(), 1, "the check re-delays itself: {again:?}");
    assert_eq!(again[0].1, 7);

    // p-404 of Bondo is in nobody's directory: route parks it in RouteDLQ; the district
    // supervisor must hear of it.
    let unroutable = critical_alert("p-404");
    world
        .events
        .append(
            &alert_stream(&unroutable.data.alert_id),
            0,
            &StoredEvent::from_envelope(&unroutable).unwrap(),
        )
        .await
        .unwrap();
    world
        .sqs(
            ESCALATION_ARN,
            &[serde_json::to_string(&unroutable).unwrap()],
        )
        .await;
    assert_eq!(recipients(&world), ["s-01"]);
}

#[tokio::test]
async fn a_resolved_alert_does_not_escalate() {
    let world = World::new(0.0, &["w-01", "w-02"]);
    let alert = routed_alert(&world, "p-1").await;
    let resolved = Envelope::new(
        "resolved-p-1".to_string(),
        "detect",
        alert.child_lineage(),
        Utc::now(),
        domain::events::AlertResolved {
            alert_id: alert.data.alert_id.clone(),
            patient_id: "p-1".into(),
            rule_id: alert.data.rule_id.clone(),
            alert_type: alert.data.alert_type.clone(),
            severity: Severity::Critical,
            episode_start: alert.data.detected_at,
            resolved_at: Utc::now(),
            reading_event_id: "r-9".into(),
        },
    );
    world
        .events
        .append(
            &domain::events::alert_resolution_stream(&alert.data.alert_id),
            0,
            &StoredEvent::from_envelope(&resolved).unwrap(),
        )
        .await
        .unwrap();
    world
        .sqs(ESCALATION_ARN, &[serde_json::to_string(&alert).unwrap()])
        .await;
    assert_eq!(recipients(&world), Vec::<String>::new());
    assert!(world.bus.take(Channel::Escalation).is_empty());
}

#[tokio::test]
async fn post_emergencies_requires_a_key_scoped_to_the_caller_and_its_payload() {
    let world = World::new(0.0, &["w-01", "w-02"]);
    let payload = json!({"patientId": "p-1", "reason": "collapsed", "reporter": "w-01"});
    let post = |body: &Value, key: Option<&str>, caller: &str| {
        signed_request("POST /emergencies", None, body.clone(), key, caller)
    };

    let (status, body, _) = call_api(&world.deps(), &post(&payload, None, "w-01")).await;
    assert_eq!(status, 400, "no Idempotency-Key: {body}");

    let (status, first, _) = call_api(&world.deps(), &post(&payload, Some("k1"), "w-01")).await;
    assert_eq!(status, 202, "{first}");
    world.deliver_queued_inputs().await;
    let (status, again, _) = call_api(&world.deps(), &post(&payload, Some("k1"), "w-01")).await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(again["emergencyId"], first["emergencyId"], "a retry");

    let (status, other, _) = call_api(&world.deps(), &post(&payload, Some("k1"), "w-02")).await;
    assert_eq!(status, 202, "{other}");
    assert_ne!(
        other["emergencyId"], first["emergencyId"],
        "w-02's key is not w-01's"
    );

    let changed = json!({"patientId": "p-2", "reason": "fell", "reporter": "w-01"});
    let (status, body, _) = call_api(&world.deps(), &post(&changed, Some("k1"), "w-01")).await;
    assert_eq!(status, 409, "same key, another payload: {body}");
}

#[tokio::test]
async fn a_closed_emergency_releases_its_worker() {
    let world = World::new(0.0, &["w-01", "w-02"]);
    let id = world.raise("p-1").await;
    world.pump(1).await;
    assert_eq!(
        world.workers.reserved_by("w-01").as_deref(),
        Some(id.as_str()),
        "held while on site"
    );
    let (status, body) = world
        .http("POST /emergencies/{id}/close", Some(&id), json!({}))
        .await;
    assert!(status == 200 || status == 202, "{status} {body}");
    world.pump(1).await;
    assert_eq!(world.workers.reserved_by("w-01"), None);
    assert_eq!(world.state(&id).await["state"]["status"], "completed");
}

#[tokio::test]
async fn a_late_duplicate_reserve_step_after_compensation_reserves_nobody() {
    // Hypoxemia needs an ambulance; the provider fails, so the saga releases w-01 and
    // escalates to the hospital.
    let world = World::new(1.0, &["w-01"]);
    let alert = critical_alert("p-1");
    world
        .sqs(
            "arn:EmergencyQueue",
            &[serde_json::to_string(&alert).unwrap()],
        )
        .await;
    let reserve = world
        .bus
        .sent
        .lock()
        .unwrap()
        .iter()
        .find(|m| m.0 == Channel::Steps)
        .map(|m| m.2.clone())
        .unwrap();
    world.pump(1).await;
    let id = emergency_id_for_alert(&alert.data.alert_id);
    assert_eq!(world.state(&id).await["state"]["status"], "escalated");
    assert_eq!(world.workers.reserved_by("w-01"), None);

    // The reservation command is delivered again, late (SQS is at least once).
    world.sqs("arn:StepsQueue", &[reserve]).await;
    world.pump(1).await;
    assert_eq!(
        world.workers.reserved_by("w-01"),
        None,
        "{:?}",
        world.history(&id)
    );
}

#[tokio::test]
async fn the_worker_on_site_requests_an_ambulance_and_closes_the_emergency() {
    let world = World::new(0.0, &["w-01"]);
    let id = world.raise("p-1").await;
    // Not on site yet: nothing to close.
    let (status, body) = world
        .http("POST /emergencies/{id}/close", Some(&id), json!({}))
        .await;
    assert_eq!(status, 409, "{body}");
    world.pump(1).await;

    let (status, body) = world
        .http("POST /emergencies/{id}/ambulance", Some(&id), json!({}))
        .await;
    assert_eq!(status, 202, "{body}");
    world.pump(1).await;
    let (status, body) = world
        .http("POST /emergencies/{id}/ambulance", Some(&id), json!({}))
        .await;
    assert_eq!(
        (status, &body["alreadyDone"]),
        (200, &json!(true)),
        "{body}"
    );
    assert_eq!(
        world.history(&id)[4..],
        [
            "AmbulanceRequested",
            "AmbulanceDispatched",
            "FamilyNotified"
        ]
    );
    assert_eq!(world.state(&id).await["state"]["status"], "onSite");

    world.close(&id).await;
    let (status, body) = world
        .http("POST /emergencies/{id}/close", Some(&id), json!({}))
        .await;
    assert_eq!(
        (status, &body["alreadyDone"]),
        (200, &json!(true)),
        "{body}"
    );
    assert_eq!(world.state(&id).await["state"]["status"], "completed");
    assert_eq!(world.workers.reserved_by("w-01"), None);
    // Worker, family (dispatched), family (ambulance), family (completed).
    assert_eq!(world.notification_ids().len(), 4);
    let (status, _) = world
        .http("POST /emergencies/{id}/close", Some("nope"), json!({}))
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn an_emergency_left_open_is_closed_by_its_timeout() {
    let world = World::new(0.0, &["w-01"]);
    let id = world.raise("p-1").await;
    world.pump(1).await;
    // The open timeout (an hour here) is longer than SQS's 15-minute delay.
    let timeout = world.bus.take(Channel::Timers);
    assert_eq!(timeout.len(), 1, "one open timeout");
    assert_eq!(timeout[0].1, 900, "delayed at most 15 minutes");
    let body: Value = serde_json::from_str(&timeout[0].0).unwrap();
    let due_at: chrono::DateTime<Utc> =
        serde_json::from_value(body["data"]["input"]["dueAt"].clone()).unwrap();

    // Delivered early: it goes back to the queue.
    let early = handle(
        &world.deps(),
        json!({"Records": [{"messageId": "m", "body": timeout[0].0, "eventSourceARN": "arn:SagaQueue"}]}),
        due_at - chrono::Duration::minutes(30),
    )
    .await
    .unwrap();
    assert_eq!(early["batchItemFailures"], json!([]));
    let again = world.bus.take(Channel::Timers);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].1, 900, "delayed again, at most 15 minutes");
    assert_eq!(world.state(&id).await["state"]["status"], "onSite");

    // Due: the emergency closes, the worker is released.
    handle(
        &world.deps(),
        json!({"Records": [{"messageId": "m", "body": again[0].0, "eventSourceARN": "arn:SagaQueue"}]}),
        due_at + chrono::Duration::seconds(1),
    )
    .await
    .unwrap();
    world.pump(1).await;
    let state = world.state(&id).await;
    assert_eq!(state["state"]["status"], "completed");
    assert_eq!(state["state"]["closed"], "timedOut");
    assert_eq!(world.workers.reserved_by("w-01"), None);
}

// ---- Issue 13: authorization (docs/security.md). Given the World: p-1, p-2 of Bondo
// (assigned w-01; roster w-01, w-02; supervisor s-01); p-9 is not registered.

/// Everything the API could have written or queued, to prove a refused request left it all
/// as it was.
fn footprint(world: &World) -> (usize, usize) {
    (
        world.events.all().len(),
        world.bus.sent.lock().unwrap().len(),
    )
}

fn device(client_id: &str) -> Value {
    json!({"sub": client_id, "client_id": client_id, "scope": "vitals/readings.write",
           "token_use": "access"})
}

#[tokio::test]
async fn without_an_authorizer_context_every_route_is_401_and_nothing_changes() {
    let world = World::new(0.0, &["w-01"]);
    let id = world.raise("p-1").await;
    let before = footprint(&world);
    for (route, path_id) in [
        ("POST /emergencies", None),
        ("GET /emergencies/{id}", Some(id.as_str())),
        ("POST /emergencies/{id}/close", Some(id.as_str())),
        ("POST /alerts/{id}/ack", Some("a-1")),
    ] {
        let body = json!({"patientId": "p-1", "reason": "collapsed", "reporter": "w-01"});
        let request = token_request(route, path_id, body, Some("k-anon"), None);
        let (status, body, _) = call_api(&world.deps(), &request).await;
        assert_eq!(
            (status, &body["error"]),
            (401, &json!("Unauthorized")),
            "{route}"
        );
    }
    assert_eq!(footprint(&world), before);
}

#[tokio::test]
async fn callers_who_may_not_raise_an_emergency_for_the_patient_get_403_and_nothing_is_queued() {
    let world = World::new(0.0, &["w-01"]);
    let emergency =
        |patient: &str| json!({"patientId": patient, "reason": "collapsed", "reporter": "x"});
    for (claims, patient, why) in [
        (
            person("w-03", "health-worker"),
            "p-1",
            "a worker of another village",
        ),
        (
            person("w-01", "health-worker"),
            "p-9",
            "a worker, unregistered patient",
        ),
        (
            person("s-02", "supervisor"),
            "p-1",
            "a supervisor of another district",
        ),
        (person("op-1", "operator"), "p-1", "an operator"),
        (device("wearable-7"), "p-1", "a device"),
        (person("w-01", "admins"), "p-1", "no known group"),
    ] {
        let (status, body) = world
            .http_by(claims, "POST /emergencies", None, emergency(patient))
            .await;
        assert_eq!(
            (status, &body["error"]),
            (403, &json!("Forbidden")),
            "{why}: {body}"
        );
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{why}"
        );
        assert!(body["correlationId"].is_string(), "{why}");
        assert_eq!(
            footprint(&world),
            (0, 0),
            "{why}: nothing written or queued"
        );
    }
}

#[tokio::test]
async fn own_patients_pass_and_a_supervisor_may_raise_for_an_unregistered_patient() {
    let world = World::new(0.0, &["w-01", "w-02"]);
    let emergency =
        |patient: &str| json!({"patientId": patient, "reason": "collapsed", "reporter": "x"});
    for claims in [
        person("w-01", "health-worker"),
        person("w-02", "health-worker"),
        person("s-01", "supervisor"),
    ] {
        let (status, body) = world
            .http_by(claims.clone(), "POST /emergencies", None, emergency("p-1"))
            .await;
        assert_eq!(status, 202, "{claims}: {body}");
    }
    // Authorized, but an unregistered patient has no village to send anyone to.
    let (status, body) = world
        .http_by(
            person("s-01", "supervisor"),
            "POST /emergencies",
            None,
            emergency("p-9"),
        )
        .await;
    assert_eq!(
        (status, &body["error"]),
        (404, &json!("NotFound")),
        "{body}"
    );
}

#[tokio::test]
async fn reading_closing_and_dispatching_to_someone_elses_emergency_is_403_and_changes_nothing() {
    let world = World::new(0.0, &["w-01", "w-02"]);
    let id = world.raise("p-1").await;
    world.pump(1).await;
    assert_eq!(world.state(&id).await["state"]["status"], "onSite");
    let before = footprint(&world);
    for claims in [
        person("w-03", "health-worker"),
        person("s-02", "supervisor"),
        person("op-1", "operator"),
        device("kiosk-3"),
    ] {
        for route in [
            "GET /emergencies/{id}",
            "POST /emergencies/{id}/close",
            "POST /emergencies/{id}/ambulance",
        ] {
            let (status, body) = world
                .http_by(claims.clone(), route, Some(&id), json!({}))
                .await;
            assert_eq!(status, 403, "{claims} {route}: {body}");
            assert_eq!(body["error"], "Forbidden");
        }
    }
    assert_eq!(footprint(&world), before, "nothing written or queued");
    // The roster's other worker may: they read it and ask for the ambulance.
    let w02 = person("w-02", "health-worker");
    let (status, body) = world
        .http_by(w02.clone(), "GET /emergencies/{id}", Some(&id), json!(null))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = world
        .http_by(
            w02,
            "POST /emergencies/{id}/ambulance",
            Some(&id),
            json!({}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
}

#[tokio::test]
async fn an_acknowledgement_by_someone_else_is_403_and_records_nothing() {
    let world = World::new(0.0, &["w-01", "w-02"]);
    let alert = routed_alert(&world, "p-1").await;
    let alert_id = alert.data.alert_id.clone();
    let stream = alert_stream(&alert_id);
    for claims in [
        person("w-03", "health-worker"),
        person("s-02", "supervisor"),
        person("op-1", "operator"),
        device("phone-w1"),
    ] {
        let (status, body) = world
            .http_by(
                claims.clone(),
                "POST /alerts/{id}/ack",
                Some(&alert_id),
                json!({"workerId": "w-01"}),
            )
            .await;
        assert_eq!(status, 403, "{claims}: {body}");
    }
    assert_eq!(
        world.events.stream(&stream).len(),
        2,
        "raised and routed only"
    );
    // An alert of an unregistered patient: a supervisor may, a health worker may not.
    let stranger = routed_alert(&world, "p-9").await;
    let (status, _) = world
        .http_by(
            person("w-01", "health-worker"),
            "POST /alerts/{id}/ack",
            Some(&stranger.data.alert_id),
            json!({}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, body) = world
        .http_by(
            person("s-01", "supervisor"),
            "POST /alerts/{id}/ack",
            Some(&stranger.data.alert_id),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn the_acknowledgement_records_the_caller_never_the_body() {
    let world = World::new(0.0, &["w-01", "w-02"]);
    let alert = routed_alert(&world, "p-1").await;
    let (status, body) = world
        .http_by(
            person("w-02", "health-worker"),
            "POST /alerts/{id}/ack",
            Some(&alert.data.alert_id),
            json!({"workerId": "w-01"}),
        )
        .await;
    assert_eq!(
        (status, &body["alreadyAcknowledged"]),
        (200, &json!(false)),
        "{body}"
    );
    let last = world
        .events
        .stream(&alert_stream(&alert.data.alert_id))
        .pop()
        .unwrap();
    assert_eq!(last.event_type, "AlertAcknowledged");
    assert_eq!(last.data["acknowledgedBy"], "w-02");
}
