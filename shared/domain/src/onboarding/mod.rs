//! Onboarding: the directory an operator writes through the onboarding API (issue 14):
//! patients (their directory entry, family contact and wearables), workers (the workers
//! table) and village rosters. Validation and planning only; pure logic.
//!
//! - [`PatientInput`] / [`WorkerInput`]: the bodies of `PUT /patients/{id}` and
//!   `PUT /workers/{id}` (also built from CSV rows, [`csv`]), validated into [`Patient`]
//!   and [`WorkerRecord`] with every bad field named ([`FieldError`]).
//! - [`plan_rosters`]: the village rosters after a set of workers is written.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::access::DeviceBinding;
use crate::escalation::{DEFAULT_LANGUAGE, FamilyContact, VillageRoster, Worker};
use crate::routing::DirectoryEntry;

pub mod csv;

/// The longest id (patient, worker, device) accepted.
pub const MAX_ID_LEN: usize = 64;
/// The longest name or village accepted.
pub const MAX_TEXT_LEN: usize = 100;
/// The most wearables one patient may have.
pub const MAX_DEVICES: usize = 10;
/// The most villages one supervisor may supervise in one request.
pub const MAX_SUPERVISED: usize = 50;

/// A field that failed validation, and why. `field` is the JSON name (`family.phone`,
/// `devices[1]`) or, in a CSV report, the column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Whether `id` is a well-formed id: 1 to 64 ASCII letters, digits and `._-`, starting with
/// a letter or digit (so never a `#`-prefixed directory key, and safe in paths and logs).
pub fn valid_id(id: &str) -> bool {
    id.len() <= MAX_ID_LEN
        && id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// Whether `phone` is E.164: `+`, a non-zero digit, then 7 to 14 more digits.
pub fn valid_e164(phone: &str) -> bool {
    let Some(digits) = phone.strip_prefix('+') else {
        return false;
    };
    (8..=15).contains(&digits.len())
        && digits.chars().all(|c| c.is_ascii_digit())
        && !digits.starts_with('0')
}

/// Whether `tag` is a simple BCP 47 language tag: `en`, `sw`, `luo`, `en-KE`.
pub fn valid_language(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let primary = parts.next().unwrap_or_default();
    let region_ok = match (parts.next(), parts.next()) {
        (None, _) => true,
        (Some(sub), None) => {
            (2..=8).contains(&sub.len()) && sub.chars().all(|c| c.is_ascii_alphanumeric())
        }
        _ => false,
    };
    (2..=3).contains(&primary.len()) && primary.chars().all(|c| c.is_ascii_lowercase()) && region_ok
}

/// A required id field: present and well-formed.
fn required_id(errors: &mut Vec<FieldError>, field: &str, value: Option<String>) -> String {
    match value.map(|v| v.trim().to_string()) {
        None => errors.push(FieldError::new(field, "required")),
        Some(v) if !valid_id(&v) => errors.push(FieldError::new(
            field,
            format!("{v:?} is not an id (1 to {MAX_ID_LEN} letters, digits and ._-, starting with a letter or digit)"),
        )),
        Some(v) => return v,
    }
    String::new()
}

/// A required text field (name, village): 1 to 100 characters, no control characters, no
/// `#` (villages are part of directory keys).
fn required_text(errors: &mut Vec<FieldError>, field: &str, value: Option<String>) -> String {
    match value.map(|v| v.trim().to_string()) {
        None => errors.push(FieldError::new(field, "required")),
        Some(v) if v.is_empty() => errors.push(FieldError::new(field, "must not be empty")),
        Some(v) if v.chars().count() > MAX_TEXT_LEN => errors.push(FieldError::new(
            field,
            format!("longer than {MAX_TEXT_LEN} characters"),
        )),
        Some(v) if v.chars().any(|c| c.is_control() || c == '#') => errors.push(FieldError::new(
            field,
            "must not contain control characters or '#'",
        )),
        Some(v) => return v,
    }
    String::new()
}

/// An optional language tag: default [`DEFAULT_LANGUAGE`].
fn language_tag(errors: &mut Vec<FieldError>, field: &str, value: Option<String>) -> String {
    match value.map(|l| l.trim().to_string()) {
        None => DEFAULT_LANGUAGE.to_string(),
        Some(l) if valid_language(&l) => l,
        Some(l) => {
            errors.push(FieldError::new(
                field,
                format!("{l:?} is not a language tag (e.g. en, sw, luo, en-KE)"),
            ));
            String::new()
        }
    }
}

/// A required E.164 phone.
fn required_phone(errors: &mut Vec<FieldError>, field: &str, value: Option<String>) -> String {
    match value.map(|v| v.trim().to_string()) {
        None => errors.push(FieldError::new(field, "required")),
        Some(v) if !valid_e164(&v) => errors.push(FieldError::new(
            field,
            format!("{v:?} is not an E.164 phone number (e.g. +254700000001)"),
        )),
        Some(v) => return v,
    }
    String::new()
}

/// The family contact of `PUT /patients/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FamilyInput {
    pub name: Option<String>,
    pub phone: Option<String>,
    /// BCP 47 tag of the language the family reads its SMS in; default `en`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// The body of `PUT /patients/{id}`: the whole patient (what it omits is removed: no
/// `family` deletes the family contact, a wearable no longer listed is unbound).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatientInput {
    pub name: Option<String>,
    pub village: Option<String>,
    /// The assigned health worker (must exist in the workers table).
    pub worker_id: Option<String>,
    pub family: Option<FamilyInput>,
    /// Client ids of the patient's wearables.
    #[serde(default)]
    pub devices: Vec<String>,
}

