//! The onboarding API (issue 14, docs/onboarding.md) on the local stack, one stack for the
//! whole binary (`onboarding_end_to_end` runs the cases in order):
//!
//! 1. Refusals, on an idle stack with the emulator's request log on: no token (401), a
//!    health worker, a supervisor, a device and an operator token without the scope (403)
//!    on every route; and an import with 2 bad lines (422 naming both). Afterwards the log
//!    holds no write of any kind, and the good lines' items are absent.
//! 2. A worker and a patient onboarded with `PUT` (201, then 200 with the same body for
//!    the same request), read back with `GetItem`: entry, family, wearable, roster, worker.
//! 3. A good import creates every item (read back with `GetItem`), and no request of the
//!    onboarding calls is a `Scan`.
//! 4. The worker's phone is edited with `PUT /workers/{id}`; the patient's alert is routed
//!    to that worker and texted to the NEW phone (moto's SMS), never to the old one.
//! 5. (i18n, issue 16) A worker onboarded with `"language": "hi"` gets the alert SMS of
//!    their patient in Hindi (read from moto's SMS).

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use devstack::request_log;
use devstack::{Stack, TokenSpec, inspect};
use e2e::*;
use serde_json::{Value, json};

const OLD_PHONE: &str = "+254700007001";
const NEW_PHONE: &str = "+254700007999";

