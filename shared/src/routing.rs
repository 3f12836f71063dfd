//! Routing: who is told about an alert, and what the message says. Pure logic.

use serde::{Deserialize, Serialize};

use crate::events::{AlertRaised, NotificationRequested};
use crate::ids::deterministic_id;

/// A patient's entry in the directory table: where they live and who looks after them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryEntry {
    pub patient_id: String,
    pub patient_name: String,
    pub village: String,
    pub worker_id: String,
    pub worker_name: String,
    /// E.164, e.g. `+254700000001`.
    pub worker_phone: String,
}

/// The village used when a patient is not in the directory yet.
pub const UNKNOWN_VILLAGE: &str = "unknown";

/// The channel a notification goes out on.
pub const SMS_CHANNEL: &str = "sms";

/// The notification the assigned health worker receives for an alert.
pub fn notification_for(alert: &AlertRaised, entry: &DirectoryEntry) -> NotificationRequested {
    let notification_id = deterministic_id(&[
        "notification",
        &alert.alert_id,
        &entry.worker_id,
        SMS_CHANNEL,
    ]);
    let message = format!(
        "[{}] {} ({}, {}): {} at {} UTC. Alert {}.",
        alert.severity.as_str().to_uppercase(),
        entry.patient_name,
        alert.patient_id,
        entry.village,
        alert.description,
        alert.detected_at.format("%Y-%m-%d %H:%M"),
        short_id(&alert.alert_id),
    );
    NotificationRequested {
        notification_id,
        alert_id: alert.alert_id.clone(),
        patient_id: alert.patient_id.clone(),
        severity: alert.severity,
        recipient_id: entry.worker_id.clone(),
        recipient_phone: entry.worker_phone.clone(),
        message,
    }
}

fn short_id(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
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
        }
    }

    #[test]
    fn message_names_patient_village_condition_and_alert() {
        let n = notification_for(&alert(), &entry());
        assert_eq!(
            n.message,
            "[CRITICAL] Amina (p-7, Kibera): spo2 below 90 % at 2026-11-24 08:30 UTC. Alert 01234567."
        );
        assert_eq!(n.recipient_phone, "+254700000002");
    }

    #[test]
    fn notification_id_is_stable_per_alert_and_recipient() {
        let a = notification_for(&alert(), &entry());
        let b = notification_for(&alert(), &entry());
        assert_eq!(a.notification_id, b.notification_id);
        let mut other = entry();
        other.worker_id = "w-3".into();
        assert_ne!(
            a.notification_id,
            notification_for(&alert(), &other).notification_id
        );
    }
}
