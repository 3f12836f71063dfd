use super::*;
use serde_json::json;

// Given: Bondo (roster w-1, w-2; supervisor s-1) with p-1 (assigned w-1) and p-2
// (assigned w-2); Kibera (roster w-3; supervisor s-2) with p-3 (assigned w-3); p-4 of
// Asembo (assigned w-4) whose village has no roster; p-9 is not registered.
fn entry(patient: &str, village: &str, worker: &str) -> DirectoryEntry {
    DirectoryEntry {
        patient_id: patient.into(),
        patient_name: format!("Patient {patient}"),
        village: village.into(),
        worker_id: worker.into(),
        worker_name: format!("Worker {worker}"),
        worker_phone: "+254700000001".into(),
        device_ids: Vec::new(),
    }
}

fn roster(village: &str, workers: &[&str], supervisor: &str) -> VillageRoster {
    VillageRoster {
        village: village.into(),
        worker_ids: workers.iter().map(|w| w.to_string()).collect(),
        supervisor_id: supervisor.into(),
    }
}

fn world(device: Option<DeviceBinding>) -> DirectoryFacts {
    DirectoryFacts {
        patients: [
            entry("p-1", "Bondo", "w-1"),
            entry("p-2", "Bondo", "w-2"),
            entry("p-3", "Kibera", "w-3"),
            entry("p-4", "Asembo", "w-4"),
        ]
        .into_iter()
        .map(|e| (e.patient_id.clone(), e))
        .collect(),
        rosters: [
            roster("Bondo", &["w-1", "w-2"], "s-1"),
            roster("Kibera", &["w-3"], "s-2"),
        ]
        .into_iter()
        .map(|r| (r.village.clone(), r))
        .collect(),
        device,
    }
}

const ACTIONS: [Action; 4] = [
    Action::AcknowledgeAlert,
    Action::RaiseEmergency,
    Action::ReadEmergency,
    Action::UpdateEmergency,
];
const ALL: [Action; 5] = [
    Action::PostReadings,
    Action::AcknowledgeAlert,
    Action::RaiseEmergency,
    Action::ReadEmergency,
    Action::UpdateEmergency,
];

fn allowed(caller: &Caller, action: Action, patients: &[&str], facts: &DirectoryFacts) -> bool {
    authorize(caller, action, patients.iter().copied(), facts).is_ok()
}

fn worker(id: &str) -> Caller {
    Caller::new(Role::HealthWorker, id)
}
fn supervisor(id: &str) -> Caller {
    Caller::new(Role::Supervisor, id)
}

// ---- POST /readings

#[test]
fn given_a_wearable_when_it_posts_then_only_its_patient_and_unregistered_ones_pass() {
    let facts = world(Some(DeviceBinding::Wearable {
        bound_patient_id: "p-1".into(),
    }));
    let wearable = Caller::new(Role::Device, "wearable-7");
    assert!(allowed(&wearable, Action::PostReadings, &["p-1"], &facts));
    assert!(allowed(
        &wearable,
        Action::PostReadings,
        &["p-1", "p-9"],
        &facts
    ));
    assert!(!allowed(&wearable, Action::PostReadings, &["p-2"], &facts));
}

#[test]
fn given_a_kiosk_when_it_posts_then_only_patients_of_its_village_pass() {
    let facts = world(Some(DeviceBinding::Kiosk {
        village: "Bondo".into(),
    }));
    let kiosk = Caller::new(Role::Device, "kiosk-3");
    assert!(allowed(
        &kiosk,
        Action::PostReadings,
        &["p-1", "p-2", "p-9"],
        &facts
    ));
    let denied = authorize(&kiosk, Action::PostReadings, ["p-1", "p-3"], &facts).unwrap_err();
    assert_eq!(denied.patient_ids, ["p-3"]);
}

#[test]
fn given_a_phone_when_it_posts_then_only_its_workers_patients_pass() {
    let facts = world(Some(DeviceBinding::Phone {
        worker_id: "w-1".into(),
    }));
    let phone = Caller::new(Role::Device, "phone-w1");
    assert!(allowed(
        &phone,
        Action::PostReadings,
        &["p-1", "p-9"],
        &facts
    ));
    // p-2 is of w-1's roster, but the phone is bound to w-1's assigned patients only.
    assert!(!allowed(&phone, Action::PostReadings, &["p-2"], &facts));
    assert!(!allowed(&phone, Action::PostReadings, &["p-3"], &facts));
}

#[test]
fn given_an_unbound_device_when_it_posts_then_it_is_denied() {
    let facts = world(None);
    let device = Caller::new(Role::Device, "stranger");
    let denied = authorize(&device, Action::PostReadings, ["p-9"], &facts).unwrap_err();
    assert!(denied.reason.contains("not bound"), "{}", denied.reason);
}

