//! Routing: who is told about an alert, and what the message says (in the recipient's
//! language: [`crate::messages`]). Pure logic.

use serde::{Deserialize, Serialize};

use crate::ack::AckCode;
use crate::events::{AlertRaised, AlertResolved, NotificationKind, NotificationRequested};
use crate::ids::deterministic_id;
use crate::messages::{
    self,
    texts::{AlertSms, alert_text, cleared_text},
};

/// A patient's entry in the directory table: where they live and who looks after them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryEntry {
    pub patient_id: String,
    pub patient_name: String,
    pub village: String,
    pub worker_id: String,
    /// A copy of the worker's name, kept only in entries written before the onboarding API
    /// (issue 14). Route reads the worker's name and phone from the workers table by
    /// `workerId`; this copy is used only when the worker is not there. The onboarding API
    /// writes entries without it (empty = absent).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub worker_name: String,
    /// E.164, e.g. `+254700000001`: a copy like `worker_name` (legacy entries only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub worker_phone: String,
    /// Client ids of the wearables bound to this patient by the onboarding API (so a later
    /// `PUT /patients/{id}` can unbind the ones it no longer lists).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_ids: Vec<String>,
}

impl DirectoryEntry {
    /// The entry with the worker's current name and phone (from the workers table) in
    /// place of the stored copies.
    pub fn with_worker_contact(mut self, name: &str, phone: &str) -> DirectoryEntry {
        self.worker_name = name.to_string();
        self.worker_phone = phone.to_string();
        self
    }
}

/// The village used when a patient is not in the directory yet.
pub const UNKNOWN_VILLAGE: &str = "unknown";

/// The channel a notification goes out on.
pub const SMS_CHANNEL: &str = "sms";

/// The id of a notification: derived from the alert, the recipient, the channel and, for
/// every kind but `alert`, the kind.
///
/// The `alert` kind keeps the derivation from before kinds existed, on purpose: a request
/// or an alert in flight across a deploy (sent by the old `route`, redelivered to the new
/// one, or an escalation of an alert routed before) must find the same outbox row, or
/// `notify` would claim a new row and the worker would get the same SMS twice. A `cleared`
/// notification gets its own id, so it is not taken for a repeat of the alert's.
pub fn notification_id(alert_id: &str, recipient_id: &str, kind: NotificationKind) -> String {
    match kind {
        NotificationKind::Alert => {
            deterministic_id(&["notification", alert_id, recipient_id, SMS_CHANNEL])
        }
        other => deterministic_id(&[
            "notification",
            alert_id,
            recipient_id,
            SMS_CHANNEL,
            other.as_str(),
        ]),
    }
}

/// The notification the assigned health worker receives for an alert, in their `language`:
/// the minimum the worker needs to act (severity, the patient's name and village, the
/// condition, when, the alert's reference) and the reply that acknowledges it ("... Reply
/// ACK 4K7Q2M"). Not the patient id or the readings: an SMS sits on a shared phone.
pub fn notification_for(
    alert: &AlertRaised,
    entry: &DirectoryEntry,
    language: &str,
    code: &AckCode,
) -> NotificationRequested {
    alert_notification(alert, entry, language, code, AlertSms::Routed)
}

/// An alert's notification to `entry`'s worker (the recipient, in their `language`), sent
/// for `why`: routed, or escalated (the same facts, with why it is forwarded; its
/// recipients need the village too).
pub fn alert_notification(
    alert: &AlertRaised,
    entry: &DirectoryEntry,
    language: &str,
    code: &AckCode,
    why: AlertSms,
) -> NotificationRequested {
    let lang = messages::catalogue(language);
    let message = alert_text(
        lang,
        alert,
        &entry.patient_name,
        &entry.village,
        code.as_str(),
        why,
    );
    NotificationRequested {
        notification_id: notification_id(
            &alert.alert_id,
            &entry.worker_id,
            NotificationKind::Alert,
        ),
        alert_id: alert.alert_id.clone(),
        patient_id: alert.patient_id.clone(),
        severity: alert.severity,
        recipient_id: entry.worker_id.clone(),
        recipient_phone: entry.worker_phone.clone(),
        message,
        kind: NotificationKind::Alert,
    }
}

