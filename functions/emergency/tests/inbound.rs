//! Acknowledgement by SMS reply: the inbound queue's two-way SMS messages, handled with
//! in-memory ports. Given an alert routed to w-01 (as route leaves it: code registered,
//! `AlertRouted` appended), when a phone replies "ACK <code>", then the alert stream says
//! who acknowledged it, or nothing changed and the message is not retried.

use std::time::Duration;

use application::ack_codes::assign_code;
use application::ports::{AckCodes, EventStore, PortError, Registered, StoredEvent};
use async_trait::async_trait;
use aws_adapters::SimulatedAmbulance;
use chrono::Utc;
use domain::ack::{AckCode, AckTarget};
use domain::envelope::Envelope;
use domain::escalation::{AlertEscalated, Worker};
use domain::events::{AlertRouted, alert_stream};
use domain::saga::{EmergencyStarted, SagaEvent, SagaInput, emergency_stream};
use emergency::coordinator::advance;
use emergency::{Config, Deps, handle};
use serde_json::{Value, json};
use testkit::fixtures::{self, AlertRaisedFixture};
use testkit::*;

const INBOUND_ARN: &str = "arn:aws:sqs:us-east-1:000000000000:InboundSmsQueue";
const ALERT: &str = "alert-p-1";
/// w-01's phone: the patient's directory entry and the workers table agree.
const W01_PHONE: &str = "+254700000101";
const W02_PHONE: &str = "+254700000102";

fn worker(id: &str, phone: &str) -> Worker {
    Worker {
        worker_id: id.into(),
        name: format!("Worker {id}"),
        phone: phone.into(),
        village: fixtures::VILLAGE.into(),
        available: true,
        reserved_by: None,
        language: "en".into(),
    }
}

struct World {
    events: MemoryEventStore,
    bus: MemoryBus,
    directory: MemoryDirectory,
    contacts: MemoryContacts,
    workers: MemoryWorkers,
    ambulance: SimulatedAmbulance,
    ledger: MemoryLedger,
    notifications: MemoryQueue,
    ack_codes: MemoryAckCodes,
}

impl World {
    /// Given: p-1's warning alert, routed to w-01, with its code registered.
    async fn new() -> (World, AckCode) {
        let world = World {
            events: MemoryEventStore::default(),
            bus: MemoryBus::default(),
            directory: MemoryDirectory::with([fixtures::directory_entry("p-1", "w-01", W01_PHONE)]),
            contacts: MemoryContacts::default(),
            workers: MemoryWorkers::with([worker("w-01", W01_PHONE), worker("w-02", W02_PHONE)]),
            ambulance: SimulatedAmbulance::new(0.0, Duration::ZERO),
            ledger: MemoryLedger::default(),
            notifications: MemoryQueue::default(),
            ack_codes: MemoryAckCodes::default(),
        };
        let raised = fixtures::alert_envelope(
            fixtures::alert_raised("p-1").with_severity(domain::events::Severity::Warning),
        );
        world.append(0, &raised).await;
        let routed = Envelope::new(
            "routed-1",
            "route",
            raised.child_lineage(),
            Utc::now(),
            AlertRouted {
                alert_id: ALERT.into(),
                patient_id: "p-1".into(),
                worker_id: "w-01".into(),
                notification_id: "n-1".into(),
            },
        );
        world.append(1, &routed).await;
        let code = assign_code(&world.ack_codes, &AckTarget::alert(ALERT))
            .await
            .unwrap();
        (world, code)
    }

    async fn append<T: domain::envelope::EventData + serde::Serialize>(
        &self,
        version: u64,
        event: &Envelope<T>,
    ) {
        self.events
            .append(
                &alert_stream(ALERT),
                version,
                &StoredEvent::from_envelope(event).unwrap(),
            )
            .await
            .unwrap();
    }

    fn deps<'a>(&'a self, ack_codes: &'a dyn AckCodes) -> Deps<'a> {
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
            ack_codes,
            config: Config {
                step_deadline_seconds: 5,
                ack_timeout_seconds: 7,
                hospital_phone: "+254700009999".into(),
                hospital_language: "en".into(),
                open_timeout_seconds: 3600,
                escalation_queue_arn: "arn:aws:sqs:us-east-1:000000000000:EscalationQueue".into(),
                inbound_queue_arn: INBOUND_ARN.into(),
            },
        }
    }

    /// When: `from` texts `text`; returns the ids of the failed messages (to be retried).
    async fn reply(&self, from: &str, text: &str) -> Vec<String> {
        self.deliver(&self.ack_codes, &[sns_body(from, text)]).await
    }

    async fn deliver(&self, ack_codes: &dyn AckCodes, bodies: &[String]) -> Vec<String> {
        let records: Vec<Value> = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| json!({"messageId": format!("m-{i}"), "body": b, "eventSourceARN": INBOUND_ARN}))
            .collect();
        let response = handle(
            &self.deps(ack_codes),
            json!({ "Records": records }),
            Utc::now(),
        )
        .await
        .unwrap();
        response["batchItemFailures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["itemIdentifier"].as_str().unwrap().to_string())
            .collect()
    }

    /// Who acknowledged the alert, per `AlertAcknowledged` events.
    fn acknowledged_by(&self) -> Vec<String> {
        self.events
            .stream(&alert_stream(ALERT))
            .into_iter()
            .filter(|e| e.event_type == "AlertAcknowledged")
            .map(|e| e.data["acknowledgedBy"].as_str().unwrap().to_string())
            .collect()
    }
}