#[test]
fn given_a_health_worker_when_they_post_then_assigned_roster_and_unregistered_pass() {
    let facts = world(None);
    assert!(allowed(
        &worker("w-1"),
        Action::PostReadings,
        &["p-1"],
        &facts
    ));
    assert!(
        allowed(&worker("w-1"), Action::PostReadings, &["p-2"], &facts),
        "roster"
    );
    assert!(allowed(
        &worker("w-1"),
        Action::PostReadings,
        &["p-9"],
        &facts
    ));
    assert!(!allowed(
        &worker("w-1"),
        Action::PostReadings,
        &["p-3"],
        &facts
    ));
    // Assigned though the village has no roster.
    assert!(allowed(
        &worker("w-4"),
        Action::PostReadings,
        &["p-4"],
        &facts
    ));
    assert!(!allowed(
        &worker("w-3"),
        Action::PostReadings,
        &["p-4"],
        &facts
    ));
}

#[test]
fn given_one_foreign_patient_when_posting_then_the_whole_request_is_denied_naming_it() {
    let facts = world(None);
    let denied = authorize(
        &worker("w-1"),
        Action::PostReadings,
        ["p-1", "p-3", "p-4", "p-3"],
        &facts,
    )
    .unwrap_err();
    assert_eq!(denied.patient_ids, ["p-3", "p-4"]);
    assert!(denied.reason.contains("2 patient(s)"), "{}", denied.reason);
    assert!(denied.reason.contains("p-3, p-4"), "{}", denied.reason);
}

#[test]
fn given_many_foreign_patients_then_the_denial_lists_a_capped_number() {
    let mut facts = world(None);
    let ids: Vec<String> = (0..30).map(|i| format!("q-{i:02}")).collect();
    for id in &ids {
        facts
            .patients
            .insert(id.clone(), entry(id, "Kibera", "w-3"));
    }
    let denied = authorize(
        &worker("w-1"),
        Action::PostReadings,
        ids.iter().map(String::as_str),
        &facts,
    )
    .unwrap_err();
    assert_eq!(denied.patient_ids.len(), MAX_LISTED_PATIENTS);
    assert!(denied.reason.contains("30 patient(s)"), "{}", denied.reason);
    assert!(denied.reason.ends_with("and 10 more"), "{}", denied.reason);
}

#[test]
fn given_a_supervisor_when_they_post_readings_then_denied_even_for_their_district() {
    let facts = world(None);
    assert!(!allowed(
        &supervisor("s-1"),
        Action::PostReadings,
        &["p-1"],
        &facts
    ));
    assert!(!allowed(
        &supervisor("s-1"),
        Action::PostReadings,
        &["p-9"],
        &facts
    ));
}

#[test]
fn given_an_operator_when_they_post_readings_then_any_patient_passes_without_lookups() {
    let operator = Caller::new(Role::Operator, "op-1");
    let facts = DirectoryFacts::default();
    assert!(allowed(
        &operator,
        Action::PostReadings,
        &["p-1", "p-3", "p-9"],
        &facts
    ));
    assert!(lookup(&operator, Action::PostReadings, ["p-1"]).is_empty());
}

// ---- acting on a patient: ack, emergencies

#[test]
fn given_a_device_when_it_acts_on_a_patient_then_denied() {
    let facts = world(Some(DeviceBinding::Wearable {
        bound_patient_id: "p-1".into(),
    }));
    for action in ACTIONS {
        assert!(!allowed(
            &Caller::new(Role::Device, "wearable-7"),
            action,
            &["p-1"],
            &facts
        ));
    }
}

#[test]
fn given_a_health_worker_when_they_act_then_own_patients_pass_and_others_do_not() {
    let facts = world(None);
    for action in ACTIONS {
        assert!(
            allowed(&worker("w-1"), action, &["p-1"], &facts),
            "{action:?} assigned"
        );
        assert!(
            allowed(&worker("w-1"), action, &["p-2"], &facts),
            "{action:?} roster"
        );
        assert!(
            allowed(&worker("w-4"), action, &["p-4"], &facts),
            "{action:?} no roster"
        );
        assert!(
            !allowed(&worker("w-1"), action, &["p-3"], &facts),
            "{action:?} other"
        );
        assert!(
            !allowed(&worker("w-1"), action, &["p-9"], &facts),
            "{action:?} unregistered"
        );
    }
}

