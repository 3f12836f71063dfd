//! What the people subscribed to the alerts topic (the optional `AlertEmail` and
//! `AlertPhoneNumber` of the template: a programme mailbox, an on-call phone) read. Pure.
//!
//! They are not the patient's care team, so they get the minimum: that an alert of a
//! severity was raised or cleared, when, and its reference to look up on the dashboard.
//! No patient, no village, no condition, no readings. The queues subscribed to the same
//! topic still get the whole event: the alert publisher sends one SNS message per event
//! with a text per protocol (`MessageStructure: json`, see [`topic_message`]).

use serde_json::json;

use crate::events::{AlertRaised, AlertResolved};

/// The notice of a raised alert for the topic's email and SMS subscribers.
pub fn raised_notice(alert: &AlertRaised) -> String {
    format!(
        "Health alert ({}) raised at {} UTC. Ref {}. Details on the dashboard for the care team.",
        alert.severity.as_str(),
        alert.detected_at.format("%Y-%m-%d %H:%M"),
        short_ref(&alert.alert_id),
    )
}

/// The notice of a cleared alert for the topic's email and SMS subscribers.
pub fn resolved_notice(resolved: &AlertResolved) -> String {
    format!(
        "Health alert ({}) cleared at {} UTC. Ref {}.",
        resolved.severity.as_str(),
        resolved.resolved_at.format("%Y-%m-%d %H:%M"),
        short_ref(&resolved.alert_id),
    )
}

/// The SNS message of an alert event (`MessageStructure: json`): queues (`sqs`, and
/// anything else by `default`) get `event_json`, email and SMS subscribers get `notice`.
pub fn topic_message(event_json: &str, notice: &str) -> String {
    json!({
        "default": event_json,
        "sqs": event_json,
        "email": notice,
        "email-json": notice,
        "sms": notice,
    })
    .to_string()
}

fn short_ref(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Evidence, Severity};
    use crate::reading::VitalType;
    use chrono::{TimeZone, Utc};
    use serde_json::Value;

    fn alert() -> AlertRaised {
        AlertRaised {
            alert_id: "0123456789abcdef".into(),
            patient_id: "p-7".into(),
            rule_id: "spo2-low".into(),
            alert_type: "hypoxemia".into(),
            severity: Severity::Critical,
            village: "Kibera".into(),
            description: "spo2 below 90 %".into(),
            evidence: vec![Evidence {
                reading_event_id: "r-1".into(),
                vital: VitalType::Spo2,
                value: 84.0,
                timestamp: Utc.with_ymd_and_hms(2026, 11, 24, 8, 30, 0).unwrap(),
            }],
            detected_at: Utc.with_ymd_and_hms(2026, 11, 24, 8, 30, 0).unwrap(),
            late_by_seconds: None,
            auto_dispatch: true,
        }
    }

    /// Nothing that identifies the patient or says what is wrong with them.
    fn assert_no_health_data(text: &str) {
        for leaked in ["p-7", "Kibera", "spo2", "84", "hypoxemia", "90 %"] {
            assert!(!text.contains(leaked), "{leaked:?} in {text:?}");
        }
    }

    #[test]
    fn a_raised_notice_carries_severity_time_and_reference_only() {
        let notice = raised_notice(&alert());
        assert_eq!(
            notice,
            "Health alert (critical) raised at 2026-11-24 08:30 UTC. Ref 01234567. Details on the dashboard for the care team."
        );
        assert_no_health_data(&notice);
        assert!(notice.len() <= 160, "one SMS: {} characters", notice.len());
    }

    #[test]
    fn a_cleared_notice_carries_severity_time_and_reference_only() {
        let resolved = AlertResolved {
            alert_id: "0123456789abcdef".into(),
            patient_id: "p-7".into(),
            rule_id: "spo2-low".into(),
            alert_type: "hypoxemia".into(),
            severity: Severity::Critical,
            episode_start: Utc.with_ymd_and_hms(2026, 11, 24, 8, 30, 0).unwrap(),
            resolved_at: Utc.with_ymd_and_hms(2026, 11, 24, 8, 45, 0).unwrap(),
            reading_event_id: "r-9".into(),
        };
        let notice = resolved_notice(&resolved);
        assert_eq!(
            notice,
            "Health alert (critical) cleared at 2026-11-24 08:45 UTC. Ref 01234567."
        );
        assert_no_health_data(&notice);
    }

    #[test]
    fn queues_get_the_event_and_people_the_notice() {
        let event = serde_json::to_string(&alert()).unwrap();
        let notice = raised_notice(&alert());
        let message: Value = serde_json::from_str(&topic_message(&event, &notice)).unwrap();
        assert_eq!(message["default"], event.as_str());
        assert_eq!(message["sqs"], event.as_str());
        for protocol in ["email", "email-json", "sms"] {
            assert_eq!(message[protocol], notice.as_str(), "{protocol}");
            assert_no_health_data(message[protocol].as_str().unwrap());
        }
    }
}