/// One request with an optional `Authorization` and a raw body; the status and JSON body.
async fn send(
    stack: &Stack,
    auth: Option<&str>,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let url = format!("{}{path}", stack.api_url());
    let mut request = match method {
        "PUT" => client.put(url),
        _ => client.post(url),
    };
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    let content_type = if path == "/import" {
        "text/csv"
    } else {
        "application/json"
    };
    let response = request
        .header("content-type", content_type)
        .body(body.to_string())
        .send()
        .await
        .expect("HTTP request");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn operator(stack: &Stack) -> String {
    bearer(stack, &TokenSpec::operator("op-onboard"))
}

/// The item of `table` (logical id) with hash key `key_name` = `key`, as JSON.
async fn item(stack: &Stack, table: &str, key_name: &str, key: &str) -> Option<Value> {
    let name = stack.resource(table).unwrap().ref_value.clone();
    let client = aws_sdk_dynamodb::Client::new(stack.sdk_config());
    let out = client
        .get_item()
        .table_name(name)
        .key(key_name, AttributeValue::S(key.to_string()))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem");
    out.item
        .map(|i| serde_dynamo::aws_sdk_dynamodb_1::from_item(i).expect("an item as JSON"))
}

async fn directory_item(stack: &Stack, key: &str) -> Option<Value> {
    item(stack, "DirectoryTable", "patientId", key).await
}

async fn worker_item(stack: &Stack, id: &str) -> Option<Value> {
    item(stack, "WorkersTable", "workerId", id).await
}

fn worker_body(village: &str, phone: &str) -> Value {
    json!({"name": "Achieng", "phone": phone, "village": village, "language": "sw"})
}

fn patient_body() -> Value {
    json!({"name": "Amina", "village": "Ongata", "workerId": "w-70",
           "family": {"name": "Baraka", "phone": "+254711007001"}, "devices": ["test-device-3"]})
}

const HEADER: &str = "kind,id,name,village,phone,language,onDuty,role,supervises,rosterPosition,workerId,familyName,familyPhone,devices";

async fn refusals_write_nothing(stack: &Stack) {
    request_log::start(stack).await.unwrap();
    let callers: Vec<(&str, Option<String>, u16)> = vec![
        ("no token", None, 401),
        (
            "health worker",
            Some(bearer(stack, &TokenSpec::health_worker("w-70"))),
            403,
        ),
        (
            "supervisor",
            Some(bearer(stack, &TokenSpec::supervisor("s-70"))),
            403,
        ),
        (
            "device",
            Some(bearer(stack, &TokenSpec::device("test-device-1"))),
            403,
        ),
        (
            "operator without the scope",
            Some(bearer(
                stack,
                &TokenSpec::operator("op-1").with_scopes(&["vitals/readings.write"]),
            )),
            403,
        ),
    ];
    let import = format!("{HEADER}\nworker,w-71,Otieno,Ongata,+254700007101,,,,,,,,,\n");
    let routes = [
        (
            "PUT",
            "/workers/w-70",
            worker_body("Ongata", OLD_PHONE).to_string(),
        ),
        ("PUT", "/patients/p-70", patient_body().to_string()),
        ("POST", "/import", import),
    ];
    for (who, auth, expected) in &callers {
        for (method, path, body) in &routes {
            let (status, answer) = send(stack, auth.as_deref(), method, path, body).await;
            assert_eq!(status, *expected, "{who} {method} {path}: {answer}");
        }
    }
    // An import with 2 bad lines among good ones: 422, both reported, nothing written.
    let bad = format!(
        "{HEADER}\n\
         worker,w-72,Wanjiru,Ongata,+254700007201,,,,,,,,,\n\
         worker,w-73,Kamau,Ongata,0700 007 301,,,,,,,,,\n\
         patient,p-72,Nyambura,Ongata,,,,,,,w-72,,,\n\
         patient,p-73,Mutua,Ongata,,,,,,,w-404,,,\n"
    );
    let (status, report) = send(stack, Some(&operator(stack)), "POST", "/import", &bad).await;
    assert_eq!(status, 422, "{report}");
    assert_eq!(report["error"], "ImportRejected");
    let lines: Vec<(u64, &str)> = report["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["line"].as_u64().unwrap(), l["field"].as_str().unwrap()))
        .collect();
    assert_eq!(lines, [(3, "phone"), (5, "workerId")], "{report}");
    let writes: Vec<_> = request_log::requests(stack)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.is_write())
        .collect();
    assert!(writes.is_empty(), "refused requests wrote: {writes:?}");
    for key in ["p-72", "p-70", "village#Ongata"] {
        assert_eq!(directory_item(stack, key).await, None, "{key}");
    }
    assert_eq!(worker_item(stack, "w-72").await, None);
}

async fn put_worker_and_patient(stack: &Stack) {
    let op = operator(stack);
    let (status, supervisor) = send(
        stack,
        Some(&op),
        "PUT",
        "/workers/s-70",
        &json!({"name": "Dr Odhiambo", "phone": "+254700007009", "village": "Ongata",
                "role": "supervisor", "supervises": ["Ongata"]})
        .to_string(),
    )
    .await;
    assert_eq!(status, 201, "{supervisor}");
    let body = worker_body("Ongata", OLD_PHONE).to_string();
    let (status, created) = send(stack, Some(&op), "PUT", "/workers/w-70", &body).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["rosterPosition"], 1);
    let (status, again) = send(stack, Some(&op), "PUT", "/workers/w-70", &body).await;
    assert_eq!((status, &again), (200, &created));

    let body = patient_body().to_string();
    let (status, patient) = send(stack, Some(&op), "PUT", "/patients/p-70", &body).await;
    assert_eq!(status, 201, "{patient}");
    let before = directory_item(stack, "p-70").await;
    let (status, again) = send(stack, Some(&op), "PUT", "/patients/p-70", &body).await;
    assert_eq!((status, &again), (200, &patient));
    assert_eq!(
        directory_item(stack, "p-70").await,
        before,
        "same body, same item"
    );

    // Read back: every item, as the pipeline reads it.
    let entry = before.expect("p-70's entry");
    assert_eq!(
        entry,
        json!({"patientId": "p-70", "patientName": "Amina", "village": "Ongata",
               "workerId": "w-70", "deviceIds": ["test-device-3"]})
    );
    assert_eq!(
        directory_item(stack, "family#p-70").await.unwrap(),
        // No family language given: English (i18n, issue 16).
        json!({"patientId": "family#p-70", "name": "Baraka", "phone": "+254711007001", "language": "en"})
    );
    assert_eq!(
        directory_item(stack, "device#test-device-3").await.unwrap(),
        json!({"patientId": "device#test-device-3", "kind": "wearable", "boundPatientId": "p-70"})
    );
    assert_eq!(
        directory_item(stack, "village#Ongata").await.unwrap(),
        json!({"patientId": "village#Ongata", "village": "Ongata", "workerIds": ["w-70"], "supervisorId": "s-70"})
    );
    let worker = worker_item(stack, "w-70").await.unwrap();
    assert_eq!(
        (&worker["phone"], &worker["language"], &worker["available"]),
        (&json!(OLD_PHONE), &json!("sw"), &json!(true))
    );
    // The wearable is bound: it may post the patient's readings now.
    let (status, answer) = post_as(
        stack,
        &TokenSpec::device("test-device-3"),
        &json!([reading("p-70", "heart_rate", 72.0, 2)]),
        None,
    )
    .await;
    assert_eq!(status, 202, "{answer}");
}

