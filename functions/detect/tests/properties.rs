//! Property: any arrival order of a patient's readings within the allowed lateness, cut
//! into any batches, with any redeliveries, gives exactly the alerts and resolutions of
//! the readings in reading-time order (default rules).

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use shared::detection::{Input, Outcome, PatientState, RuleSet};
use shared::reading::{Reading, VitalType};

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-24T08:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// Values on both sides of the default rules' thresholds.
fn value_for(vital: VitalType, pick: usize) -> f64 {
    let choices: &[f64] = match vital {
        VitalType::HeartRate => &[70.0, 101.0, 125.0],
        VitalType::Spo2 => &[85.0, 89.9, 90.0, 97.0],
        VitalType::Temperature => &[36.8, 38.9, 40.5],
        VitalType::SystolicBp => &[85.0, 120.0, 155.0],
        VitalType::DiastolicBp => &[80.0],
    };
    choices[pick % choices.len()]
}

#[derive(Debug, Clone)]
struct Arrival {
    event_id: String,
    reading: Reading,
    /// Processing time at which it arrives.
    arrives: DateTime<Utc>,
}

/// Everything observable, flattened for comparison.
fn observed(outcomes: &[Outcome]) -> (Vec<String>, Vec<String>) {
    let alerts = outcomes
        .iter()
        .flat_map(|o| &o.alerts)
        .map(|a| {
            format!(
                "{} {} at {} evidence {:?}",
                a.alert_id,
                a.rule.id,
                a.detected_at,
                a.evidence
                    .iter()
                    .map(|e| e.reading_event_id.as_str())
                    .collect::<Vec<_>>()
            )
        })
        .collect();
    let resolutions = outcomes
        .iter()
        .flat_map(|o| &o.resolutions)
        .map(|r| format!("{} {} at {}", r.alert_id, r.rule.id, r.resolved_at))
        .collect();
    (alerts, resolutions)
}

fn apply_batches(rules: &RuleSet, batches: &[Vec<&Arrival>]) -> Vec<Outcome> {
    let mut state = PatientState::default();
    let mut outcomes = Vec::new();
    for batch in batches {
        let inputs: Vec<Input<'_>> = batch
            .iter()
            .map(|a| Input {
                event_id: &a.event_id,
                correlation_id: "c",
                reading: &a.reading,
            })
            .collect();
        // The batch is processed when its last record has arrived.
        let now = batch.iter().map(|a| a.arrives).max().unwrap_or_else(t0);
        let out = rules.apply(&mut state, "p-1", &inputs, now);
        assert!(out.late.is_empty(), "nothing within the bound is late");
        outcomes.push(out);
    }
    // Much later: everything pending is evaluated.
    outcomes.push(rules.apply(&mut state, "p-1", &[], t0() + Duration::days(30)));
    outcomes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn any_shuffle_within_lateness_and_any_redelivery_gives_the_in_order_alerts(
        // (gap to the previous reading in s, vital index, value pick, transport delay in s)
        steps in prop::collection::vec((1i64..200, 0usize..5, 0usize..4, 0i64..60), 1..40),
        cuts in prop::collection::vec(1usize..8, 1..40),
        redelivered in prop::collection::vec((0usize..40, 0usize..40), 0..10),
    ) {
        let rules = detect::default_rules().unwrap();
        let lateness = rules.allowed_lateness().num_seconds();
        prop_assert_eq!(lateness, 60);

        let mut second = 0;
        let readings: Vec<Arrival> = steps
            .iter()
            .map(|(gap, vital, pick, delay)| {
                second += gap;
                let vital = VitalType::ALL[*vital];
                let reading = Reading {
                    patient_id: "p-1".into(),
                    vital,
                    value: value_for(vital, *pick),
                    unit: vital.unit().into(),
                    timestamp: t0() + Duration::seconds(second),
                    device_id: "d-1".into(),
                };
                // A delay below the allowed lateness: every reading arrives less than
                // 60 s of reading time after any reading that arrived before it.
                Arrival {
                    event_id: reading.event_id(),
                    arrives: reading.timestamp + Duration::seconds(*delay),
                    reading,
                }
            })
            .collect();

        // In reading-time order, one reading per batch.
        let sorted: Vec<Vec<&Arrival>> = readings.iter().map(|a| vec![a]).collect();
        let expected = observed(&apply_batches(&rules, &sorted));

        // In arrival order, with redeliveries, cut into batches.
        let mut arrivals: Vec<&Arrival> = readings.iter().collect();
        arrivals.sort_by_key(|a| (a.arrives, a.event_id.clone()));
        for (which, position) in &redelivered {
            let copy = &readings[which % readings.len()];
            let earliest = arrivals.iter().position(|a| a.event_id == copy.event_id).unwrap_or(0) + 1;
            let at = (earliest + position).min(arrivals.len());
            arrivals.insert(at, copy);
        }
        let mut batches = Vec::new();
        let mut rest = arrivals.as_slice();
        for cut in cuts.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (batch, tail) = rest.split_at((*cut).min(rest.len()));
            batches.push(batch.to_vec());
            rest = tail;
        }
        let actual = observed(&apply_batches(&rules, &batches));
        prop_assert_eq!(actual, expected);
    }
}
