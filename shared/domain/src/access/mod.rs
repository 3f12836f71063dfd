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
    /// The onboarding API (`PUT /patients/{id}`, `PUT /workers/{id}`, `POST /import`):
    /// writes the directory itself. Operators only, whatever the patients.
    ManageDirectory,
    /// `GET /alerts`, `GET /alerts/{id}`, `GET /workers/{id}/inbox`: the patient's alerts.
    ReadAlerts,
    /// `GET /emergencies`: the patient's emergencies in a listing.
    ListEmergencies,
    /// `GET /patients/{id}`, `GET /patients/{id}/readings`: the patient's record and vitals.
    ReadPatient,
}

impl Action {
    fn describe(self) -> &'static str {
        match self {
            Action::PostReadings => "post readings for",
            Action::AcknowledgeAlert => "acknowledge alerts of",
            Action::RaiseEmergency => "raise emergencies for",
            Action::ReadEmergency => "read emergencies of",
            Action::UpdateEmergency => "close or update emergencies of",
            Action::ManageDirectory => "onboard or edit",
            Action::ReadAlerts => "read alerts of",
            Action::ListEmergencies => "list emergencies of",
            Action::ReadPatient => "read the record of",
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
        (Role::Operator, Action::ManageDirectory) => Some(Ok(())),
        (_, Action::ManageDirectory) => deny(format!(
            "{} {} may not onboard or edit patients and workers: operators only",
            caller.role.name(),
            caller.id
        )),
        // Operators read every alert and emergency listing (the dashboard's whole picture).
        (
            Role::Operator,
            Action::PostReadings
            | Action::ReadAlerts
            | Action::ListEmergencies
            | Action::ReadPatient,
        ) => Some(Ok(())),
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

/// The patients of `patient_ids` that `caller` may do `action` to (a listing shows only
/// those), given the facts [`lookup`] and [`roster_lookup`] asked for.
pub fn permitted<'a>(
    caller: &Caller,
    action: Action,
    patient_ids: impl IntoIterator<Item = &'a str>,
    facts: &DirectoryFacts,
) -> BTreeSet<String> {
    let ids = distinct_patients(patient_ids);
    let all = |ids: BTreeSet<&str>| ids.into_iter().map(str::to_string).collect();
    match by_role(caller, action) {
        Some(Ok(())) => all(ids),
        Some(Err(_)) => BTreeSet::new(),
        None if caller.role == Role::Device && facts.device.is_none() => BTreeSet::new(),
        None => all(ids
            .into_iter()
            .filter(|p| owns(caller, action, p, facts))
            .collect()),
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

/// Whether `caller` may read the statistics of `village` (`GET /villages/{id}/stats`),
/// given its roster: an operator every village; a supervisor the villages whose roster
/// names them; a health worker the villages whose roster lists them; devices and services
/// none.
pub fn authorize_village(
    caller: &Caller,
    village: &str,
    roster: Option<&VillageRoster>,
) -> Result<(), Denied> {
    let allowed = match caller.role {
        Role::Operator => true,
        Role::Supervisor => roster.is_some_and(|r| r.supervisor_id == caller.id),
        Role::HealthWorker => roster.is_some_and(|r| r.worker_ids.contains(&caller.id)),
        Role::Device | Role::Service => false,
    };
    if allowed {
        return Ok(());
    }
    Err(Denied {
        reason: format!(
            "{} {} may not read the statistics of village {village}",
            caller.role.name(),
            caller.id
        ),
        patient_ids: Vec::new(),
    })
}

#[cfg(test)]
mod tests;
