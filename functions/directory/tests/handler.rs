//! Given/when/then tests of the onboarding API with in-memory ports.

use application::ports::DirectoryWrite;
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use directory::{Deps, MAX_IMPORT_ROWS, handle};
use domain::access::DeviceBinding;
use domain::escalation::{VillageRoster, Worker};
use serde_json::{Value, json};
use testkit::http::request_with_claims;
use testkit::*;

#[derive(Default)]
struct World {
    directory: MemoryDirectory,
    contacts: MemoryContacts,
    workers: MemoryWorkers,
    writer: MemoryDirectoryWriter,
}

fn worker(id: &str, village: &str) -> Worker {
    Worker {
        worker_id: id.into(),
        name: format!("Worker {id}"),
        phone: "+254700000001".into(),
        village: village.into(),
        available: true,
        reserved_by: None,
        language: "en".into(),
    }
}

impl World {
    /// Given: worker w-01 of Bondo in the workers table; Bondo's roster [w-01], s-01.
    fn new() -> World {
        let world = World {
            workers: MemoryWorkers::with([worker("w-01", "Bondo")]),
            ..World::default()
        };
        world.contacts.rosters.lock().unwrap().insert(
            "Bondo".into(),
            VillageRoster {
                village: "Bondo".into(),
                worker_ids: vec!["w-01".into()],
                supervisor_id: "s-01".into(),
            },
        );
        world
    }

    async fn call(&self, request: ApiGatewayV2httpRequest) -> (u16, Value) {
        let deps = Deps {
            directory: &self.directory,
            contacts: &self.contacts,
            access: &self.directory,
            workers: &self.workers,
            writer: &self.writer,
        };
        decode(handle(&deps, &request).await)
    }
}

fn decode(response: ApiGatewayV2httpResponse) -> (u16, Value) {
    let body = match response.body {
        Some(Body::Text(text)) => serde_json::from_str(&text).unwrap(),
        other => panic!("{other:?}"),
    };
    (response.status_code as u16, body)
}

fn request(claims: Value, route: &str, id: Option<&str>, body: &str) -> ApiGatewayV2httpRequest {
    let method = route.split(' ').next().unwrap();
    let mut request = request_with_claims(method, claims);
    request.route_key = Some(route.to_string());
    if let Some(id) = id {
        request.path_parameters.insert("id".into(), id.into());
    }
    request.body = Some(body.to_string());
    request
}

fn operator() -> Value {
    json!({"username": "op-1", "cognito:groups": "[operator]"})
}

fn amina() -> Value {
    json!({"name": "Amina", "village": "Bondo", "workerId": "w-01",
           "family": {"name": "Baraka", "phone": "+254711000001"}, "devices": ["wearable-9"]})
}

#[tokio::test]
async fn an_operator_puts_a_patient_and_gets_it_back_with_every_item_written_in_one_transaction() {
    let world = World::new();
    let put = request(
        operator(),
        "PUT /patients/{id}",
        Some("p-1"),
        &amina().to_string(),
    );
    let (status, body) = world.call(put.clone()).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["patientId"], "p-1");
    assert_eq!(body["workerId"], "w-01");
    assert_eq!(body["devices"], json!(["wearable-9"]));
    let transactions = world.writer.transactions.lock().unwrap().clone();
    assert_eq!(transactions.len(), 1);
    let writes = &transactions[0];
    assert_eq!(writes.len(), 3);
    let DirectoryWrite::Patient(entry) = &writes[0] else {
        panic!("{writes:?}")
    };
    assert!(
        entry.worker_phone.is_empty(),
        "no copy of the worker's phone"
    );
    // No family language given: English (i18n, issue 16).
    assert!(
        matches!(&writes[1], DirectoryWrite::Family(f) if f.phone == "+254711000001" && f.language == "en")
    );
    assert_eq!(body["family"]["language"], "en");
    assert!(
        matches!(&writes[2], DirectoryWrite::Device { client_id, binding: DeviceBinding::Wearable { bound_patient_id } }
        if client_id == "wearable-9" && bound_patient_id == "p-1")
    );

    // The same body again, the patient now stored: 200 and the same writes.
    world
        .directory
        .entries
        .lock()
        .unwrap()
        .insert("p-1".into(), entry.clone());
    world.directory.devices.lock().unwrap().insert(
        "wearable-9".into(),
        DeviceBinding::Wearable {
            bound_patient_id: "p-1".into(),
        },
    );
    let (status, again) = world.call(put).await;
    assert_eq!((status, &again), (200, &body));
    assert_eq!(world.writer.transactions.lock().unwrap()[1], *writes);

    // Without family and wearable: the family contact goes, the wearable is unbound.
    let bare = json!({"name": "Amina", "village": "Bondo", "workerId": "w-01"}).to_string();
    let (status, _) = world
        .call(request(
            operator(),
            "PUT /patients/{id}",
            Some("p-1"),
            &bare,
        ))
        .await;
    assert_eq!(status, 200);
    let last = world.writer.transactions.lock().unwrap()[2].clone();
    assert!(last.contains(&DirectoryWrite::RemoveFamily("p-1".into())));
    assert!(last.contains(&DirectoryWrite::RemoveDevice("wearable-9".into())));
}

