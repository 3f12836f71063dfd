//! The pipeline heartbeat: a synthetic patient whose readings go through the whole alert
//! path every few minutes (`functions/canary`), so a stall that produces no errors (a
//! stuck stream, a paused trigger, a throttled function) still raises an alarm: the
//! heartbeat alarm fires when no canary alert reached `notify` for 15 minutes. Pure.
//!
//! The canary patient is not in the directory and has no family: `route` gives its alerts
//! to [`CANARY_RECIPIENT`], `notify` records that notification without sending an SMS,
//! escalation and the dashboard ignore it, and its alerts are warnings (`hr-high-3`), so no
//! emergency saga starts.

use chrono::{DateTime, Duration, Utc};

use crate::reading::{Reading, VitalType};
use crate::routing::DirectoryEntry;

/// The canary patient's id (reserved: onboarding must not register a patient under it).
pub const CANARY_PATIENT: &str = "canary-heartbeat";
/// The canary's device.
pub const CANARY_DEVICE: &str = "canary-device";
/// Who the canary's alerts are routed to: `notify` sends nothing to it.
pub const CANARY_RECIPIENT: &str = "canary-recipient";
/// A phone number of the reserved fictional range (never dialled: notify does not send).
pub const CANARY_PHONE: &str = "+15005550000";

/// Whether `patient_id` is the canary.
pub fn is_canary_patient(patient_id: &str) -> bool {
    patient_id == CANARY_PATIENT
}

/// Whether `recipient_id` is the canary's recipient.
pub fn is_canary_recipient(recipient_id: &str) -> bool {
    recipient_id == CANARY_RECIPIENT
}

/// The canary's directory entry (never stored: `route` uses it for the canary patient).
pub fn canary_entry() -> DirectoryEntry {
    DirectoryEntry {
        patient_id: CANARY_PATIENT.to_string(),
        patient_name: "Heartbeat".to_string(),
        village: "canary".to_string(),
        worker_id: CANARY_RECIPIENT.to_string(),
        worker_name: "Heartbeat".to_string(),
        worker_phone: CANARY_PHONE.to_string(),
        device_ids: Vec::new(),
    }
}

/// One beat's readings, taken just before `now`: three heart rates above 100 bpm (they
/// complete `hr-high-3`, a new episode each beat) and a normal one (it resolves the alert,
/// so the next beat starts a new episode). One device, in order: evaluated on arrival.
pub fn beat(now: DateTime<Utc>) -> Vec<Reading> {
    // Within the last second, so beats never overlap however close together they run.
    [(400, 120.0), (300, 121.0), (200, 122.0), (100, 70.0)]
        .into_iter()
        .map(|(millis_ago, value)| Reading {
            patient_id: CANARY_PATIENT.to_string(),
            vital: VitalType::HeartRate,
            value,
            unit: "bpm".to_string(),
            timestamp: now - Duration::milliseconds(millis_ago),
            device_id: CANARY_DEVICE.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_beat_is_three_high_heart_rates_then_a_normal_one_in_order() {
        let now = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
        let readings = beat(now);
        let values: Vec<f64> = readings.iter().map(|r| r.value).collect();
        assert_eq!(values, [120.0, 121.0, 122.0, 70.0]);
        assert!(readings.windows(2).all(|w| w[0].timestamp < w[1].timestamp));
        assert!(readings.iter().all(|r| r.timestamp < now));
        assert!(readings.iter().all(|r| is_canary_patient(&r.patient_id)));
        // Each beat is a new episode: the readings (and so their ids) differ per beat.
        let next = beat(now + Duration::minutes(5));
        assert!(readings[0].event_id() != next[0].event_id());
    }

    #[test]
    fn the_canary_is_nobody_real() {
        assert!(!is_canary_patient("p-1"));
        assert!(is_canary_recipient(&canary_entry().worker_id));
    }
}