async fn good_import_creates_every_item(stack: &Stack) {
    let text = format!(
        "{HEADER}\n\
         worker,w-80,Wambui,Kitengela,+254700008001,sw,yes,,,1,,,,\n\
         worker,w-81,Njoroge,Kitengela,+254700008101,,no,,,,,,,\n\
         worker,s-80,\"Dr Mwangi, MO\",Kitengela,+254700008009,,,supervisor,Kitengela,,,,,\n\
         patient,p-80,Zawadi,Kitengela,,,,,,,w-80,Imani,+254711008001,\n\
         patient,p-81,Baraka,Kitengela,,,,,,,w-81,,,\n\
         patient,p-82,Neema,Ongata,,,,,,,w-70,,,\n"
    );
    let (status, summary) = send(stack, Some(&operator(stack)), "POST", "/import", &text).await;
    assert_eq!(status, 200, "{summary}");
    // 3 workers, 1 roster, 3 entries, 1 family and 2 family removals (a patient row without
    // one says the patient has none).
    assert_eq!(
        summary,
        json!({"patients": 3, "workers": 3, "writes": 10, "transactions": 1})
    );
    for (id, phone) in [
        ("w-80", "+254700008001"),
        ("w-81", "+254700008101"),
        ("s-80", "+254700008009"),
    ] {
        assert_eq!(
            worker_item(stack, id).await.unwrap()["phone"],
            phone,
            "{id}"
        );
    }
    assert_eq!(
        worker_item(stack, "w-81").await.unwrap()["available"],
        false
    );
    assert_eq!(
        worker_item(stack, "s-80").await.unwrap()["name"],
        "Dr Mwangi, MO"
    );
    assert_eq!(
        directory_item(stack, "village#Kitengela").await.unwrap()["workerIds"],
        json!(["w-80", "w-81"])
    );
    assert_eq!(
        directory_item(stack, "village#Kitengela").await.unwrap()["supervisorId"],
        "s-80"
    );
    for (p, worker) in [("p-80", "w-80"), ("p-81", "w-81"), ("p-82", "w-70")] {
        assert_eq!(
            directory_item(stack, p).await.unwrap()["workerId"],
            worker,
            "{p}"
        );
    }
    assert_eq!(
        directory_item(stack, "family#p-80").await.unwrap()["phone"],
        "+254711008001"
    );
    assert_eq!(directory_item(stack, "family#p-81").await, None);
    // The same file again (a retry): the same items; the roster is already right.
    let before = directory_item(stack, "p-80").await;
    let (status, again) = send(stack, Some(&operator(stack)), "POST", "/import", &text).await;
    assert_eq!((status, &again["writes"]), (200, &json!(9)), "{again}");
    assert_eq!(directory_item(stack, "p-80").await, before);
}