/// The notification the assigned health worker receives, in their `language`, when an
/// alert clears.
pub fn cleared_notification_for(
    resolved: &AlertResolved,
    entry: &DirectoryEntry,
    language: &str,
) -> NotificationRequested {
    let lang = messages::catalogue(language);
    let message = cleared_text(lang, resolved, &entry.patient_name, &entry.village);
    NotificationRequested {
        notification_id: notification_id(
            &resolved.alert_id,
            &entry.worker_id,
            NotificationKind::Cleared,
        ),
        alert_id: resolved.alert_id.clone(),
        patient_id: resolved.patient_id.clone(),
        severity: resolved.severity,
        recipient_id: entry.worker_id.clone(),
        recipient_phone: entry.worker_phone.clone(),
        message,
        kind: NotificationKind::Cleared,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Severity;
    use chrono::{TimeZone, Utc};

    fn alert() -> AlertRaised {
        AlertRaised {
            alert_id: "0123456789abcdef".into(),
            patient_id: "p-7".into(),
            rule_id: "spo2-low".into(),
            alert_type: "hypoxemia".into(),
            severity: Severity::Critical,
            village: "Kibera".into(),
            description: "spo2 below 90 %".into(),
            evidence: vec![],
            detected_at: Utc.with_ymd_and_hms(2026, 11, 24, 8, 30, 0).unwrap(),
            late_by_seconds: None,
            auto_dispatch: true,
        }
    }

    fn entry() -> DirectoryEntry {
        DirectoryEntry {
            patient_id: "p-7".into(),
            patient_name: "Amina".into(),
            village: "Kibera".into(),
            worker_id: "w-2".into(),
            worker_name: "Joseph".into(),
            worker_phone: "+254700000002".into(),
            device_ids: Vec::new(),
        }
    }

    fn code() -> AckCode {
        AckCode::parse("4K7Q2M").unwrap()
    }

    #[test]
    fn the_alert_sms_names_patient_village_condition_and_alert_and_the_reply() {
        let n = notification_for(&alert(), &entry(), "en", &code());
        assert_eq!(
            n.message,
            "[CRITICAL] Amina (Kibera): spo2 below 90 % at 2026-11-24 08:30 UTC. Alert 01234567. Reply ACK 4K7Q2M"
        );
        assert!(n.message.len() <= 160, "{} characters", n.message.len());
        assert_eq!(n.recipient_phone, "+254700000002");
    }

    #[test]
    fn the_alert_sms_is_in_the_recipients_language_with_the_same_id() {
        let english = notification_for(&alert(), &entry(), "en", &code());
        let hindi = notification_for(&alert(), &entry(), "hi-IN", &code());
        assert_eq!(
            hindi.message,
            "[गंभीर] Amina (Kibera): ऑक्सीजन कम, 2026-11-24 08:30 UTC। अलर्ट 01234567। जवाब दें: ACK 4K7Q2M"
        );
        let swahili = notification_for(&alert(), &entry(), "sw", &code());
        assert!(
            swahili
                .message
                .starts_with("[HATARI] Amina (Kibera): oksijeni ya chini saa")
        );
        // An unknown language reads English.
        let other = notification_for(&alert(), &entry(), "luo", &code());
        assert_eq!(other.message, english.message);
        // Only the text changes: the same notification (id, recipient).
        assert_eq!(hindi.notification_id, english.notification_id);
        assert_eq!(hindi.recipient_phone, english.recipient_phone);
    }

    #[test]
    fn an_escalated_alert_says_why_it_is_forwarded() {
        let n = alert_notification(
            &alert(),
            &entry(),
            "en",
            &code(),
            AlertSms::Escalated { level: 2 },
        );
        assert_eq!(
            n.message,
            "[ESCALATED, level 2] [CRITICAL] Amina (Kibera): spo2 below 90 % at 2026-11-24 08:30 UTC. Alert 01234567. Reply ACK 4K7Q2M"
        );
        let n = alert_notification(&alert(), &entry(), "en", &code(), AlertSms::Unrouted);
        assert!(
            n.message
                .starts_with("[ESCALATED: no health worker] [CRITICAL] Amina"),
            "{}",
            n.message
        );
    }

    fn resolved() -> AlertResolved {
        AlertResolved {
            alert_id: "0123456789abcdef".into(),
            patient_id: "p-7".into(),
            rule_id: "spo2-low".into(),
            alert_type: "blood_pressure_drop".into(),
            severity: Severity::Critical,
            episode_start: Utc.with_ymd_and_hms(2026, 11, 24, 8, 30, 0).unwrap(),
            resolved_at: Utc.with_ymd_and_hms(2026, 11, 24, 8, 45, 0).unwrap(),
            reading_event_id: "r-9".into(),
        }
    }

    #[test]
    fn the_alert_kind_keeps_the_id_derivation_from_before_kinds() {
        // The id route derived before notifications had a kind: requests in flight across a
        // deploy must map to the same outbox row.
        let before = deterministic_id(&["notification", "0123456789abcdef", "w-2", "sms"]);
        assert_eq!(
            notification_for(&alert(), &entry(), "en", &code()).notification_id,
            before
        );
        assert_eq!(
            notification_id("0123456789abcdef", "w-2", NotificationKind::Alert),
            before
        );
    }

    #[test]
    fn a_cleared_notification_has_its_own_id_and_says_what_cleared() {
        let n = cleared_notification_for(&resolved(), &entry(), "en");
        assert_eq!(n.kind, NotificationKind::Cleared);
        assert_ne!(
            n.notification_id,
            notification_for(&alert(), &entry(), "en", &code()).notification_id
        );
        assert_eq!(
            n.notification_id,
            cleared_notification_for(&resolved(), &entry(), "en").notification_id
        );
        assert_eq!(
            n.message,
            "Cleared: Amina's blood pressure drop alert from 2026-11-24 08:30 UTC no longer holds (Kibera). Alert 01234567."
        );
        assert_eq!(n.recipient_phone, "+254700000002");
    }

    #[test]
    fn an_alert_request_is_written_without_its_kind() {
        let alert =
            serde_json::to_value(notification_for(&alert(), &entry(), "en", &code())).unwrap();
        assert!(alert.get("kind").is_none(), "{alert}");
        let decoded: NotificationRequested = serde_json::from_value(alert).unwrap();
        assert_eq!(decoded.kind, NotificationKind::Alert);
        let cleared =
            serde_json::to_value(cleared_notification_for(&resolved(), &entry(), "en")).unwrap();
        assert_eq!(cleared["kind"], "cleared");
    }

    #[test]
    fn notification_id_is_stable_per_alert_and_recipient() {
        let a = notification_for(&alert(), &entry(), "en", &code());
        let b = notification_for(&alert(), &entry(), "en", &code());
        assert_eq!(a.notification_id, b.notification_id);
        let mut other = entry();
        other.worker_id = "w-3".into();
        assert_ne!(
            a.notification_id,
            notification_for(&alert(), &other, "en", &code()).notification_id
        );
    }
}
