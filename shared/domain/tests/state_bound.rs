//! Issue 13: a patient's detection state stays under a bound in bytes whatever the reading
//! rate, and detection still works on the compacted state.
//!
//! A wearable sends heart rate, temperature and systolic pressure every second for a day
//! (259,200 readings, 60 s per batch) under the production rules; on the last hour the
//! temperature climbs and the pressure drops, and the alerts must still be raised.

use chrono::{DateTime, Duration, Utc};
use domain::detection::{AlertCandidate, Input, PatientState, RuleSet};
use domain::reading::{Reading, VitalType};

/// The documented bound (docs/detection.md#state-size).
const BOUND: usize = domain::detection::STATE_BYTES_BOUND;

fn t0() -> DateTime<Utc> {
    "2026-11-24T00:00:00Z".parse().unwrap()
}

fn reading(vital: VitalType, value: f64, second: i64) -> (String, Reading) {
    let r = Reading {
        patient_id: "p-1".into(),
        vital,
        value,
        unit: vital.unit().into(),
        timestamp: t0() + Duration::seconds(second),
        device_id: "wearable-7".into(),
    };
    (r.event_id(), r)
}

/// The day's vitals at `second`: steady, except from 23:00 a fever (40.5 °C from 23:00)
/// and at 23:30 a systolic drop from 130 to 95 mmHg.
fn vitals(second: i64) -> [(VitalType, f64); 3] {
    let fever = second >= 23 * 3600;
    let drop = second >= 23 * 3600 + 1800;
    // A little jitter, so values are not all alike.
    let jitter = (second % 7) as f64 * 0.01;
    [
        (VitalType::HeartRate, 72.0 + jitter * 10.0),
        (
            VitalType::Temperature,
            if fever { 40.5 } else { 36.8 } + jitter,
        ),
        (
            VitalType::SystolicBp,
            if drop { 95.0 } else { 130.0 } + jitter,
        ),
    ]
}

#[test]
fn a_one_hertz_wearables_state_stays_under_the_bound_for_a_day_and_still_alerts() {
    let rules = RuleSet::from_yaml(include_str!("../../../functions/detect/rules.yaml")).unwrap();
    let mut state = PatientState::default();
    let mut alerts: Vec<AlertCandidate> = Vec::new();
    let mut largest = 0;
    let day = 24 * 3600;
    let batch = 60;
    for start in (0..day).step_by(batch) {
        let readings: Vec<(String, Reading)> = (start..start + batch as i64)
            .flat_map(|s| vitals(s).map(|(v, x)| reading(v, x, s)))
            .collect();
        let inputs: Vec<Input<'_>> = readings
            .iter()
            .map(|(id, r)| Input {
                event_id: id,
                correlation_id: "corr",
                reading: r,
                received_at: None,
            })
            .collect();
        let now = t0() + Duration::seconds(start + batch as i64);
        let out = rules.apply(&mut state, "p-1", &inputs, now);
        alerts.extend(out.alerts);
        // The handler saves the state with the outbox cleared once it is carried out.
        state.outbox.clear();
        let size = serde_json::to_vec(&state).unwrap().len();
        largest = largest.max(size);
        assert!(
            size <= BOUND,
            "{size} bytes after {} s (history {:?})",
            start + batch as i64,
            state.history.iter().map(|h| h.len()).collect::<Vec<_>>()
        );
    }
    eprintln!("largest state over the day: {largest} bytes");

    let raised_at = |rule: &str| -> Vec<i64> {
        alerts
            .iter()
            .filter(|a| a.rule.id == rule)
            .map(|a| (a.detected_at - t0()).num_seconds())
            .collect()
    };
    let fever_from = 23 * 3600;
    // The 10-minute average passes 38.5 once about half the window is feverish (~277 s).
    let fever = raised_at("fever-10min");
    assert_eq!(fever.len(), 1, "{fever:?}");
    assert!(
        (fever_from + 240..=fever_from + 320).contains(&fever[0]),
        "fever at {}",
        fever[0] - fever_from
    );
    // The first 5-minute bucket with a reading above 40 °C, decided when it closes.
    assert_eq!(raised_at("hyperthermia-5min"), [fever_from + 300]);
    let hyperthermia = alerts.iter().find(|a| a.rule.id == "hyperthermia-5min");
    assert_eq!(
        hyperthermia.map(|a| (a.episode_start - t0()).num_seconds()),
        Some(fever_from)
    );
    // The drop of 35 mmHg: at its first reading.
    assert_eq!(raised_at("systolic-drop"), [fever_from + 1800]);
    assert!(raised_at("hr-high-3").is_empty());
}

#[test]
fn the_bound_does_not_depend_on_the_reading_rate() {
    // Temperature and systolic pressure ten times a second for an hour: 72,000 readings.
    let rules = RuleSet::from_yaml(include_str!("../../../functions/detect/rules.yaml")).unwrap();
    let mut state = PatientState::default();
    let mut largest = 0;
    for start in (0..36_000).step_by(600) {
        let readings: Vec<(String, Reading)> = (start..start + 600)
            .flat_map(|tenth: i64| {
                let ms = Duration::milliseconds(tenth * 100);
                [
                    (VitalType::Temperature, 36.8),
                    (VitalType::SystolicBp, 120.0),
                ]
                .map(|(vital, value)| {
                    let (_, mut r) = reading(vital, value + (tenth % 5) as f64 * 0.1, 0);
                    r.timestamp += ms;
                    (r.event_id(), r)
                })
            })
            .collect();
        let inputs: Vec<Input<'_>> = readings
            .iter()
            .map(|(id, r)| Input {
                event_id: id,
                correlation_id: "corr",
                reading: r,
                received_at: None,
            })
            .collect();
        let now = t0() + Duration::milliseconds((start + 600) * 100);
        rules.apply(&mut state, "p-1", &inputs, now);
        state.outbox.clear();
        let size = serde_json::to_vec(&state).unwrap().len();
        largest = largest.max(size);
        assert!(size <= BOUND, "{size} bytes");
    }
    eprintln!("largest state at 10 Hz: {largest} bytes");
    // The 10-minute window keeps its share of the budget, compacted, not 6,000 readings.
    let cap = domain::detection::HISTORY_SAMPLE_BUDGET;
    assert!(state.history.iter().map(|h| h.len()).sum::<usize>() <= cap);
}
