//! Acknowledgement by SMS reply (issue 12) on the emulator.
//!
//! - The register of acknowledgement codes on DynamoDB (moto, provisioned from the
//!   template): the conditional put never points a code at two targets.
//! - End to end (moto + the real function binaries): an alert is routed and its SMS ends
//!   with "Reply ACK <code>"; the worker's reply, published to the inbound topic in the
//!   two-way SMS shape, acknowledges the alert and it does not escalate; a reply with the
//!   code of another alert from a phone that alert was not sent to acknowledges nothing,
//!   and that alert escalates.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use application::ack_codes::assign_code;
use application::ports::{AckCodes, Registered};
use aws_adapters::DynamoAckCodes;
use devstack::emulator::{self, Emulator};
use devstack::provision::{self, Clients, ProvisionInput};
use devstack::template::Template;
use devstack::{Stack, inspect};
use domain::ack::{AckCode, AckTarget};
use domain::escalation::{FamilyContact, VillageRoster, Worker};
use e2e::*;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_codes_on_dynamodb_never_point_to_two_targets() {
    let root = workspace_root();
    let _moto = Emulator::start_moto(&emulator::default_moto_server_bin(&root), None)
        .await
        .expect("starting moto (run ./dev setup)");
    let config = emulator::sdk_config(&_moto.endpoint).await;
    let template = Template::load(&root.join("infra/template.yaml")).unwrap();
    // DistrictHospitalPhone has no default (issue 16): the local stand-in.
    let phone = BTreeMap::from([(
        "DistrictHospitalPhone".to_string(),
        devstack::stack::LOCAL_HOSPITAL_PHONE.to_string(),
    )]);
    let parameters = template.parameter_values(&phone).unwrap();
    let (provisioned, _) = provision::provision(ProvisionInput {
        template: &template,
        parameters: &parameters,
        stack_name: "ack-test",
        clients: &Clients::new(&config),
    })
    .await
    .expect("provisioning the template");
    let table = provisioned.get("DirectoryTable").unwrap().ref_value.clone();
    let codes = DynamoAckCodes::new(&config, table.clone());

    let (a, b) = (AckTarget::alert("alert-a"), AckTarget::alert("alert-b"));
    let code = AckCode::parse("4K7Q2M").unwrap();
    assert_eq!(codes.register(&code, &a).await.unwrap(), Registered::New);
    assert_eq!(
        codes.register(&code, &a).await.unwrap(),
        Registered::Existing
    );
    assert_eq!(codes.register(&code, &b).await.unwrap(), Registered::Taken);
    assert_eq!(codes.resolve(&code).await.unwrap(), Some(a.clone()));
    let nobody = AckCode::parse("ZZZZZZ").unwrap();
    assert_eq!(codes.resolve(&nobody).await.unwrap(), None);
    // Same id, other kind: another target.
    assert_eq!(
        codes
            .register(&code, &AckTarget::emergency("alert-a"))
            .await
            .unwrap(),
        Registered::Taken
    );

    // b's short code taken by a: b gets its long code; a repeat finds the same.
    let [short, long] = <[AckCode; 2]>::try_from(AckCode::candidates(&b)).unwrap();
    assert_eq!(codes.register(&short, &a).await.unwrap(), Registered::New);
    assert_eq!(assign_code(&codes, &b).await.unwrap(), long);
    assert_eq!(assign_code(&codes, &b).await.unwrap(), long);
    assert_eq!(codes.resolve(&short).await.unwrap(), Some(a.clone()));
    assert_eq!(codes.resolve(&long).await.unwrap(), Some(b.clone()));

    // Eight targets race for one code: exactly one gets it, and keeps it.
    let race = AckCode::parse("RACE22").unwrap();
    let codes = std::sync::Arc::new(codes);
    let mut attempts = tokio::task::JoinSet::new();
    for i in 0..8 {
        let codes = std::sync::Arc::clone(&codes);
        let race = race.clone();
        attempts.spawn(async move {
            let target = AckTarget::alert(format!("alert-{i}"));
            (codes.register(&race, &target).await.unwrap(), target)
        });
    }
    let results = attempts.join_all().await;
    let winners: Vec<&AckTarget> = results
        .iter()
        .filter(|(r, _)| *r == Registered::New)
        .map(|(_, t)| t)
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert!(
        results
            .iter()
            .all(|(r, t)| *r == Registered::New || (*r == Registered::Taken && t != winners[0]))
    );
    assert_eq!(
        codes.resolve(&race).await.unwrap().as_ref(),
        Some(winners[0])
    );

    // Stored beside the patients as ack#{code}, with what it acknowledges.
    let item = aws_sdk_dynamodb::Client::new(&config)
        .get_item()
        .table_name(&table)
        .key(
            "patientId",
            aws_sdk_dynamodb::types::AttributeValue::S(aws_adapters::ack_code_key(&code)),
        )
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let item: Value = serde_dynamo::aws_sdk_dynamodb_1::from_item(item).unwrap();
    assert_eq!(
        item,
        json!({"patientId": "ack#4K7Q2M", "code": "4K7Q2M", "targetKind": "alert", "targetId": "alert-a"})
    );
}

const W01_PHONE: &str = "+254700000301";
/// Not a health worker: the patient's family.
const FAMILY_PHONE: &str = "+254711000301";

