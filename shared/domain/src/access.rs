//! Who may do what to whose data: the authorization matrix of docs/security.md. Pure logic.
//!
//! A handler knows the caller (role and id, from the authorizer) and the patients a request
//! touches. [`lookup`] says which directory items decide (the patients' entries and the
//! device's binding, read in one batch), [`roster_lookup`] which village rosters after that
//! (only when an entry alone does not decide), and [`authorize`] decides from those
//! [`DirectoryFacts`]: allowed, or [`Denied`] with a reason and the patients it is about.
//!
//! "Own" patients: a health worker's are those they are assigned to or whose village roster
//! lists them; a supervisor's those of the villages whose roster names them supervisor; a
//! device's those it is bound to (wearable: its patient; kiosk: its village's; phone: its
//! worker's). A patient with no directory entry is own for any device and health worker
//! posting readings, and for every supervisor; never for a health worker acting on them.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::escalation::VillageRoster;
use crate::routing::DirectoryEntry;

/// What a caller is (the Cognito group of a person, a device, or an IAM service).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Device,
    HealthWorker,
    Supervisor,
    Operator,
    /// An IAM caller: other parts of the system. Never authorized on the patient routes
    /// (internal callers do not go through the public API).
    Service,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Device => "device",
            Role::HealthWorker => "health worker",
            Role::Supervisor => "supervisor",
            Role::Operator => "operator",
            Role::Service => "service",
        }
    }
}

/// Who is calling: a role and the id the authorizer vouched for (a person's directory id,
/// a device's client id, a service's ARN).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Caller {
    pub role: Role,
    pub id: String,
}

impl Caller {
    pub fn new(role: Role, id: impl Into<String>) -> Caller {
        Caller {
            role,
            id: id.into(),
        }
    }
}

/// What a device is bound to. Stored in the directory table under `device#{clientId}`
/// ([`device_key`]), e.g. `{"patientId":"device#kiosk-3","kind":"kiosk","village":"Kibera"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum DeviceBinding {
    /// Worn by one patient.
    Wearable { bound_patient_id: String },
    /// A clinic kiosk: any patient of its village.
    Kiosk { village: String },
    /// A health worker's phone app: the patients assigned to that worker.
    Phone { worker_id: String },
}

/// Directory-table key of a device binding (patient ids never contain `#`).
pub fn device_key(client_id: &str) -> String {
    format!("device#{client_id}")
}

/// What the caller wants to do to the patients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `POST /readings`.
    PostReadings,
    /// `POST /alerts/{id}/ack` of the patient's alert.
    AcknowledgeAlert,
    /// `POST /emergencies` for the patient.
    RaiseEmergency,
    /// `GET /emergencies/{id}` of the patient's emergency.
    ReadEmergency,
    /// `POST /emergencies/{id}/close` or `/ambulance` of the patient's emergency.
    UpdateEmergency,
}

impl Action {
    fn describe(self) -> &'static str {
        match self {
            Action::PostReadings => "post readings for",
            Action::AcknowledgeAlert => "acknowledge alerts of",
            Action::RaiseEmergency => "raise emergencies for",
            Action::ReadEmergency => "read emergencies of",
            Action::UpdateEmergency => "close or update emergencies of",
        }
    }
}

/// The directory items that decide, as read: patient entries by patient id, village
/// rosters by village, and the calling device's binding. An id absent from `patients` was
/// looked up and is not registered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectoryFacts {
    pub patients: HashMap<String, DirectoryEntry>,
    pub rosters: HashMap<String, VillageRoster>,
    pub device: Option<DeviceBinding>,
}

impl DirectoryFacts {
    /// Adds what another read found.
    pub fn merge(&mut self, other: DirectoryFacts) {
        self.patients.extend(other.patients);
        self.rosters.extend(other.rosters);
        if other.device.is_some() {
            self.device = other.device;
        }
    }
}

/// Directory items to read in one batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lookup {
    /// Patient entries (distinct, sorted).
    pub patient_ids: Vec<String>,
    /// Village rosters (distinct, sorted).
    pub villages: Vec<String>,
    /// The device binding of this client id.
    pub device_id: Option<String>,
}

impl Lookup {
    pub fn is_empty(&self) -> bool {
        self.patient_ids.is_empty() && self.villages.is_empty() && self.device_id.is_none()
    }
}

/// At most this many patient ids are named in a denial.
pub const MAX_LISTED_PATIENTS: usize = 20;

/// Why a request is refused, and which of its patients are not the caller's (sorted, at
/// most [`MAX_LISTED_PATIENTS`]; empty when the role alone decides).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Denied {
    pub reason: String,
    pub patient_ids: Vec<String>,
}