/// The SMS moto received (phone, text). Its model dump can fail while the pipeline is
/// writing (a 500 from moto); asked again then.
async fn texts(stack: &Stack) -> Vec<(String, String)> {
    let url = format!("{}/moto-api/data.json", stack.endpoint_url());
    for _ in 0..20 {
        let response = reqwest::get(&url).await.and_then(|r| r.error_for_status());
        if let Ok(response) = response
            && let Ok(data) = response.json::<Value>().await
        {
            return data["sns"]["SMS"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| {
                    let field = |name: &str| m[name].as_str().unwrap_or_default().to_string();
                    (field("phone_number"), field("message"))
                })
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("moto's model data could not be read 20 times in a row")
}

/// The first SMS moto received for `phone` that names `patient` (waits up to 60 s).
async fn sms_to(stack: &Stack, phone: &str, patient: &str) -> String {
    let started = Instant::now();
    loop {
        let sms = texts(stack).await;
        if let Some((_, text)) = sms
            .iter()
            .find(|(to, text)| to == phone && text.contains(patient))
        {
            return text.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no alert SMS to {phone}: {sms:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn an_edited_phone_gets_the_alert(stack: &Stack) {
    let (status, edited) = send(
        stack,
        Some(&operator(stack)),
        "PUT",
        "/workers/w-70",
        &worker_body("Ongata", NEW_PHONE).to_string(),
    )
    .await;
    assert_eq!(
        (status, &edited["phone"]),
        (200, &json!(NEW_PHONE)),
        "{edited}"
    );
    // The patient's entry is untouched: it holds no copy of the phone.
    assert!(
        directory_item(stack, "p-70")
            .await
            .unwrap()
            .get("workerPhone")
            .is_none()
    );

    let (status, answer) = post(stack, &json!([reading("p-70", "spo2", 85.0, 1)]), None).await;
    assert_eq!(status, 202, "{answer}");
    let text = sms_to(stack, NEW_PHONE, "Amina").await;
    // w-70 reads Swahili (worker_body): the alert is in Swahili (i18n, issue 16).
    assert!(
        text.contains("(Ongata)") && text.contains("Jibu ACK"),
        "{text}"
    );
    let routed = inspect::events_of_type(stack, "AlertRouted").await.unwrap();
    let routed: Vec<&Value> = routed
        .iter()
        .filter(|e| e["data"]["patientId"] == "p-70")
        .collect();
    assert_eq!(routed.len(), 1);
    assert_eq!(routed[0]["data"]["workerId"], "w-70");
    let sms = texts(stack).await;
    assert!(
        sms.iter().all(|(phone, _)| phone != OLD_PHONE),
        "the old phone was texted: {sms:?}"
    );
}

// ---- i18n (issue 16): messages in the recipient's language ----

const HINDI_PHONE: &str = "+254700007201";

/// A worker whose language is `hi` gets their patient's alert SMS in Hindi.
async fn a_hindi_speaking_worker_gets_the_alert_in_hindi(stack: &Stack) {
    let op = operator(stack);
    let worker =
        json!({"name": "Sunita", "phone": HINDI_PHONE, "village": "Rampur", "language": "hi"});
    let (status, created) = send(
        stack,
        Some(&op),
        "PUT",
        "/workers/w-72",
        &worker.to_string(),
    )
    .await;
    assert_eq!(
        (status, &created["language"]),
        (201, &json!("hi")),
        "{created}"
    );
    let patient = json!({"name": "Kamla", "village": "Rampur", "workerId": "w-72",
                         "family": {"name": "Ramesh", "phone": "+254711007201", "language": "hi"}});
    let (status, created) = send(
        stack,
        Some(&op),
        "PUT",
        "/patients/p-72",
        &patient.to_string(),
    )
    .await;
    assert_eq!(
        (status, &created["family"]["language"]),
        (201, &json!("hi")),
        "{created}"
    );
    assert_eq!(
        directory_item(stack, "family#p-72").await.unwrap()["language"],
        "hi"
    );

    let (status, answer) = post(stack, &json!([reading("p-72", "spo2", 85.0, 1)]), None).await;
    assert_eq!(status, 202, "{answer}");
    let text = sms_to(stack, HINDI_PHONE, "Kamla").await;
    assert!(
        text.starts_with("[गंभीर] Kamla (Rampur): ऑक्सीजन कम, "),
        "not the Hindi alert: {text}"
    );
    assert!(text.contains(" UTC। अलर्ट "), "{text}");
    // The reply keyword stays Latin, so the inbound parser reads the worker's "ACK <code>".
    let (_, code) = text
        .rsplit_once("जवाब दें: ACK ")
        .expect("the reply of the Hindi SMS");
    assert!(domain::ack::AckCode::parse(code).is_ok(), "{text}");
    assert!(
        domain::messages::sms::sms_size(&text).segments <= domain::messages::MAX_SEGMENTS,
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onboarding_end_to_end() {
    let stack = start_stack_with("onboarding", &[("NotificationChannel", "sms")]).await;
    refusals_write_nothing(&stack).await;
    request_log::reset(&stack).await.unwrap();
    put_worker_and_patient(&stack).await;
    good_import_creates_every_item(&stack).await;
    let scans: Vec<_> = request_log::requests(&stack)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.operation == "Scan")
        .collect();
    assert!(scans.is_empty(), "the onboarding API scanned: {scans:?}");
    an_edited_phone_gets_the_alert(&stack).await;
    a_hindi_speaking_worker_gets_the_alert_in_hindi(&stack).await;
    stack.shutdown().await.unwrap();
}