#[test]
fn given_a_supervisor_when_they_act_then_their_district_and_unregistered_patients_pass() {
    let facts = world(None);
    for action in ACTIONS {
        assert!(
            allowed(&supervisor("s-1"), action, &["p-1"], &facts),
            "{action:?}"
        );
        assert!(
            allowed(&supervisor("s-1"), action, &["p-2"], &facts),
            "{action:?}"
        );
        assert!(
            allowed(&supervisor("s-1"), action, &["p-9"], &facts),
            "{action:?}"
        );
        assert!(
            !allowed(&supervisor("s-1"), action, &["p-3"], &facts),
            "{action:?}"
        );
        assert!(
            allowed(&supervisor("s-2"), action, &["p-3"], &facts),
            "{action:?}"
        );
        // A village without a roster has no supervisor.
        assert!(
            !allowed(&supervisor("s-1"), action, &["p-4"], &facts),
            "{action:?}"
        );
    }
}

#[test]
fn given_an_operator_when_they_act_on_a_patient_then_denied() {
    let facts = world(None);
    for action in ACTIONS {
        let denied = authorize(
            &Caller::new(Role::Operator, "op-1"),
            action,
            ["p-1"],
            &facts,
        )
        .unwrap_err();
        assert!(denied.reason.contains("operator op-1"), "{}", denied.reason);
    }
}

#[test]
fn given_a_service_on_any_route_then_denied() {
    let facts = world(None);
    let service = Caller::new(Role::Service, "arn:aws:iam::1:role/x");
    for action in ALL {
        assert!(!allowed(&service, action, &["p-1"], &facts), "{action:?}");
    }
}

// ---- what is read

#[test]
fn given_a_request_then_the_first_lookup_reads_each_patient_once_and_the_devices_binding() {
    let device = Caller::new(Role::Device, "kiosk-3");
    let first = lookup(&device, Action::PostReadings, ["p-2", "p-1", "p-2"]);
    assert_eq!(first.patient_ids, ["p-1", "p-2"]);
    assert_eq!(first.device_id.as_deref(), Some("kiosk-3"));
    assert!(first.villages.is_empty());
    let worker_first = lookup(&worker("w-1"), Action::PostReadings, ["p-1"]);
    assert_eq!(worker_first.device_id, None);
    // Decided by the role: nothing to read.
    assert!(lookup(&supervisor("s-1"), Action::PostReadings, ["p-1"]).is_empty());
    assert!(lookup(&device, Action::AcknowledgeAlert, ["p-1"]).is_empty());
}

#[test]
fn given_the_entries_then_rosters_are_read_only_where_they_decide() {
    let mut facts = world(None);
    facts.rosters.clear();
    // w-1's own p-1 needs no roster; p-2 (Bondo) and p-3 (Kibera) do.
    assert_eq!(
        roster_lookup(
            &worker("w-1"),
            Action::PostReadings,
            ["p-1", "p-2", "p-3", "p-9"],
            &facts
        ),
        ["Bondo", "Kibera"]
    );
    assert!(roster_lookup(&worker("w-1"), Action::PostReadings, ["p-1"], &facts).is_empty());
    assert_eq!(
        roster_lookup(&supervisor("s-1"), Action::ReadEmergency, ["p-1"], &facts),
        ["Bondo"]
    );
    let kiosk = Caller::new(Role::Device, "kiosk-3");
    assert!(roster_lookup(&kiosk, Action::PostReadings, ["p-2"], &facts).is_empty());
    // Already read: not again.
    assert!(
        roster_lookup(
            &supervisor("s-1"),
            Action::ReadEmergency,
            ["p-1"],
            &world(None)
        )
        .is_empty()
    );
}

#[test]
fn device_bindings_are_stored_tagged_by_kind() {
    let items = [
        (
            json!({"patientId":"device#wearable-7","kind":"wearable","boundPatientId":"p-1"}),
            DeviceBinding::Wearable {
                bound_patient_id: "p-1".into(),
            },
        ),
        (
            json!({"patientId":"device#kiosk-3","kind":"kiosk","village":"Kibera"}),
            DeviceBinding::Kiosk {
                village: "Kibera".into(),
            },
        ),
        (
            json!({"patientId":"device#phone-w1","kind":"phone","workerId":"w-1"}),
            DeviceBinding::Phone {
                worker_id: "w-1".into(),
            },
        ),
    ];
    for (item, binding) in items {
        assert_eq!(
            serde_json::from_value::<DeviceBinding>(item.clone()).unwrap(),
            binding
        );
        let mut written = serde_json::to_value(&binding).unwrap();
        written["patientId"] = item["patientId"].clone();
        assert_eq!(written, item);
    }
    assert_eq!(device_key("kiosk-3"), "device#kiosk-3");
}