/// The two-way SMS message as SNS delivers it to the queue (raw delivery off).
fn sns_body(from: &str, text: &str) -> String {
    let sms = json!({
        "originationNumber": from,
        "destinationNumber": "+254700009000",
        "messageKeyword": "ACK",
        "messageBody": text,
        "inboundMessageId": uuid::Uuid::new_v4().to_string(),
        "previousPublishedMessageId": "prev-1",
    });
    json!({
        "Type": "Notification",
        "MessageId": uuid::Uuid::new_v4().to_string(),
        "TopicArn": "arn:aws:sns:us-east-1:000000000000:InboundSmsTopic",
        "Message": sms.to_string(),
        "Timestamp": "2026-11-24T08:05:00.000Z",
        "SignatureVersion": "1",
        "Signature": "c2ln",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/cert.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
    })
    .to_string()
}

#[tokio::test]
async fn the_routed_worker_acknowledges_by_replying_with_the_code() {
    let (world, code) = World::new().await;
    let text = format!("ack {}", code.as_str().to_lowercase());
    assert_eq!(world.reply(W01_PHONE, &text).await, Vec::<String>::new());
    assert_eq!(world.acknowledged_by(), ["w-01"]);
    let ack = world.events.stream(&alert_stream(ALERT)).pop().unwrap();
    assert_eq!(ack.correlation_id, "corr-1");
    assert_eq!(ack.source, "emergency");

    // The same reply again (redelivered, or sent twice): still one acknowledgement.
    assert!(world.reply(W01_PHONE, &text).await.is_empty());
    assert_eq!(world.acknowledged_by(), ["w-01"]);
}

#[tokio::test]
async fn a_phone_the_alert_was_not_sent_to_acknowledges_nothing_and_is_not_retried() {
    let (world, code) = World::new().await;
    // w-02 is a worker, but the alert went to w-01 only; the other phone is nobody's.
    for phone in [W02_PHONE, "+254799999999", ""] {
        let failed = world.reply(phone, &format!("ACK {code}")).await;
        assert!(failed.is_empty(), "{phone}: {failed:?}");
    }
    assert!(world.acknowledged_by().is_empty());
    assert_eq!(world.events.stream(&alert_stream(ALERT)).len(), 2);
}

#[tokio::test]
async fn after_a_phone_change_the_new_phone_acknowledges_and_the_entrys_stale_copy_does_not() {
    let (world, code) = World::new().await;
    // w-01's phone was changed with PUT /workers/w-01; p-1's entry still holds the old copy.
    world
        .workers
        .workers
        .lock()
        .unwrap()
        .insert("w-01".into(), worker("w-01", "+254700000777"));
    assert!(
        world
            .reply(W01_PHONE, &format!("ACK {code}"))
            .await
            .is_empty()
    );
    assert!(
        world.acknowledged_by().is_empty(),
        "the old phone acknowledged"
    );
    assert!(
        world
            .reply("+254700000777", &format!("ACK {code}"))
            .await
            .is_empty()
    );
    assert_eq!(world.acknowledged_by(), ["w-01"]);
}

#[tokio::test]
async fn an_escalation_recipient_may_acknowledge() {
    let (world, code) = World::new().await;
    let escalated = fixtures::from_detect(
        "escalated-1",
        "corr-1",
        AlertEscalated {
            alert_id: ALERT.into(),
            level: 1,
            recipient_id: "w-02".into(),
            notification_id: "n-2".into(),
        },
    );
    world.append(2, &escalated).await;
    // Typed with spaces and dashes, from the number written another way.
    let (a, b) = code.as_str().split_at(3);
    let failed = world
        .reply("00254 700 000 102", &format!("ACK {a}-{b}"))
        .await;
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(world.acknowledged_by(), ["w-02"]);
}

#[tokio::test]
async fn replies_that_are_not_acknowledgements_change_nothing_and_are_not_retried() {
    let (world, code) = World::new().await;
    // A code of the right shape that nobody has.
    let unknown = AckCode::candidates(&AckTarget::alert("alert-nobody"))[0].clone();
    assert_ne!(unknown, code);
    let bodies: Vec<String> = [
        "",
        "hello",
        "ACK",
        "ACK 12345",
        &format!("{code}"),
        &format!("ACK {unknown}"),
    ]
    .iter()
    .map(|text| sns_body(W01_PHONE, text))
    .collect();
    assert!(world.deliver(&world.ack_codes, &bodies).await.is_empty());
    assert!(world.acknowledged_by().is_empty());
}

/// A register that is down (throttled, unreachable).
struct DownCodes;

