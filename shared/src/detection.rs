//! Per-patient anomaly detection: pure rules over a patient's readings in event-time order.
//!
//! Every rule here is an *episode* rule: a condition that must hold for `consecutive`
//! readings in a row. The first reading that completes the run raises one alert; further
//! readings while the condition holds raise nothing; a reading that breaks the condition
//! ends the episode. The alert id is derived from (patient, rule, first reading of the run),
//! so evaluating the same readings again always yields the same id.
//!
//! The state is small, serialisable and stored per patient by the `detect` function.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::events::{Evidence, Severity};
use crate::ids::deterministic_id;
use crate::reading::{Reading, VitalType};

/// How many recent reading ids a patient's state remembers to recognise redeliveries.
pub const REMEMBERED_READINGS: usize = 64;

/// Which side of the threshold is abnormal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    Above,
    Below,
}

/// "`vital` is `comparison` `threshold` in `consecutive` readings in a row".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    pub id: String,
    pub alert_type: String,
    pub severity: Severity,
    pub vital: VitalType,
    pub comparison: Comparison,
    pub threshold: f64,
    pub consecutive: u32,
}

impl Rule {
    fn is_abnormal(&self, value: f64) -> bool {
        match self.comparison {
            Comparison::Above => value > self.threshold,
            Comparison::Below => value < self.threshold,
        }
    }

    /// A sentence a health worker can read.
    pub fn describe(&self) -> String {
        let side = match self.comparison {
            Comparison::Above => "above",
            Comparison::Below => "below",
        };
        let times = if self.consecutive == 1 {
            String::new()
        } else {
            format!(" in {} consecutive readings", self.consecutive)
        };
        format!(
            "{} {side} {} {}{times}",
            self.vital.as_str(),
            self.threshold,
            self.vital.unit()
        )
    }
}

/// The starter rule set: tachycardia and hypoxemia.
pub fn default_rules() -> Vec<Rule> {
    vec![
        Rule {
            id: "hr-high-3".into(),
            alert_type: "tachycardia".into(),
            severity: Severity::Warning,
            vital: VitalType::HeartRate,
            comparison: Comparison::Above,
            threshold: 100.0,
            consecutive: 3,
        },
        Rule {
            id: "spo2-low".into(),
            alert_type: "hypoxemia".into(),
            severity: Severity::Critical,
            vital: VitalType::Spo2,
            comparison: Comparison::Below,
            threshold: 90.0,
            consecutive: 1,
        },
    ]
}

/// Progress of one rule for one patient.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleProgress {
    /// The current run of abnormal readings (at most `consecutive` kept).
    pub run: Vec<Evidence>,
    /// Whether the current run already raised its alert.
    pub alerted: bool,
}

/// Everything detection remembers about one patient.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PatientState {
    /// Ids of the most recent readings applied, oldest first.
    pub recent_readings: VecDeque<String>,
    /// Event time of the newest reading applied, per vital type (`VitalType::as_str`).
    pub last_reading_at: BTreeMap<String, DateTime<Utc>>,
    /// Progress per rule id.
    pub rules: BTreeMap<String, RuleProgress>,
}

/// A rule fired: the alert to raise.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertCandidate {
    pub alert_id: String,
    pub rule: Rule,
    pub evidence: Vec<Evidence>,
    /// Event id of the reading that completed the condition.
    pub trigger_event_id: String,
    pub detected_at: DateTime<Utc>,
}

/// What evaluating a patient's readings did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evaluation {
    pub alerts: Vec<AlertCandidate>,
    /// Readings already applied before (redelivery).
    pub duplicates: Vec<String>,
    /// Readings older than the newest applied reading of their type: recorded, not evaluated.
    pub late: Vec<String>,
    /// Whether the state changed and must be saved.
    pub changed: bool,
}

/// Applies `readings` (event id + reading, one patient) to `state` in event-time order.
pub fn evaluate(
    state: &mut PatientState,
    rules: &[Rule],
    readings: &[(String, Reading)],
) -> Evaluation {
    let mut ordered: Vec<&(String, Reading)> = readings.iter().collect();
    ordered.sort_by(|a, b| (a.1.timestamp, &a.0).cmp(&(b.1.timestamp, &b.0)));

    let mut out = Evaluation::default();
    for (event_id, reading) in ordered {
        if state.recent_readings.contains(event_id) {
            out.duplicates.push(event_id.clone());
            continue;
        }
        let vital = reading.vital.as_str();
        if let Some(last) = state.last_reading_at.get(vital)
            && reading.timestamp <= *last
        {
            out.late.push(event_id.clone());
            continue;
        }
        state
            .last_reading_at
            .insert(vital.to_string(), reading.timestamp);
        state.recent_readings.push_back(event_id.clone());
        while state.recent_readings.len() > REMEMBERED_READINGS {
            state.recent_readings.pop_front();
        }
        out.changed = true;

        for rule in rules.iter().filter(|r| r.vital == reading.vital) {
            let progress = state.rules.entry(rule.id.clone()).or_default();
            if let Some(alert) = step(rule, progress, event_id, reading) {
                out.alerts.push(alert);
            }
        }
    }
    out
}