/// A validated patient, as stored and as returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Patient {
    pub patient_id: String,
    pub name: String,
    pub village: String,
    pub worker_id: String,
    pub family: Option<FamilyInput>,
    pub devices: Vec<String>,
}

impl PatientInput {
    /// The patient `patient_id` (from the path), or every bad field.
    pub fn validate(self, patient_id: &str) -> Result<Patient, Vec<FieldError>> {
        let mut errors = Vec::new();
        let patient_id = required_id(&mut errors, "id", Some(patient_id.to_string()));
        let name = required_text(&mut errors, "name", self.name);
        let village = required_text(&mut errors, "village", self.village);
        let worker_id = required_id(&mut errors, "workerId", self.worker_id);
        let family = self.family.map(|f| FamilyInput {
            name: Some(required_text(&mut errors, "family.name", f.name)),
            phone: Some(required_phone(&mut errors, "family.phone", f.phone)),
            language: Some(language_tag(&mut errors, "family.language", f.language)),
        });
        if self.devices.len() > MAX_DEVICES {
            errors.push(FieldError::new(
                "devices",
                format!("at most {MAX_DEVICES} devices"),
            ));
        }
        let mut devices = Vec::new();
        for (i, device) in self.devices.into_iter().enumerate() {
            let field = format!("devices[{i}]");
            let device = required_id(&mut errors, &field, Some(device));
            if devices.contains(&device) {
                errors.push(FieldError::new(field, format!("{device} is listed twice")));
            } else {
                devices.push(device);
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Patient {
            patient_id,
            name,
            village,
            worker_id,
            family,
            devices,
        })
    }
}

impl Patient {
    /// The patient's directory entry (no copy of the worker's name or phone: route reads
    /// them from the workers table).
    pub fn entry(&self) -> DirectoryEntry {
        DirectoryEntry {
            patient_id: self.patient_id.clone(),
            patient_name: self.name.clone(),
            village: self.village.clone(),
            worker_id: self.worker_id.clone(),
            worker_name: String::new(),
            worker_phone: String::new(),
            device_ids: self.devices.clone(),
        }
    }

    /// The family contact (`family#{patientId}`), if any.
    pub fn family_contact(&self) -> Option<FamilyContact> {
        self.family.as_ref().map(|f| FamilyContact {
            patient_id: self.patient_id.clone(),
            name: f.name.clone().unwrap_or_default(),
            phone: f.phone.clone().unwrap_or_default(),
            language: f
                .language
                .clone()
                .unwrap_or_else(|| DEFAULT_LANGUAGE.to_string()),
        })
    }

    /// The bindings of the patient's wearables (`device#{clientId}`).
    pub fn bindings(&self) -> Vec<(String, DeviceBinding)> {
        self.devices
            .iter()
            .map(|d| {
                (
                    d.clone(),
                    DeviceBinding::Wearable {
                        bound_patient_id: self.patient_id.clone(),
                    },
                )
            })
            .collect()
    }

    /// The stored patient as `GET`/`PUT` return it, from its items.
    pub fn from_items(entry: &DirectoryEntry, family: Option<&FamilyContact>) -> Patient {
        Patient {
            patient_id: entry.patient_id.clone(),
            name: entry.patient_name.clone(),
            village: entry.village.clone(),
            worker_id: entry.worker_id.clone(),
            family: family.map(|f| FamilyInput {
                name: Some(f.name.clone()),
                phone: Some(f.phone.clone()),
                language: Some(f.language.clone()),
            }),
            devices: entry.device_ids.clone(),
        }
    }
}

/// What a worker is: a health worker is on their village's roster; a supervisor is not on
/// any roster, and is the supervisor of the villages they `supervise`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkerRole {
    #[default]
    HealthWorker,
    Supervisor,
}

/// The body of `PUT /workers/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkerInput {
    pub name: Option<String>,
    pub phone: Option<String>,
    pub village: Option<String>,
    /// BCP 47 tag; default `en`.
    pub language: Option<String>,
    /// On duty (escalation and emergencies pick them); default true.
    pub on_duty: Option<bool>,
    /// `health-worker` (default) or `supervisor`.
    pub role: Option<String>,
    /// A health worker's place in their village's roster (1 = first told after the assigned
    /// worker); absent: keeps their place, or last when new to the roster.
    pub roster_position: Option<u32>,
    /// A supervisor's villages: they become each one's roster supervisor.
    #[serde(default)]
    pub supervises: Vec<String>,
}