fn worker(id: &str, phone: &str) -> Worker {
    Worker {
        worker_id: id.into(),
        name: format!("Worker {id}"),
        phone: phone.into(),
        village: "Bondo".into(),
        available: true,
        reserved_by: None,
        language: "en".into(),
    }
}

/// Given: p-1 and p-2 of Bondo, both looked after by w-01; roster w-01, w-02; supervisor
/// s-01.
async fn seed(stack: &Stack) {
    inspect::seed_directory(
        stack,
        &[
            entry("p-1", "w-01", W01_PHONE),
            entry("p-2", "w-01", W01_PHONE),
        ],
    )
    .await
    .unwrap();
    inspect::seed_workers(
        stack,
        &[
            worker("w-01", W01_PHONE),
            worker("w-02", "+254700000302"),
            worker("s-01", "+254700000309"),
        ],
    )
    .await
    .unwrap();
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
            phone: FAMILY_PHONE.into(),
            language: "en".into(),
        }),
    )
    .await
    .unwrap();
}

/// The SMS the worker got for the alert of `patient`, once notify has sent it.
async fn alert_sms(stack: &Stack, patient: &str) -> (String, String) {
    let started = Instant::now();
    loop {
        let routed = inspect::events_of_type(stack, "AlertRouted").await.unwrap();
        if let Some(alert_id) = routed
            .iter()
            .find(|r| r["data"]["patientId"] == patient)
            .and_then(|r| r["data"]["alertId"].as_str())
        {
            let outbox = inspect::scan(stack, "OutboxTable").await.unwrap();
            if let Some(text) = outbox
                .iter()
                .find(|row| row["alertId"] == alert_id && row["recipientPhone"] == W01_PHONE)
                .and_then(|row| row["message"].as_str())
            {
                return (alert_id.to_string(), text.to_string());
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no alert SMS for {patient}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `from` replies `text`: published to the inbound topic in the two-way SMS shape.
async fn reply(stack: &Stack, from: &str, text: &str) {
    inspect::sms_reply(stack, from, text, &uuid::Uuid::new_v4().to_string())
        .await
        .expect("publishing the reply");
}

/// The event types of an alert's stream, in order.
async fn alert_events(stack: &Stack, alert_id: &str) -> Vec<Value> {
    let mut events: Vec<Value> = inspect::scan(stack, "EventsTable")
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e["streamId"] == format!("alert-{alert_id}") && e.get("eventType").is_some())
        .collect();
    events.sort_by_key(|e| e["version"].as_u64());
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_acknowledges_by_sms_reply_and_a_stranger_cannot() {
    let stack = start_stack_with("inbound_sms", &[("AckTimeoutSeconds", "8")]).await;
    seed(&stack).await;
    let mut body = Vec::new();
    for p in ["p-1", "p-2"] {
        for (i, hr) in [121.0, 128.0, 133.0].into_iter().enumerate() {
            body.push(reading(p, "heart_rate", hr, 3 - i as i64));
        }
    }
    let (status, _) = post(&stack, &Value::Array(body), None).await;
    assert_eq!(status, 202);

    // Each SMS ends with the reply that acknowledges its alert.
    let (acked, text1) = alert_sms(&stack, "p-1").await;
    let (denied, text2) = alert_sms(&stack, "p-2").await;
    let code_of = |text: &str| {
        let (_, code) = text
            .rsplit_once("Reply ACK ")
            .unwrap_or_else(|| panic!("no reply code in {text:?}"));
        AckCode::parse(code).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    };
    let (code1, code2) = (code_of(&text1), code_of(&text2));
    assert_ne!(code1, code2);

    // The worker answers p-1's alert as people do; the family answers p-2's with its code.
    reply(
        &stack,
        W01_PHONE,
        &format!("ack {}", code1.as_str().to_lowercase()),
    )
    .await;
    reply(&stack, FAMILY_PHONE, &format!("ACK {code2}")).await;
    stack.wait_idle(DRAIN).await.unwrap();

    let p1 = alert_events(&stack, &acked).await;
    let types: Vec<&str> = p1.iter().filter_map(|e| e["eventType"].as_str()).collect();
    assert_eq!(
        types,
        ["AlertRaised", "AlertRouted", "AlertAcknowledged"],
        "{p1:#?}"
    );
    assert_eq!(p1[2]["data"]["acknowledgedBy"], "w-01");
    assert_eq!(p1[2]["source"], "emergency");

    // The stranger acknowledged nothing: p-2's alert escalated, to w-02 then the supervisor.
    let p2 = alert_events(&stack, &denied).await;
    assert!(
        p2.iter().all(|e| e["eventType"] != "AlertAcknowledged"),
        "{p2:#?}"
    );
    let escalated: Vec<&str> = p2
        .iter()
        .filter(|e| e["eventType"] == "AlertEscalated")
        .filter_map(|e| e["data"]["recipientId"].as_str())
        .collect();
    assert_eq!(escalated, ["w-02", "s-01"], "{p2:#?}");
    let log = function_log(&stack, "EmergencyCoordinatorFunction");
    assert!(
        log.iter().any(|l| l["reason"] == "not-a-recipient"),
        "no log line of the refused reply"
    );
    assert!(
        !log.iter().any(|l| l.to_string().contains(FAMILY_PHONE)),
        "a log line shows the sender's phone"
    );

    for (queue, depth) in inspect::dead_letter_depths(&stack).await.unwrap() {
        assert_eq!(depth, 0, "{queue} is not empty");
    }
    stack.shutdown().await.unwrap();
}