/// i18n (issue 16): the family's language is stored with its contact; a bad tag is a 422.
#[tokio::test]
async fn a_familys_language_is_stored_with_its_contact() {
    let world = World::new();
    let mut body = amina();
    body["family"]["language"] = json!("hi");
    let put = request(
        operator(),
        "PUT /patients/{id}",
        Some("p-1"),
        &body.to_string(),
    );
    let (status, answer) = world.call(put).await;
    assert_eq!(
        (status, &answer["family"]["language"]),
        (201, &json!("hi")),
        "{answer}"
    );
    let transactions = world.writer.transactions.lock().unwrap().clone();
    assert!(matches!(&transactions[0][1], DirectoryWrite::Family(f) if f.language == "hi"));

    body["family"]["language"] = json!("Hindi");
    let put = request(
        operator(),
        "PUT /patients/{id}",
        Some("p-2"),
        &body.to_string(),
    );
    let (status, answer) = world.call(put).await;
    assert_eq!(status, 422, "{answer}");
    assert!(answer.to_string().contains("family.language"), "{answer}");
    assert_eq!(world.writer.transactions.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_bad_patient_is_a_422_naming_every_bad_field_and_writes_nothing() {
    let world = World::new();
    world.directory.devices.lock().unwrap().insert(
        "kiosk-1".into(),
        DeviceBinding::Kiosk {
            village: "Bondo".into(),
        },
    );
    let body = json!({"name": "", "village": "Bondo", "workerId": "w-404",
        "family": {"name": "Baraka", "phone": "0711"}, "devices": ["kiosk-1"]});
    // Field checks first (all of them), then the table checks.
    let (status, error) = world
        .call(request(
            operator(),
            "PUT /patients/{id}",
            Some("p-1"),
            &body.to_string(),
        ))
        .await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["error"], "ValidationFailed");
    let fields: Vec<&str> = error["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["name", "family.phone"]);
    let body =
        json!({"name": "Amina", "village": "Bondo", "workerId": "w-404", "devices": ["kiosk-1"]});
    let (status, error) = world
        .call(request(
            operator(),
            "PUT /patients/{id}",
            Some("p#1"),
            &body.to_string(),
        ))
        .await;
    assert_eq!(
        (status, error["fields"][0]["field"].as_str()),
        (422, Some("id"))
    );
    let (status, error) = world
        .call(request(
            operator(),
            "PUT /patients/{id}",
            Some("p-1"),
            &body.to_string(),
        ))
        .await;
    assert_eq!(status, 422);
    let fields: Vec<&str> = error["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["workerId", "devices[0]"]);
    assert!(
        error["fields"][1]["reason"]
            .as_str()
            .unwrap()
            .contains("kiosk")
    );
    for bad in ["{", r#"{"name":"A","colour":"red"}"#] {
        let (status, error) = world
            .call(request(operator(), "PUT /patients/{id}", Some("p-1"), bad))
            .await;
        assert_eq!(
            (status, error["error"].as_str()),
            (400, Some("InvalidBody")),
            "{bad}"
        );
    }
    assert!(world.writer.writes().is_empty());
}

#[tokio::test]
async fn only_operators_may_onboard_and_a_refusal_reads_and_writes_nothing() {
    let world = World::new();
    let callers = [
        json!({"username": "w-01", "cognito:groups": "[health-worker]"}),
        json!({"username": "s-01", "cognito:groups": "[supervisor]"}),
        json!({"client_id": "kiosk-1", "sub": "kiosk-1"}),
    ];
    for claims in callers {
        for (route, id) in [
            ("PUT /patients/{id}", Some("p-1")),
            ("PUT /workers/{id}", Some("w-02")),
            ("POST /import", None),
        ] {
            let (status, error) = world
                .call(request(claims.clone(), route, id, &amina().to_string()))
                .await;
            assert_eq!(
                (status, error["error"].as_str()),
                (403, Some("Forbidden")),
                "{claims} {route}"
            );
        }
    }
    let mut anonymous = request(
        operator(),
        "PUT /patients/{id}",
        Some("p-1"),
        &amina().to_string(),
    );
    anonymous.request_context.authorizer = None;
    assert_eq!(world.call(anonymous).await.0, 401);
    assert!(world.writer.writes().is_empty());
    assert_eq!(world.directory.lookup_count(), 0);
}

#[tokio::test]
async fn a_worker_is_put_with_their_roster_place_and_defaults() {
    let world = World::new();
    let body = json!({"name": "Joseph", "phone": "+254700000002", "village": "Bondo", "rosterPosition": 1});
    let (status, stored) = world
        .call(request(
            operator(),
            "PUT /workers/{id}",
            Some("w-02"),
            &body.to_string(),
        ))
        .await;
    assert_eq!(status, 201, "{stored}");
    assert_eq!(
        stored,
        json!({"workerId": "w-02", "name": "Joseph", "phone": "+254700000002", "village": "Bondo",
               "language": "en", "onDuty": true, "role": "health-worker", "rosterPosition": 1, "supervises": []})
    );
    let writes = world.writer.writes();
    assert!(
        matches!(&writes[0], DirectoryWrite::Worker(w) if w.phone == "+254700000002" && w.available)
    );
    let DirectoryWrite::Roster { roster, previous } = &writes[1] else {
        panic!("{writes:?}")
    };
    assert_eq!(roster.worker_ids, ["w-02", "w-01"]);
    assert_eq!(previous.as_ref().unwrap().worker_ids, ["w-01"]);
    // An existing worker: 200.
    let body = json!({"name": "W", "phone": "+254700000001", "village": "Bondo", "language": "sw", "onDuty": false});
    let (status, stored) = world
        .call(request(
            operator(),
            "PUT /workers/{id}",
            Some("w-01"),
            &body.to_string(),
        ))
        .await;
    assert_eq!(
        (
            status,
            stored["language"].as_str(),
            stored["rosterPosition"].as_u64()
        ),
        (200, Some("sw"), Some(1))
    );
    let bad = json!({"name": "W", "phone": "254", "village": "Bondo", "language": "Swahili"});
    let (status, error) = world
        .call(request(
            operator(),
            "PUT /workers/{id}",
            Some("w-03"),
            &bad.to_string(),
        ))
        .await;
    assert_eq!(status, 422);
    assert_eq!(error["fields"].as_array().unwrap().len(), 2, "{error}");
}

fn csv_request(text: &str) -> ApiGatewayV2httpRequest {
    request(operator(), "POST /import", None, text)
}

const HEADER: &str = "kind,id,name,village,phone,language,onDuty,role,supervises,rosterPosition,workerId,familyName,familyPhone,devices";

#[tokio::test]
async fn an_import_with_bad_lines_reports_every_one_and_writes_nothing() {
    let world = World::new();
    let text = format!(
        "{HEADER}\n\
         worker,w-10,Achieng,Kisumu,+254700000010,,,,,,,,,\n\
         worker,w-11,Otieno,Kisumu,0700,,,,,,,,,\n\
         patient,p-10,Akinyi,Kisumu,,,,,,,w-10,Mama,+254711000010,wearable-10\n\
         patient,p-11,Ouma,Kisumu,,,,,,,w-99,,,\n\
         patient,p-10,Again,Kisumu,,,,,,,w-10,,,\n\
         patient,p-12,Wanjiru,Kisumu,,,,,,,w-10,,,wearable-10\n"
    );
    let (status, report) = world.call(csv_request(&text)).await;
    assert_eq!(status, 422, "{report}");
    assert_eq!(report["error"], "ImportRejected");
    let lines: Vec<(u64, &str)> = report["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["line"].as_u64().unwrap(), l["field"].as_str().unwrap()))
        .collect();
    assert_eq!(
        lines,
        [(3, "phone"), (5, "workerId"), (6, "id"), (7, "devices")]
    );
    assert!(world.writer.writes().is_empty());
}

#[tokio::test]
async fn a_good_import_writes_workers_then_rosters_then_patients_in_transactions_of_at_most_100() {
    let world = World::new();
    let mut text = format!(
        "{HEADER}\nworker,s-20,Supervisor,Kisumu,+254700000029,,,supervisor,Kisumu;Bondo,,,,,\n"
    );
    for w in 0..3 {
        text.push_str(&format!(
            "worker,w-2{w},Worker {w},Kisumu,+25470000002{w},sw,yes,,,,,,,\n"
        ));
    }
    for p in 0..60 {
        text.push_str(&format!(
            "patient,p-{p},Patient {p},Kisumu,,,,,,,w-2{},Family,+2547110000{p:02},\n",
            p % 3
        ));
    }
    let (status, summary) = world.call(csv_request(&text)).await;
    assert_eq!(status, 200, "{summary}");
    // 4 workers, 2 rosters (Kisumu new, Bondo's supervisor), 60 patients x (entry + family).
    assert_eq!(
        summary,
        json!({"patients": 60, "workers": 4, "writes": 126, "transactions": 2})
    );
    let transactions = world.writer.transactions.lock().unwrap().clone();
    assert!(transactions.iter().all(|t| t.len() <= 100));
    let writes = world.writer.writes();
    assert!(
        writes[..4]
            .iter()
            .all(|w| matches!(w, DirectoryWrite::Worker(_)))
    );
    let rosters: Vec<&VillageRoster> = writes
        .iter()
        .filter_map(|w| match w {
            DirectoryWrite::Roster { roster, .. } => Some(roster),
            _ => None,
        })
        .collect();
    assert_eq!(rosters.len(), 2);
    assert_eq!(rosters[0].supervisor_id, "s-20");
    assert_eq!(rosters[0].worker_ids, ["w-01"]);
    assert_eq!(rosters[1].village, "Kisumu");
    assert_eq!(rosters[1].worker_ids, ["w-20", "w-21", "w-22"]);
    // No patient before every worker and roster.
    let first_patient = writes
        .iter()
        .position(|w| matches!(w, DirectoryWrite::Patient(_)))
        .unwrap();
    assert_eq!(first_patient, 6);
}

#[tokio::test]
async fn an_import_failing_part_way_completes_when_the_same_file_is_sent_again() {
    let world = World::new();
    let mut text = format!("{HEADER}\n");
    for p in 0..120 {
        text.push_str(&format!("patient,p-{p},Patient {p},Bondo,,,,,,,w-01,,,\n"));
    }
    *world.writer.fail_at.lock().unwrap() = Some(1);
    let (status, error) = world.call(csv_request(&text)).await;
    assert_eq!(status, 503, "{error}");
    assert_eq!(error["transactionsWritten"], 1);
    let (status, summary) = world.call(csv_request(&text)).await;
    assert_eq!(status, 200, "{summary}");
    // The retry wrote the same items again, all of them.
    let transactions = world.writer.transactions.lock().unwrap().clone();
    assert_eq!(transactions.len(), 1 + 3);
    assert_eq!(transactions[0], transactions[1]);
    assert_eq!(transactions[1..].iter().map(Vec::len).sum::<usize>(), 240);
}

#[tokio::test]
async fn import_limits_and_unreadable_files() {
    let world = World::new();
    let mut text = format!("{HEADER}\n");
    for p in 0..=MAX_IMPORT_ROWS {
        text.push_str(&format!("patient,p-{p},P,Bondo,,,,,,,w-01,,,\n"));
    }
    assert_eq!(world.call(csv_request(&text)).await.0, 413);
    let huge = "x".repeat(directory::MAX_IMPORT_BYTES + 1);
    assert_eq!(world.call(csv_request(&huge)).await.0, 413);
    for bad in [
        "",
        "kind,id,colour\n",
        "kind,id\n",
        "kind,id\nworker,\"w-1\n",
    ] {
        let (status, error) = world.call(csv_request(bad)).await;
        assert_eq!(
            (status, error["error"].as_str()),
            (400, Some("InvalidFile")),
            "{bad:?}"
        );
    }
    assert!(world.writer.writes().is_empty());
}