/// A validated worker, as stored and as returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerRecord {
    pub worker_id: String,
    pub name: String,
    pub phone: String,
    pub village: String,
    pub language: String,
    pub on_duty: bool,
    pub role: WorkerRole,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roster_position: Option<u32>,
    pub supervises: Vec<String>,
}

impl WorkerInput {
    /// The worker `worker_id` (from the path), or every bad field.
    pub fn validate(self, worker_id: &str) -> Result<WorkerRecord, Vec<FieldError>> {
        let mut errors = Vec::new();
        let worker_id = required_id(&mut errors, "id", Some(worker_id.to_string()));
        let name = required_text(&mut errors, "name", self.name);
        let phone = required_phone(&mut errors, "phone", self.phone);
        let village = required_text(&mut errors, "village", self.village);
        let language = language_tag(&mut errors, "language", self.language);
        let role = match self.role.as_deref().map(str::trim) {
            None | Some("health-worker") => WorkerRole::HealthWorker,
            Some("supervisor") => WorkerRole::Supervisor,
            Some(other) => {
                errors.push(FieldError::new(
                    "role",
                    format!("{other:?} is not health-worker or supervisor"),
                ));
                WorkerRole::HealthWorker
            }
        };
        if self.roster_position == Some(0) {
            errors.push(FieldError::new("rosterPosition", "positions start at 1"));
        }
        if role == WorkerRole::Supervisor && self.roster_position.is_some() {
            errors.push(FieldError::new(
                "rosterPosition",
                "a supervisor is not on a roster",
            ));
        }
        if role == WorkerRole::HealthWorker && !self.supervises.is_empty() {
            errors.push(FieldError::new(
                "supervises",
                "only a supervisor supervises villages (role: supervisor)",
            ));
        }
        if self.supervises.len() > MAX_SUPERVISED {
            errors.push(FieldError::new(
                "supervises",
                format!("at most {MAX_SUPERVISED} villages"),
            ));
        }
        let mut supervises = Vec::new();
        for (i, v) in self.supervises.into_iter().enumerate() {
            let v = required_text(&mut errors, &format!("supervises[{i}]"), Some(v));
            if !supervises.contains(&v) {
                supervises.push(v);
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(WorkerRecord {
            worker_id,
            name,
            phone,
            village,
            language,
            on_duty: self.on_duty.unwrap_or(true),
            role,
            roster_position: self.roster_position,
            supervises,
        })
    }
}

impl WorkerRecord {
    /// The workers-table item (its reservation, if any, is kept by the write).
    pub fn worker(&self) -> Worker {
        Worker {
            worker_id: self.worker_id.clone(),
            name: self.name.clone(),
            phone: self.phone.clone(),
            village: self.village.clone(),
            available: self.on_duty,
            reserved_by: None,
            language: self.language.clone(),
        }
    }
}

/// The rosters that change when `workers` are written (in order), from the rosters as read
/// (`current`, by village; absent = no roster). Each health worker is on their own village's
/// roster only (at `roster_position`, or where they were, or last), off every other read
/// roster; a supervisor is on none, and supervises their `supervises` villages. A roster
/// created for a health worker before its supervisor is onboarded has no supervisor yet
/// (empty id; escalation skips it). Returned: the changed rosters with what they were.
pub fn plan_rosters(
    current: &BTreeMap<String, Option<VillageRoster>>,
    workers: &[WorkerRecord],
) -> Vec<(VillageRoster, Option<VillageRoster>)> {
    let mut rosters: BTreeMap<String, Option<VillageRoster>> = current.clone();
    for w in workers {
        let villages: BTreeSet<String> = rosters
            .keys()
            .cloned()
            .chain([w.village.clone()])
            .chain(w.supervises.iter().cloned())
            .collect();
        for village in villages {
            let slot = rosters.entry(village.clone()).or_default();
            let mut roster = slot.clone().unwrap_or_else(|| VillageRoster {
                village: village.clone(),
                worker_ids: Vec::new(),
                supervisor_id: String::new(),
            });
            let place = roster.worker_ids.iter().position(|id| *id == w.worker_id);
            let member = w.role == WorkerRole::HealthWorker && village == w.village;
            if member {
                let at = match (w.roster_position, place) {
                    (Some(p), _) => Some(p as usize - 1),
                    (None, Some(_)) => None,
                    (None, None) => Some(usize::MAX),
                };
                if let Some(at) = at {
                    roster.worker_ids.retain(|id| *id != w.worker_id);
                    let at = at.min(roster.worker_ids.len());
                    roster.worker_ids.insert(at, w.worker_id.clone());
                }
            } else {
                roster.worker_ids.retain(|id| *id != w.worker_id);
            }
            if w.role == WorkerRole::Supervisor && w.supervises.contains(&village) {
                roster.supervisor_id = w.worker_id.clone();
            }
            if slot.is_some() || !roster.worker_ids.is_empty() || !roster.supervisor_id.is_empty() {
                *slot = Some(roster);
            }
        }
    }
    rosters
        .into_iter()
        .filter_map(|(village, after)| {
            let before = current.get(&village).cloned().flatten();
            match after {
                Some(after) if Some(&after) != before.as_ref() => Some((after, before)),
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