#[async_trait]
impl AckCodes for DownCodes {
    async fn register(&self, _: &AckCode, _: &AckTarget) -> Result<Registered, PortError> {
        Err(PortError::Backend("GetItem: service unavailable".into()))
    }
    async fn resolve(&self, _: &AckCode) -> Result<Option<AckTarget>, PortError> {
        Err(PortError::Backend("GetItem: service unavailable".into()))
    }
}

#[tokio::test]
async fn a_store_failure_is_retried_and_the_redelivery_acknowledges() {
    let (world, code) = World::new().await;
    let body = sns_body(W01_PHONE, &format!("ACK {code}"));
    let failed = world.deliver(&DownCodes, std::slice::from_ref(&body)).await;
    assert_eq!(failed, ["m-0"]);
    assert!(world.acknowledged_by().is_empty());
    assert!(world.deliver(&world.ack_codes, &[body]).await.is_empty());
    assert_eq!(world.acknowledged_by(), ["w-01"]);
}

#[tokio::test]
async fn a_message_that_is_no_sms_fails_and_other_messages_go_on() {
    let (world, code) = World::new().await;
    let bodies = [
        "{not json".to_string(),
        json!({"Type": "Notification", "Message": "no"}).to_string(),
        sns_body(W01_PHONE, &format!("ACK {code}")),
    ];
    let failed = world.deliver(&world.ack_codes, &bodies).await;
    assert_eq!(failed, ["m-0", "m-1"]);
    assert_eq!(world.acknowledged_by(), ["w-01"]);
}

/// Given an emergency for p-1 whose worker is w-01, with its code registered.
async fn emergency_with_worker(world: &World) -> (String, AckCode) {
    let id = "e-1";
    let deps = world.deps(&world.ack_codes);
    let started = EmergencyStarted {
        emergency_id: id.into(),
        patient_id: "p-1".into(),
        village: fixtures::VILLAGE.into(),
        reason: "collapsed".into(),
        reporter: "w-01".into(),
        ambulance_required: false,
        request_hash: None,
    };
    let inputs = [
        SagaInput::Start(started),
        SagaInput::StepResult {
            event: SagaEvent::WorkerAssigned {
                worker_id: "w-01".into(),
            },
        },
    ];
    for (i, input) in inputs.iter().enumerate() {
        let advanced = advance(
            &deps,
            id,
            input,
            &format!("input-{i}"),
            "corr-e",
            Utc::now(),
        )
        .await
        .unwrap();
        assert!(advanced.applied, "{input:?}");
    }
    let code = assign_code(&world.ack_codes, &AckTarget::emergency(id))
        .await
        .unwrap();
    (id.to_string(), code)
}

fn emergency_acks(world: &World, id: &str) -> Vec<Value> {
    world
        .events
        .stream(&emergency_stream(id))
        .into_iter()
        .filter(|e| e.event_type == "EmergencyAcknowledged")
        .map(|e| e.data)
        .collect()
}

#[tokio::test]
async fn the_assigned_worker_acknowledges_an_emergency_by_sms_and_nobody_else_can() {
    let (world, _) = World::new().await;
    let (id, code) = emergency_with_worker(&world).await;
    // w-02 is a worker, but not this emergency's.
    assert!(
        world
            .reply(W02_PHONE, &format!("ACK {code}"))
            .await
            .is_empty()
    );
    assert!(emergency_acks(&world, &id).is_empty());

    let body = sns_body(W01_PHONE, &format!("ack {code}"));
    for _ in 0..2 {
        // Delivered twice: one acknowledgement.
        let failed = world
            .deliver(&world.ack_codes, std::slice::from_ref(&body))
            .await;
        assert!(failed.is_empty(), "{failed:?}");
    }
    let acks = emergency_acks(&world, &id);
    assert_eq!(acks.len(), 1, "{acks:?}");
    assert_eq!(acks[0]["workerId"], "w-01");
    // The alert's code is another matter: that alert is not acknowledged.
    assert!(world.acknowledged_by().is_empty());
}

#[tokio::test]
async fn sample_inbound_sms_event_acknowledges_the_alert() {
    let (world, _) = World::new().await;
    let text = include_str!("../../../events/samples/sqs-inbound-sms.json");
    let mut event: Value = serde_json::from_str(text).unwrap();
    // The sample's code, registered for the alert (a code derived for it works the same).
    let sample_code = AckCode::parse("4K7Q2M").unwrap();
    assert_eq!(
        world
            .ack_codes
            .register(&sample_code, &AckTarget::alert(ALERT))
            .await
            .unwrap(),
        Registered::New
    );
    let arn = event["Records"][0]["eventSourceARN"]
        .as_str()
        .unwrap()
        .to_string();
    event["Records"][0]["eventSourceARN"] = json!(INBOUND_ARN);
    assert!(arn.ends_with("InboundSmsQueue"), "{arn}");
    let response = handle(&world.deps(&world.ack_codes), event, Utc::now())
        .await
        .unwrap();
    assert_eq!(response["batchItemFailures"], json!([]), "{response}");
    assert_eq!(world.acknowledged_by(), ["w-01"]);
}