#[test]
fn given_the_onboarding_api_when_anyone_but_an_operator_calls_then_denied_without_a_lookup() {
    let facts = world(None);
    let operator = Caller::new(Role::Operator, "op-1");
    assert!(allowed(
        &operator,
        Action::ManageDirectory,
        &["p-1"],
        &facts
    ));
    assert!(lookup(&operator, Action::ManageDirectory, ["p-1"]).is_empty());
    for caller in [
        worker("w-1"),
        supervisor("s-1"),
        Caller::new(Role::Device, "kiosk-3"),
        Caller::new(Role::Service, "arn:aws:iam::1:role/x"),
    ] {
        assert!(
            !allowed(&caller, Action::ManageDirectory, &["p-1"], &facts),
            "{caller:?}"
        );
        // The role alone decides: nothing is read.
        assert!(lookup(&caller, Action::ManageDirectory, ["p-1"]).is_empty());
        let denied = authorize(&caller, Action::ManageDirectory, ["p-1"], &facts).unwrap_err();
        assert!(
            denied.reason.contains("operators only"),
            "{}",
            denied.reason
        );
    }
}
// ---- the query API's reads (issue 14)

#[test]
fn given_the_read_actions_when_listed_then_each_role_sees_its_own_patients_only() {
    let facts = world(None);
    let patients = ["p-1", "p-2", "p-3", "p-4", "p-9"];
    let seen = |caller: &Caller, action| -> Vec<String> {
        permitted(caller, action, patients, &facts)
            .into_iter()
            .collect()
    };
    for action in [Action::ReadAlerts, Action::ListEmergencies] {
        let operator = Caller::new(Role::Operator, "op-1");
        assert_eq!(seen(&operator, action), patients);
        // A roster worker of Bondo: both Bondo patients; w-4: their assigned one.
        assert_eq!(seen(&worker("w-1"), action), ["p-1", "p-2"]);
        assert_eq!(seen(&worker("w-4"), action), ["p-4"]);
        // The supervisor of Bondo: Bondo's patients and the unregistered one.
        assert_eq!(seen(&supervisor("s-1"), action), ["p-1", "p-2", "p-9"]);
        assert_eq!(
            seen(&Caller::new(Role::Device, "kiosk-3"), action),
            Vec::<String>::new()
        );
        assert_eq!(
            seen(&Caller::new(Role::Service, "arn"), action),
            Vec::<String>::new()
        );
        assert!(allowed(&worker("w-3"), action, &["p-3"], &facts));
        assert!(!allowed(&worker("w-3"), action, &["p-1"], &facts));
    }
}

#[test]
fn given_the_existing_actions_then_operators_still_read_no_single_emergency() {
    let operator = Caller::new(Role::Operator, "op-1");
    assert!(!allowed(
        &operator,
        Action::ReadEmergency,
        &["p-1"],
        &world(None)
    ));
    assert!(allowed(
        &operator,
        Action::ReadAlerts,
        &["p-1"],
        &world(None)
    ));
}

#[test]
fn village_statistics_are_read_by_the_operator_and_the_villages_people_only() {
    let bondo = roster("Bondo", &["w-1", "w-2"], "s-1");
    let can = |role, id: &str, r: Option<&VillageRoster>| {
        authorize_village(&Caller::new(role, id), "Bondo", r).is_ok()
    };
    assert!(can(Role::Operator, "op", None));
    assert!(can(Role::Supervisor, "s-1", Some(&bondo)));
    assert!(can(Role::HealthWorker, "w-2", Some(&bondo)));
    assert!(!can(Role::Supervisor, "s-2", Some(&bondo)));
    assert!(!can(Role::HealthWorker, "w-3", Some(&bondo)));
    assert!(!can(Role::Supervisor, "s-1", None));
    assert!(!can(Role::Device, "d", Some(&bondo)));
    let denied = authorize_village(
        &Caller::new(Role::HealthWorker, "w-3"),
        "Bondo",
        Some(&bondo),
    )
    .unwrap_err();
    assert!(denied.reason.contains("Bondo"), "{}", denied.reason);
}

#[test]
fn a_patients_record_is_read_by_the_operator_and_their_own_people() {
    let facts = DirectoryFacts {
        patients: [("p-1".to_string(), entry("p-1", "Bondo", "w-1"))].into(),
        rosters: [("Bondo".to_string(), roster("Bondo", &["w-1", "w-2"], "s-1"))].into(),
        device: None,
    };
    let may = |role, id: &str| {
        authorize(&Caller::new(role, id), Action::ReadPatient, ["p-1"], &facts).is_ok()
    };
    assert!(may(Role::Operator, "op"));
    assert!(may(Role::HealthWorker, "w-1"));
    assert!(may(Role::HealthWorker, "w-2"));
    assert!(may(Role::Supervisor, "s-1"));
    assert!(!may(Role::HealthWorker, "w-3"));
    assert!(!may(Role::Supervisor, "s-2"));
    assert!(!may(Role::Device, "d"));
}