fn step(
    rule: &Rule,
    progress: &mut RuleProgress,
    event_id: &str,
    reading: &Reading,
) -> Option<AlertCandidate> {
    if !rule.is_abnormal(reading.value) {
        *progress = RuleProgress::default();
        return None;
    }
    let needed = rule.consecutive.max(1) as usize;
    if progress.run.len() < needed {
        progress.run.push(Evidence {
            reading_event_id: event_id.to_string(),
            vital: reading.vital,
            value: reading.value,
            timestamp: reading.timestamp,
        });
    }
    if progress.alerted || progress.run.len() < needed {
        return None;
    }
    progress.alerted = true;
    let episode_start = progress.run[0].timestamp.to_rfc3339();
    Some(AlertCandidate {
        alert_id: deterministic_id(&["alert", &reading.patient_id, &rule.id, &episode_start]),
        rule: rule.clone(),
        evidence: progress.run.clone(),
        trigger_event_id: event_id.to_string(),
        detected_at: reading.timestamp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-24T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + Duration::seconds(seconds)
    }

    fn reading(vital: VitalType, value: f64, seconds: i64) -> (String, Reading) {
        let r = Reading {
            patient_id: "p-1".into(),
            vital,
            value,
            unit: vital.unit().into(),
            timestamp: at(seconds),
            device_id: "d-1".into(),
        };
        (r.event_id(), r)
    }

    fn hr(values: &[f64]) -> Vec<(String, Reading)> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| reading(VitalType::HeartRate, *v, i as i64 * 60))
            .collect()
    }

    #[test]
    fn heart_rate_over_100_three_times_in_a_row_raises_one_alert() {
        let mut state = PatientState::default();
        let eval = evaluate(
            &mut state,
            &default_rules(),
            &hr(&[101.0, 120.0, 130.0, 140.0]),
        );
        assert_eq!(eval.alerts.len(), 1);
        let alert = &eval.alerts[0];
        assert_eq!(alert.rule.id, "hr-high-3");
        assert_eq!(alert.evidence.len(), 3);
        assert_eq!(alert.detected_at, at(120));
    }

    #[test]
    fn exactly_100_or_a_broken_run_does_not_alert() {
        for values in [[100.0, 100.0, 100.0, 100.0], [101.0, 102.0, 99.0, 103.0]] {
            let mut state = PatientState::default();
            let eval = evaluate(&mut state, &default_rules(), &hr(&values));
            assert!(eval.alerts.is_empty(), "{values:?}");
        }
    }

    #[test]
    fn a_new_episode_after_recovery_raises_a_new_alert() {
        let mut state = PatientState::default();
        let eval = evaluate(
            &mut state,
            &default_rules(),
            &hr(&[101.0, 101.0, 101.0, 80.0, 110.0, 110.0, 110.0]),
        );
        assert_eq!(eval.alerts.len(), 2);
        assert_ne!(eval.alerts[0].alert_id, eval.alerts[1].alert_id);
    }

    #[test]
    fn spo2_below_90_is_critical_and_89_9_counts_but_90_does_not() {
        let mut state = PatientState::default();
        let eval = evaluate(
            &mut state,
            &default_rules(),
            &[
                reading(VitalType::Spo2, 90.0, 0),
                reading(VitalType::Spo2, 89.9, 60),
            ],
        );
        assert_eq!(eval.alerts.len(), 1);
        assert_eq!(eval.alerts[0].rule.severity, Severity::Critical);
        assert_eq!(eval.alerts[0].detected_at, at(60));
    }

    #[test]
    fn runs_follow_reading_time_not_arrival_order() {
        let mut readings = hr(&[101.0, 101.0, 101.0]);
        readings.reverse();
        let mut state = PatientState::default();
        let eval = evaluate(&mut state, &default_rules(), &readings);
        assert_eq!(eval.alerts.len(), 1);
        assert_eq!(eval.alerts[0].detected_at, at(120));
    }

    #[test]
    fn redelivery_is_a_duplicate_and_changes_nothing() {
        let readings = hr(&[101.0, 101.0, 101.0]);
        let mut state = PatientState::default();
        let first = evaluate(&mut state, &default_rules(), &readings);
        let saved = state.clone();
        let again = evaluate(&mut state, &default_rules(), &readings);
        assert_eq!(first.alerts.len(), 1);
        assert!(again.alerts.is_empty());
        assert_eq!(again.duplicates.len(), 3);
        assert!(!again.changed);
        assert_eq!(state, saved);
    }

    #[test]
    fn same_readings_from_scratch_give_the_same_alert_id() {
        let readings = hr(&[101.0, 101.0, 101.0]);
        let a = evaluate(&mut PatientState::default(), &default_rules(), &readings);
        let b = evaluate(&mut PatientState::default(), &default_rules(), &readings);
        assert_eq!(a.alerts[0].alert_id, b.alerts[0].alert_id);
    }

    #[test]
    fn a_reading_older_than_the_newest_of_its_type_is_late() {
        let mut state = PatientState::default();
        evaluate(&mut state, &default_rules(), &hr(&[70.0, 70.0]));
        let old = reading(VitalType::HeartRate, 150.0, 30);
        let eval = evaluate(&mut state, &default_rules(), std::slice::from_ref(&old));
        assert_eq!(eval.late, vec![old.0]);
        assert!(!eval.changed);
    }

    #[test]
    fn remembers_a_bounded_number_of_reading_ids() {
        let values = vec![70.0; REMEMBERED_READINGS + 10];
        let mut state = PatientState::default();
        evaluate(&mut state, &default_rules(), &hr(&values));
        assert_eq!(state.recent_readings.len(), REMEMBERED_READINGS);
    }
}
