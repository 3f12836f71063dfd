//! The SMS of each event, in a recipient's language: the values of each template, taken
//! from the event and the directory. Route, escalation and the emergency steps call these;
//! the catalogue test renders each of them with worst-case values.

use crate::events::{AlertRaised, AlertResolved};
use crate::saga::FamilyStage;

use super::{Catalogue, Template};

/// How times read in an SMS (UTC; the templates say so).
pub const TIME_FORMAT: &str = "%Y-%m-%d %H:%M";

/// The reference an SMS gives for an alert or emergency id: its first 8 characters.
pub fn short_ref(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// Why an alert SMS is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertSms {
    /// Routed to the patient's health worker.
    Routed,
    /// Escalated to `level` of the chain (nobody acknowledged in time).
    Escalated { level: usize },
    /// The patient is not in the directory: told to the supervisor (or hospital).
    Unrouted,
}

/// The alert SMS: severity, patient, village, condition, time, reference and the reply
/// that acknowledges it.
pub fn alert_text(
    lang: &Catalogue,
    alert: &AlertRaised,
    patient: &str,
    village: &str,
    code: &str,
    why: AlertSms,
) -> String {
    let severity = lang.severity(alert.severity);
    let condition = lang.condition(&alert.alert_type, &alert.description);
    let time = alert.detected_at.format(TIME_FORMAT).to_string();
    let (template, level) = match why {
        AlertSms::Routed => (Template::Alert, String::new()),
        AlertSms::Escalated { level } => (Template::Escalated, level.to_string()),
        AlertSms::Unrouted => (Template::EscalatedUnrouted, String::new()),
    };
    lang.render(
        template,
        &[
            ("level", &level),
            ("severity", &severity),
            ("patient", patient),
            ("village", village),
            ("condition", &condition),
            ("time", &time),
            ("ref", short_ref(&alert.alert_id)),
            ("code", code),
        ],
    )
}

/// The SMS that tells the worker an alert no longer holds.
pub fn cleared_text(
    lang: &Catalogue,
    resolved: &AlertResolved,
    patient: &str,
    village: &str,
) -> String {
    let condition = lang.condition(&resolved.alert_type, &resolved.alert_type.replace('_', " "));
    let time = resolved.episode_start.format(TIME_FORMAT).to_string();
    lang.render(
        Template::Cleared,
        &[
            ("patient", patient),
            ("condition", &condition),
            ("time", &time),
            ("village", village),
            ("ref", short_ref(&resolved.alert_id)),
        ],
    )
}

/// What the worker assigned to an emergency reads: who, where, why, and how to acknowledge.
pub fn emergency_worker_text(
    lang: &Catalogue,
    patient: &str,
    village: &str,
    reason: &str,
    emergency_id: &str,
    code: &str,
) -> String {
    lang.render(
        Template::EmergencyWorker,
        &[
            ("patient", patient),
            ("village", village),
            ("reason", reason),
            ("ref", short_ref(emergency_id)),
            ("code", code),
        ],
    )
}

/// What the district hospital reads when local dispatch failed.
pub fn emergency_hospital_text(
    lang: &Catalogue,
    patient_id: &str,
    village: &str,
    reason: &str,
    emergency_id: &str,
) -> String {
    lang.render(
        Template::EmergencyHospital,
        &[
            ("patient", patient_id),
            ("village", village),
            ("reason", reason),
            ("ref", short_ref(emergency_id)),
        ],
    )
}

/// What the family hears at each stage. No diagnosis: the reason stays with the health
/// workers.
pub fn family_text(lang: &Catalogue, name: &str, stage: FamilyStage, emergency_id: &str) -> String {
    let template = match stage {
        FamilyStage::Dispatched => Template::FamilyDispatched,
        FamilyStage::Ambulance => Template::FamilyAmbulance,
        FamilyStage::Hospital => Template::FamilyHospital,
        FamilyStage::Completed => Template::FamilyCompleted,
    };
    lang.render(
        template,
        &[("name", name), ("ref", short_ref(emergency_id))],
    )
}