/// Whether the role alone decides `action`, whatever the patients: `Some(Ok)` for any
/// patient, `Some(Err)` for none.
fn by_role(caller: &Caller, action: Action) -> Option<Result<(), Denied>> {
    let deny = |why: String| {
        Some(Err(Denied {
            reason: why,
            patient_ids: Vec::new(),
        }))
    };
    match (caller.role, action) {
        (Role::Operator, Action::PostReadings) => Some(Ok(())),
        (Role::Operator, _) => deny(format!(
            "operator {} may post readings but not {} patients",
            caller.id,
            action.describe()
        )),
        (Role::Supervisor, Action::PostReadings) => {
            deny(format!("supervisor {} may not post readings", caller.id))
        }
        (Role::Device, Action::PostReadings) => None,
        (Role::Device, _) => deny(format!(
            "device {} may not {} patients",
            caller.id,
            action.describe()
        )),
        (Role::Service, _) => deny(format!(
            "service {} may not {} patients through the public API",
            caller.id,
            action.describe()
        )),
        (Role::HealthWorker | Role::Supervisor, _) => None,
    }
}

/// Each patient id once, sorted.
fn distinct_patients<'a>(patient_ids: impl IntoIterator<Item = &'a str>) -> BTreeSet<&'a str> {
    patient_ids.into_iter().collect()
}

/// The directory items to read first for `caller` doing `action` to `patient_ids`: the
/// patients' entries and, for a device, its binding. Empty when the role decides alone.
pub fn lookup<'a>(
    caller: &Caller,
    action: Action,
    patient_ids: impl IntoIterator<Item = &'a str>,
) -> Lookup {
    if by_role(caller, action).is_some() {
        return Lookup::default();
    }
    Lookup {
        patient_ids: distinct_patients(patient_ids)
            .into_iter()
            .filter(|p| !p.contains('#'))
            .map(str::to_string)
            .collect(),
        villages: Vec::new(),
        device_id: (caller.role == Role::Device).then(|| caller.id.clone()),
    }
}

/// The village rosters to read once the patients' entries are in `facts`: those that
/// decide and were not read yet (a health worker's assigned patients need none).
pub fn roster_lookup<'a>(
    caller: &Caller,
    action: Action,
    patient_ids: impl IntoIterator<Item = &'a str>,
    facts: &DirectoryFacts,
) -> Vec<String> {
    if by_role(caller, action).is_some() {
        return Vec::new();
    }
    let villages: BTreeSet<&str> = distinct_patients(patient_ids)
        .into_iter()
        .filter_map(|p| facts.patients.get(p))
        .filter(|entry| match caller.role {
            Role::HealthWorker => entry.worker_id != caller.id,
            Role::Supervisor => true,
            _ => false,
        })
        .map(|entry| entry.village.as_str())
        .filter(|village| !facts.rosters.contains_key(*village))
        .collect();
    villages.into_iter().map(str::to_string).collect()
}

/// Whether `patient_id` is the caller's for `action` (the role does not decide alone).
fn owns(caller: &Caller, action: Action, patient_id: &str, facts: &DirectoryFacts) -> bool {
    let Some(entry) = facts.patients.get(patient_id) else {
        // Nobody registered the patient: readings are kept (the alert goes to the hospital
        // desk), and any supervisor may act; a health worker acts on their own patients only.
        return match caller.role {
            Role::Device | Role::HealthWorker => action == Action::PostReadings,
            Role::Supervisor => true,
            Role::Operator | Role::Service => false,
        };
    };
    let roster = facts.rosters.get(&entry.village);
    match caller.role {
        Role::HealthWorker => {
            entry.worker_id == caller.id
                || roster.is_some_and(|r| r.worker_ids.contains(&caller.id))
        }
        Role::Supervisor => roster.is_some_and(|r| r.supervisor_id == caller.id),
        Role::Device => match &facts.device {
            Some(DeviceBinding::Wearable { bound_patient_id }) => bound_patient_id == patient_id,
            Some(DeviceBinding::Kiosk { village }) => *village == entry.village,
            Some(DeviceBinding::Phone { worker_id }) => *worker_id == entry.worker_id,
            None => false,
        },
        Role::Operator | Role::Service => false,
    }
}

/// Decides whether `caller` may do `action` to every one of `patient_ids`, given the facts
/// [`lookup`] and [`roster_lookup`] asked for. A request is authorized as a whole: one
/// patient that is not the caller's denies it, naming the patients that are not.
pub fn authorize<'a>(
    caller: &Caller,
    action: Action,
    patient_ids: impl IntoIterator<Item = &'a str>,
    facts: &DirectoryFacts,
) -> Result<(), Denied> {
    if let Some(decided) = by_role(caller, action) {
        return decided;
    }
    if caller.role == Role::Device && facts.device.is_none() {
        return Err(Denied {
            reason: format!("device {} is not bound to any patient", caller.id),
            patient_ids: Vec::new(),
        });
    }
    let foreign: Vec<&str> = distinct_patients(patient_ids)
        .into_iter()
        .filter(|p| !owns(caller, action, p, facts))
        .collect();
    if foreign.is_empty() {
        return Ok(());
    }
    let listed: Vec<String> = foreign
        .iter()
        .take(MAX_LISTED_PATIENTS)
        .map(|p| p.to_string())
        .collect();
    let more = foreign.len() - listed.len();
    let reason = format!(
        "{} {} may not {} {} patient(s) that are not theirs: {}{}",
        caller.role.name(),
        caller.id,
        action.describe(),
        foreign.len(),
        listed.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    );
    Err(Denied {
        reason,
        patient_ids: listed,
    })
}

#[cfg(test)]
mod tests {
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
}
