//! Table-driven tests of every rule kind, boundaries, ordering, lateness and episodes.

use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::detection::engine::time_of;
use crate::events::Severity;
use crate::reading::{Reading, VitalType};

use VitalType::{HeartRate as HR, Spo2, SystolicBp as SBP, Temperature as TEMP};

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-24T08:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn at(seconds: i64) -> DateTime<Utc> {
    t0() + Duration::seconds(seconds)
}

/// Long before every reading: processing time never moves the frontier in these tests.
fn early() -> DateTime<Utc> {
    t0() - Duration::days(1)
}

/// Long after every reading: flushes everything pending.
fn late_now() -> DateTime<Utc> {
    t0() + Duration::days(30)
}

fn reading(vital: VitalType, value: f64, seconds: i64) -> (String, Reading) {
    reading_from("d-1", vital, value, seconds)
}

fn reading_from(device: &str, vital: VitalType, value: f64, seconds: i64) -> (String, Reading) {
    let r = Reading {
        patient_id: "p-1".into(),
        vital,
        value,
        unit: vital.unit().into(),
        timestamp: at(seconds),
        device_id: device.into(),
    };
    (r.event_id(), r)
}

fn rules(yaml_rules: &str) -> RuleSet {
    let text = format!("version: 1\nallowedLatenessSeconds: 60\nrules:\n{yaml_rules}");
    RuleSet::from_yaml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn one_rule(condition: &str) -> RuleSet {
    rules(&format!(
        "  - id: r\n    alertType: t\n    severity: warning\n    condition: {condition}\n"
    ))
}

fn inputs(readings: &[(String, Reading)]) -> Vec<Input<'_>> {
    readings
        .iter()
        .map(|(id, r)| Input {
            event_id: id,
            correlation_id: "c",
            reading: r,
            received_at: None,
        })
        .collect()
}

/// Applies the readings in one batch, then flushes just past the allowed lateness after
/// the newest one: (alert times, resolution times) in s.
fn run(set: &RuleSet, readings: &[(String, Reading)]) -> (Vec<i64>, Vec<i64>) {
    let mut state = PatientState::default();
    let mut out = set.apply(&mut state, "p-1", &inputs(readings), early());
    let newest = readings
        .iter()
        .map(|(_, r)| r.timestamp)
        .max()
        .unwrap_or_else(t0);
    let flush_at = newest + set.allowed_lateness() + Duration::seconds(1);
    let flush = set.apply(&mut state, "p-1", &[], flush_at);
    out.alerts.extend(flush.alerts);
    out.resolutions.extend(flush.resolutions);
    let secs = |t: DateTime<Utc>| (t - t0()).num_seconds();
    (
        out.alerts.iter().map(|a| secs(a.detected_at)).collect(),
        out.resolutions
            .iter()
            .map(|r| secs(r.resolved_at))
            .collect(),
    )
}

fn series(vital: VitalType, points: &[(i64, f64)]) -> Vec<(String, Reading)> {
    points.iter().map(|(s, v)| reading(vital, *v, *s)).collect()
}

struct Case {
    name: &'static str,
    condition: &'static str,
    readings: Vec<(String, Reading)>,
    alerts: Vec<i64>,
    resolved: Vec<i64>,
}

fn check(cases: Vec<Case>) {
    for case in cases {
        let set = one_rule(case.condition);
        let (alerts, resolved) = run(&set, &case.readings);
        assert_eq!(alerts, case.alerts, "{}: alert times", case.name);
        assert_eq!(resolved, case.resolved, "{}: resolution times", case.name);
    }
}

const SPO2_BELOW_90: &str = "{kind: threshold, metric: spo2, op: below, value: 90}";
const HR_3_OVER_100: &str =
    "{kind: consecutive, metric: heart_rate, op: above, value: 100, count: 3}";

#[test]
fn instant_threshold() {
    check(vec![
        Case {
            name: "exactly 90 is not below 90; 89.9 is",
            condition: SPO2_BELOW_90,
            readings: series(Spo2, &[(0, 90.0), (60, 89.9)]),
            alerts: vec![60],
            resolved: vec![],
        },
        Case {
            name: "a continuing condition raises once and resolves once",
            condition: SPO2_BELOW_90,
            readings: series(Spo2, &[(0, 85.0), (60, 84.0), (120, 86.0), (180, 95.0)]),
            alerts: vec![0],
            resolved: vec![180],
        },
        Case {
            name: "a new episode after recovery raises again",
            condition: SPO2_BELOW_90,
            readings: series(Spo2, &[(0, 85.0), (60, 95.0), (120, 85.0)]),
            alerts: vec![0, 120],
            resolved: vec![60],
        },
        Case {
            name: "other metrics do not affect it",
            condition: SPO2_BELOW_90,
            readings: series(HR, &[(0, 10.0), (60, 300.0)]),
            alerts: vec![],
            resolved: vec![],
        },
        Case {
            name: "above: exactly the threshold is not above",
            condition: "{kind: threshold, metric: heart_rate, op: above, value: 100}",
            readings: series(HR, &[(0, 100.0), (60, 100.1)]),
            alerts: vec![60],
            resolved: vec![],
        },
    ]);
}

#[test]
fn consecutive_readings() {
    check(vec![
        Case {
            name: "three in a row raise once, at the third",
            condition: HR_3_OVER_100,
            readings: series(HR, &[(0, 101.0), (60, 120.0), (120, 130.0), (180, 140.0)]),
            alerts: vec![120],
            resolved: vec![],
        },
        Case {
            name: "exactly 100 never counts",
            condition: HR_3_OVER_100,
            readings: series(HR, &[(0, 100.0), (60, 100.0), (120, 100.0)]),
            alerts: vec![],
            resolved: vec![],
        },
        Case {
            name: "a broken run does not alert",
            condition: HR_3_OVER_100,
            readings: series(HR, &[(0, 101.0), (60, 102.0), (120, 99.0), (180, 103.0)]),
            alerts: vec![],
            resolved: vec![],
        },
        Case {
            name: "order is by reading time, not arrival",
            condition: HR_3_OVER_100,
            // Arrival order 120 s, 0 s, 60 s; in reading time the 99 breaks nothing.
            readings: series(HR, &[(120, 101.0), (0, 101.0), (60, 101.0), (30, 99.0)]),
            alerts: vec![],
            resolved: vec![],
        },
        Case {
            name: "a normal reading resolves; a new run raises a new alert",
            condition: HR_3_OVER_100,
            readings: series(
                HR,
                &[
                    (0, 101.0),
                    (60, 101.0),
                    (120, 101.0),
                    (180, 80.0),
                    (240, 110.0),
                    (300, 110.0),
                    (360, 110.0),
                ],
            ),
            alerts: vec![120, 360],
            resolved: vec![180],
        },
    ]);
}

#[test]
fn sliding_and_tumbling_windows() {
    let fever = "{kind: window, metric: temperature, window: sliding, seconds: 600, aggregate: avg, op: above, value: 38.5}";
    let hyper = "{kind: window, metric: temperature, window: tumbling, seconds: 600, aggregate: max, op: above, value: 40}";
    let few = "{kind: window, metric: heart_rate, window: sliding, seconds: 300, aggregate: count, op: below, value: 2}";
    check(vec![
        Case {
            name: "sliding mean over 38.5",
            condition: fever,
            readings: series(TEMP, &[(0, 38.0), (300, 39.0), (540, 39.5)]),
            // mean(38, 39) = 38.5 is not above; mean(38, 39, 39.5) = 38.83 is.
            alerts: vec![540],
            resolved: vec![],
        },
        Case {
            name: "a reading exactly W old has left the sliding window",
            condition: fever,
            readings: series(TEMP, &[(0, 41.0), (600, 37.0), (660, 37.0)]),
            // At 600 s the window is (0, 600]: only 37.
            alerts: vec![0],
            resolved: vec![600],
        },
        Case {
            name: "sliding count below 2 in 5 min",
            condition: few,
            readings: series(HR, &[(0, 70.0), (60, 70.0), (400, 70.0)]),
            alerts: vec![0, 400],
            resolved: vec![60],
        },
        Case {
            name: "tumbling max fires when the bucket closes, keyed on the bucket",
            condition: hyper,
            // Buckets of 10 min aligned on the epoch; t0 is 08:00, a bucket start.
            readings: series(TEMP, &[(0, 37.0), (300, 40.5), (599, 37.0), (600, 37.0)]),
            alerts: vec![600],
            resolved: vec![],
        },
        Case {
            name: "tumbling: 40 exactly is not above; the next bucket resolves",
            condition: hyper,
            readings: series(TEMP, &[(0, 40.0), (600, 41.0), (1200, 37.0), (1800, 37.0)]),
            alerts: vec![1200],
            resolved: vec![1800],
        },
    ]);
}

#[test]
fn rate_of_change() {
    let drop = "{kind: rate_of_change, metric: systolic_bp, direction: drop, amount: 30, withinSeconds: 300}";
    let rise = "{kind: rate_of_change, metric: heart_rate, direction: rise, amount: 40, withinSeconds: 120}";
    check(vec![
        Case {
            name: "a drop of 31 within 5 min",
            condition: drop,
            // At 300 s the drop from 130 is exactly 30: no longer more than 30.
            readings: series(SBP, &[(0, 130.0), (120, 115.0), (240, 99.0), (300, 100.0)]),
            alerts: vec![240],
            resolved: vec![300],
        },
        Case {
            name: "a drop of exactly 30 is not more than 30",
            condition: drop,
            readings: series(SBP, &[(0, 130.0), (240, 100.0)]),
            alerts: vec![],
            resolved: vec![],
        },
        Case {
            name: "the earlier reading must be within the span (300 s inclusive)",
            condition: drop,
            readings: series(SBP, &[(0, 140.0), (301, 100.0), (400, 120.0), (500, 85.0)]),
            alerts: vec![500],
            resolved: vec![],
        },
        Case {
            name: "a rise resolves when the rise is no longer there",
            condition: rise,
            readings: series(HR, &[(0, 70.0), (60, 115.0), (200, 116.0)]),
            alerts: vec![60],
            resolved: vec![200],
        },
    ]);
}

#[test]
fn missing_data() {
    let missing = "{kind: missing, metric: spo2, afterSeconds: 600}";
    let mut gap = series(Spo2, &[(0, 97.0)]);
    gap.extend(series(
        HR,
        &[(300, 70.0), (600, 70.0), (601, 70.0), (900, 70.0)],
    ));
    gap.extend(series(Spo2, &[(960, 97.0)]));
    let mut never = series(HR, &[(0, 70.0), (6000, 70.0)]);
    never.extend(series(TEMP, &[(9000, 37.0)]));
    check(vec![
        Case {
            name: "exactly 600 s is not missing; 601 s is; a reading resolves",
            condition: missing,
            readings: gap,
            alerts: vec![601],
            resolved: vec![960],
        },
        Case {
            name: "a metric never sent is not missing",
            condition: missing,
            readings: never,
            alerts: vec![],
            resolved: vec![],
        },
    ]);
}

#[test]
fn all_of_needs_every_condition() {
    let shock = "{kind: all_of, conditions: [{kind: threshold, metric: heart_rate, op: above, value: 120}, {kind: threshold, metric: systolic_bp, op: below, value: 90}]}";
    let mut both = series(HR, &[(0, 130.0), (120, 125.0)]);
    both.extend(series(SBP, &[(60, 85.0), (180, 95.0)]));
    let only_hr = series(HR, &[(0, 130.0), (60, 130.0)]);
    check(vec![
        Case {
            name: "raised when the second holds, resolved when one stops",
            condition: shock,
            readings: both,
            alerts: vec![60],
            resolved: vec![180],
        },
        Case {
            name: "one alone is not enough",
            condition: shock,
            readings: only_hr,
            alerts: vec![],
            resolved: vec![],
        },
    ]);
}

#[test]
fn alerts_carry_rule_severity_evidence_and_a_deterministic_id() {
    let set = one_rule(HR_3_OVER_100);
    let readings = series(HR, &[(0, 101.0), (60, 120.0), (120, 130.0)]);
    let mut a = PatientState::default();
    let mut b = PatientState::default();
    let first = set.apply(&mut a, "p-1", &inputs(&readings), late_now());
    let mut reversed = readings.clone();
    reversed.reverse();
    let second = set.apply(&mut b, "p-1", &inputs(&reversed), late_now());
    assert_eq!(first.alerts.len(), 1);
    let alert = &first.alerts[0];
    assert_eq!(alert.rule.severity, Severity::Warning);
    assert_eq!(alert.evidence.len(), 3);
    assert_eq!(alert.episode_start, at(0));
    assert_eq!(alert.trigger_event_id, readings[2].0);
    assert_eq!(alert.alert_id, second.alerts[0].alert_id);
    assert_eq!(
        alert.rule.describe(),
        "heart_rate above 100 bpm in 3 consecutive readings"
    );
}

// ------------------------------------------------------------------ lateness, ordering

#[test]
fn a_devices_reading_out_of_order_across_batches_is_backfilled() {
    let set = one_rule(HR_3_OVER_100);
    let all = series(HR, &[(0, 101.0), (20, 101.0), (40, 99.0), (60, 101.0)]);
    // Arrives as [0, 60] then [40, 20]: one device, so 0 and 60 are evaluated at once and
    // 40 and 20 come after the frontier passed them.
    let mut state = PatientState::default();
    let mut alerts = Vec::new();
    let mut late = 0;
    for batch in [
        vec![all[0].clone(), all[3].clone()],
        vec![all[2].clone(), all[1].clone()],
    ] {
        let out = set.apply(&mut state, "p-1", &inputs(&batch), early());
        late += out.late.len();
        alerts.extend(out.alerts);
    }
    alerts.extend(set.apply(&mut state, "p-1", &[], late_now()).alerts);
    assert_eq!(late, 2);
    assert!(alerts.is_empty(), "the 99 at 40 s breaks the run");
    assert_eq!(run(&set, &all).0, Vec::<i64>::new());
}

#[test]
fn a_second_device_holds_order_sensitive_rules_back_until_it_falls_silent() {
    let set = one_rule(HR_3_OVER_100);
    let mut state = PatientState::default();
    // Device b sent at 0 s; device a then sends three fast beats, later in reading time.
    let b = vec![reading_from("b", SBP, 120.0, 0)];
    set.apply(&mut state, "p-1", &inputs(&b), at(0));
    let a: Vec<_> = [5, 10, 15]
        .iter()
        .map(|s| reading_from("a", HR, 110.0, *s))
        .collect();
    let out = set.apply(&mut state, "p-1", &inputs(&a), at(16));
    // b might still send a reading from before 15 s: the run waits.
    assert!(out.alerts.is_empty());
    assert_eq!(out.pending, 3);
    // Once b has been silent for the allowed lateness, the clock moves the frontier.
    let out = set.apply(&mut state, "p-1", &[], at(76));
    assert_eq!(out.alerts.len(), 1);
    assert_eq!(out.alerts[0].detected_at, at(15));
    assert_eq!(out.pending, 0);
}

#[test]
fn one_device_in_its_own_order_is_evaluated_on_arrival() {
    let set = one_rule(HR_3_OVER_100);
    let mut state = PatientState::default();
    let mut raised = Vec::new();
    for s in [0, 5, 10] {
        let out = set.apply(&mut state, "p-1", &inputs(&[reading(HR, 112.0, s)]), at(s));
        raised.push(out.alerts.len());
    }
    assert_eq!(
        raised,
        [0, 0, 1],
        "the third reading fires it, in its own batch"
    );
}

#[test]
fn a_fast_device_clock_does_not_make_another_devices_readings_late() {
    let set = one_rule(HR_3_OVER_100);
    let mut state = PatientState::default();
    // Device a's clock is 4 minutes ahead: its reading says 240 s, it arrives at 0 s.
    let mut fast = reading_from("a", HR, 70.0, 240);
    let fast_inputs = vec![Input {
        event_id: &fast.0,
        correlation_id: "c",
        reading: &fast.1,
        received_at: Some(at(0)),
    }];
    set.apply(&mut state, "p-1", &fast_inputs, at(0));
    fast.0.clear();
    // Device b, correct clock, then sends three fast beats stamped now.
    let b: Vec<_> = [2, 4, 6]
        .iter()
        .map(|s| reading_from("b", HR, 112.0, *s))
        .collect();
    let mut alerts = Vec::new();
    for (i, r) in b.iter().enumerate() {
        let now = at(2 * (i as i64 + 1));
        let out = set.apply(&mut state, "p-1", &inputs(std::slice::from_ref(r)), now);
        assert!(out.late.is_empty(), "b's reading {i} is not late");
        alerts.extend(out.alerts);
    }
    // a's progress counts only up to its arrival (0 s): b's readings wait until a has
    // been silent for the allowed lateness, then fire.
    alerts.extend(set.apply(&mut state, "p-1", &[], at(61)).alerts);
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].episode_start, at(2));
}

#[test]
fn a_threshold_fires_on_arrival_while_its_reading_waits_for_order() {
    let set = one_rule(SPO2_BELOW_90);
    let mut state = PatientState::default();
    // A second device holds the order back; the threshold does not wait for it.
    set.apply(
        &mut state,
        "p-1",
        &inputs(&[reading_from("b", HR, 70.0, 0)]),
        at(0),
    );
    let low = vec![reading_from("a", Spo2, 85.0, 10)];
    let out = set.apply(&mut state, "p-1", &inputs(&low), at(10));
    assert_eq!(out.alerts.len(), 1);
    assert_eq!(out.pending, 1);
    assert_eq!(out.alerts[0].detected_at, at(10));
    // The in-order evaluation later finds it raised, and a normal reading resolves it.
    let out = set.apply(
        &mut state,
        "p-1",
        &inputs(&[reading_from("a", Spo2, 97.0, 80)]),
        at(80),
    );
    assert!(out.alerts.is_empty());
    assert_eq!(out.resolutions.len(), 1);
    assert_eq!(
        out.resolutions[0].alert_id,
        alert_id("p-1", "r", at(10).timestamp_millis())
    );
}

#[test]
fn a_single_spot_check_fires_on_arrival() {
    let set = one_rule(SPO2_BELOW_90);
    let mut state = PatientState::default();
    let out = set.apply(
        &mut state,
        "p-1",
        &inputs(&series(Spo2, &[(0, 85.0)])),
        at(1),
    );
    assert_eq!(out.alerts.len(), 1);
    assert_eq!(out.alerts[0].late_by_seconds, None);
    // Taken an hour before it arrives (a phone uploading a visit): raised, marked late.
    let mut old = PatientState::default();
    let out = set.apply(
        &mut old,
        "p-1",
        &inputs(&series(Spo2, &[(0, 85.0)])),
        at(3600),
    );
    assert_eq!(out.alerts[0].late_by_seconds, Some(3600.0));
}

#[test]
fn a_reading_beyond_the_allowed_lateness_is_late_and_still_evaluated() {
    let set = one_rule(SPO2_BELOW_90);
    let mut state = PatientState::default();
    set.apply(
        &mut state,
        "p-1",
        &inputs(&series(Spo2, &[(0, 97.0), (200, 97.0)])),
        early(),
    );
    // One device in its own order: the frontier is at its newest reading, 200 s.
    let old = series(Spo2, &[(140, 80.0), (141, 97.0)]);
    let out = set.apply(&mut state, "p-1", &inputs(&old), early());
    assert_eq!(out.late.len(), 2);
    assert_eq!(out.late[0].event_id, old[0].0);
    assert_eq!(out.late[0].frontier, at(200));
    assert_eq!(out.alerts.len(), 1);
    assert_eq!(out.alerts[0].detected_at, at(140));
    assert!(out.changed);
}

#[test]
fn late_readings_that_split_a_run_raise_the_second_half_and_extending_raises_nothing() {
    let set = one_rule(SPO2_BELOW_90);
    let mut state = PatientState::default();
    let out = set.apply(
        &mut state,
        "p-1",
        &inputs(&series(Spo2, &[(0, 85.0), (120, 85.0)])),
        at(121),
    );
    assert_eq!(out.alerts.len(), 1, "one run, one alert");
    // A normal reading at 60 s, late: 0 and 120 are now two episodes.
    let out = set.apply(
        &mut state,
        "p-1",
        &inputs(&series(Spo2, &[(60, 97.0)])),
        at(130),
    );
    assert_eq!(out.alerts.len(), 1);
    assert_eq!(out.alerts[0].episode_start, at(120));
    // A low reading at -30 s extends the first run backwards: nothing new.
    let out = set.apply(
        &mut state,
        "p-1",
        &inputs(&series(Spo2, &[(-30, 86.0)])),
        at(131),
    );
    assert!(out.alerts.is_empty());
}

#[test]
fn a_late_upload_completes_an_order_sensitive_condition_and_raises_a_late_alert() {
    let set = one_rule(HR_3_OVER_100);
    let mut state = PatientState::default();
    // The wearable sends current, normal readings.
    let now_s = 7200;
    let current: Vec<_> = (0..5)
        .map(|i| reading_from("wearable", HR, 75.0, now_s - 50 + i * 10))
        .collect();
    set.apply(&mut state, "p-1", &inputs(&current), at(now_s));
    // The worker's phone uploads a visit of two hours ago: three fast beats in a row.
    let visit: Vec<_> = [0, 60, 120]
        .iter()
        .map(|s| reading_from("phone", HR, 115.0, *s))
        .collect();
    let out = set.apply(&mut state, "p-1", &inputs(&visit), at(now_s + 5));
    assert_eq!(out.late.len(), 3);
    assert_eq!(out.alerts.len(), 1);
    let alert = &out.alerts[0];
    assert_eq!(alert.episode_start, at(0));
    assert_eq!(alert.detected_at, at(120));
    assert_eq!(alert.late_by_seconds, Some((now_s + 5 - 120) as f64));
    // Uploaded again (the phone retried): nothing new.
    let again = set.apply(&mut state, "p-1", &inputs(&visit), at(now_s + 9));
    assert!(again.alerts.is_empty());
    assert_eq!(again.duplicates.len(), 3);
}

#[test]
fn missing_fires_by_the_clock_only_for_continuous_devices() {
    let set =
        one_rule("{kind: missing, metric: spo2, afterSeconds: 600, devices: [\"wearable-*\"]}");
    // A kiosk spot check, then silence: never missing.
    let mut kiosk = PatientState::default();
    set.apply(
        &mut kiosk,
        "p-1",
        &inputs(&[reading_from("kiosk-1", Spo2, 97.0, 0)]),
        at(1),
    );
    assert_eq!(set.due_at(&kiosk), None);
    assert!(
        set.apply(&mut kiosk, "p-1", &[], at(5000))
            .alerts
            .is_empty()
    );
    // A wearable that stops: due by the clock, and fires when the sweep comes.
    let mut worn = PatientState::default();
    set.apply(
        &mut worn,
        "p-1",
        &inputs(&[reading_from("wearable-7", Spo2, 97.0, 0)]),
        at(1),
    );
    let due = set.due_at(&worn).expect("a continuous device's gap is due");
    assert_eq!(
        due,
        720_000 + t0().timestamp_millis(),
        "600 s + 60 s lateness, to the minute"
    );
    assert!(set.apply(&mut worn, "p-1", &[], at(600)).alerts.is_empty());
    let out = set.apply(&mut worn, "p-1", &[], time_of(due));
    assert_eq!(out.alerts.len(), 1);
    assert_eq!(out.alerts[0].episode_start, at(0));
    // The same id as the in-order evaluation gives when other readings show the gap.
    let mut shown = PatientState::default();
    let mut readings = vec![reading_from("wearable-7", Spo2, 97.0, 0)];
    readings.push(reading_from("wearable-7", HR, 70.0, 700));
    let in_order = set.apply(&mut shown, "p-1", &inputs(&readings), at(701));
    assert_eq!(in_order.alerts[0].alert_id, out.alerts[0].alert_id);
    assert_eq!(
        set.due_at(&worn),
        None,
        "nothing due while the alert is open"
    );
}

#[test]
fn redelivery_is_a_duplicate_and_changes_nothing() {
    let set = one_rule(HR_3_OVER_100);
    let readings = series(HR, &[(0, 101.0), (60, 101.0), (120, 101.0)]);
    let mut state = PatientState::default();
    let first = set.apply(&mut state, "p-1", &inputs(&readings), late_now());
    let saved = state.clone();
    let again = set.apply(&mut state, "p-1", &inputs(&readings), late_now());
    assert_eq!(first.alerts.len(), 1);
    assert!(again.alerts.is_empty() && again.late.is_empty());
    assert_eq!(again.duplicates.len(), 3);
    assert!(!again.changed);
    assert_eq!(state, saved);
}

#[test]
fn pending_duplicates_are_recognised_too() {
    let set = one_rule(HR_3_OVER_100);
    let readings = series(HR, &[(0, 101.0)]);
    let mut state = PatientState::default();
    set.apply(&mut state, "p-1", &inputs(&readings), early());
    let again = set.apply(&mut state, "p-1", &inputs(&readings), early());
    assert_eq!(again.duplicates.len(), 1);
    assert!(!again.changed);
}

#[test]
fn states_of_removed_rules_are_kept_and_new_rules_start_fresh() {
    let hr = format!(
        "  - id: m-hr\n    alertType: t\n    severity: warning\n    condition: {HR_3_OVER_100}\n"
    );
    let spo2 = |id: &str| {
        format!(
            "  - id: {id}\n    alertType: t\n    severity: warning\n    condition: {SPO2_BELOW_90}\n"
        )
    };
    let mut readings = series(HR, &[(0, 101.0), (60, 101.0)]);
    readings.extend(series(Spo2, &[(0, 85.0)]));
    let mut state = PatientState::default();
    // Before: rules `a-old` and `m-hr`, whose ids sort around the new ones.
    let before = rules(&format!("{}{hr}", spo2("a-old")));
    let out = before.apply(&mut state, "p-1", &inputs(&readings), late_now());
    assert_eq!(out.alerts.len(), 1);
    let old_state = state.rule_states["a-old"].clone();
    assert!(state.raised.iter().any(|a| a.rule == "a-old" && a.open));

    // After: `a-old` is gone, `m-hr` stays, `b-new` and `z-new` are new.
    let after = rules(&format!("{}{hr}{}", spo2("z-new"), spo2("b-new")));
    let later = series(HR, &[(120, 101.0)]);
    let mut more = later.clone();
    more.extend(series(Spo2, &[(120, 80.0)]));
    let out = after.apply(&mut state, "p-1", &inputs(&more), late_now());
    let ids: Vec<&str> = out.alerts.iter().map(|a| a.rule.id.as_str()).collect();
    // `m-hr` completes its run of 3 across the change; both new rules see the low SpO2
    // (evaluated first: same time, and its id sorts first).
    assert_eq!(ids, ["z-new", "b-new", "m-hr"]);
    assert_eq!(state.rule_states["a-old"], old_state);
    let keys: Vec<&str> = state.rule_states.keys().map(String::as_str).collect();
    assert_eq!(keys, ["a-old", "b-new", "m-hr", "z-new"]);
}

#[test]
fn recent_ids_are_stored_as_a_plain_list_and_found_exactly() {
    let ids = [
        "",
        "a",
        "a\0",
        "abcdefgh",
        "abcdefghX",
        "abcdefghY",
        "abcdefg",
        "0a1b2c3d-e5f6",
        "é",
        "\0",
    ];
    let recent: RecentIds = ids.iter().copied().collect();
    assert_eq!(
        serde_json::to_value(&recent).unwrap(),
        serde_json::to_value(ids.iter().collect::<std::collections::VecDeque<_>>()).unwrap()
    );
    let back: RecentIds = serde_json::from_str(&serde_json::to_string(&recent).unwrap()).unwrap();
    assert_eq!(back, recent);
    for probe in ids
        .iter()
        .copied()
        .chain(["b", "abcdefghZ", "abcdefgh ", "a\0\0", "\0\0"])
    {
        assert_eq!(recent.contains(probe), ids.contains(&probe), "{probe:?}");
    }
    let mut recent = recent;
    assert_eq!(recent.pop_front().as_deref(), Some(""));
    assert!(!recent.contains(""));
    recent.push_back("new".into());
    assert!(recent.contains("new"));
    assert_eq!(recent.len(), ids.len());
    assert_eq!(recent.iter().last(), Some("new"));
}

#[test]
fn state_survives_a_json_round_trip() {
    let set = rules(include_str!("test_rules.yaml"));
    let mut readings = series(HR, &[(0, 101.0), (60, 120.0), (120, 130.0)]);
    readings.extend(series(TEMP, &[(0, 39.0), (60, 39.5)]));
    let mut state = PatientState::default();
    set.apply(&mut state, "p-1", &inputs(&readings), early());
    let text = serde_json::to_string(&state).unwrap();
    let back: PatientState = serde_json::from_str(&text).unwrap();
    assert_eq!(back, state);
}

// ------------------------------------------------------------------ config validation

#[test]
fn config_errors_are_clear() {
    let cases: Vec<(&str, &str, &str)> = vec![
        (
            "unknown metric",
            "version: 1\nrules:\n  - {id: a, alertType: t, severity: info, condition: {kind: threshold, metric: glucose, op: above, value: 1}}\n",
            "unknown variant `glucose`",
        ),
        (
            "unknown rule kind",
            "version: 1\nrules:\n  - {id: a, alertType: t, severity: info, condition: {kind: median, metric: spo2}}\n",
            "unknown variant `median`",
        ),
        (
            "NaN threshold",
            "version: 1\nrules:\n  - {id: a, alertType: t, severity: info, condition: {kind: threshold, metric: spo2, op: below, value: .nan}}\n",
            "rule `a`: value must be a finite number (got NaN)",
        ),
        (
            "bad window",
            "version: 1\nrules:\n  - {id: w, alertType: t, severity: info, condition: {kind: window, metric: temperature, window: sliding, seconds: 0, aggregate: avg, op: above, value: 38}}\n",
            "rule `w`: window seconds must be between 1 and 86400 (got 0)",
        ),
        (
            "unknown window kind",
            "version: 1\nrules:\n  - {id: w, alertType: t, severity: info, condition: {kind: window, metric: temperature, window: hopping, seconds: 60, aggregate: avg, op: above, value: 38}}\n",
            "unknown variant `hopping`",
        ),
        (
            "zero count",
            "version: 1\nrules:\n  - {id: c, alertType: t, severity: info, condition: {kind: consecutive, metric: spo2, op: below, value: 90, count: 0}}\n",
            "rule `c`: count must be between 1 and 1000 (got 0)",
        ),
        (
            "duplicate id",
            "version: 1\nrules:\n  - {id: a, alertType: t, severity: info, condition: {kind: threshold, metric: spo2, op: below, value: 90}}\n  - {id: a, alertType: t, severity: info, condition: {kind: threshold, metric: spo2, op: below, value: 80}}\n",
            "rule `a`: id is used by another rule",
        ),
        (
            "future version",
            "version: 2\nrules:\n  - {id: a, alertType: t, severity: info, condition: {kind: threshold, metric: spo2, op: below, value: 90}}\n",
            "version 2 is not supported",
        ),
        (
            "lateness too large",
            "version: 1\nallowedLatenessSeconds: 999999\nrules:\n  - {id: a, alertType: t, severity: info, condition: {kind: threshold, metric: spo2, op: below, value: 90}}\n",
            "allowedLatenessSeconds must be between 10 and 3600 (got 999999)",
        ),
        (
            "unknown field",
            "version: 1\nrules:\n  - {id: a, alertType: t, severity: info, treshold: 3, condition: {kind: threshold, metric: spo2, op: below, value: 90}}\n",
            "unknown field `treshold`",
        ),
        (
            "unknown severity",
            "version: 1\nrules:\n  - {id: a, alertType: t, severity: urgent, condition: {kind: threshold, metric: spo2, op: below, value: 90}}\n",
            "unknown variant `urgent`",
        ),
        (
            "nested all_of",
            "version: 1\nrules:\n  - {id: n, alertType: t, severity: info, condition: {kind: all_of, conditions: [{kind: all_of, conditions: []}, {kind: missing, metric: spo2, afterSeconds: 60}]}}\n",
            "rule `n`: all_of may not contain another all_of",
        ),
    ];
    for (name, text, expected) in cases {
        let err = RuleSet::from_yaml(text).expect_err(name).to_string();
        assert!(err.contains(expected), "{name}: {err}");
    }
}

#[test]
fn every_problem_is_listed_at_once() {
    let text = "version: 1\nrules:\n  - {id: a, alertType: '', severity: info, condition: {kind: threshold, metric: spo2, op: below, value: .inf}}\n  - {id: b, alertType: t, severity: info, condition: {kind: missing, metric: spo2, afterSeconds: 0}}\n";
    let Err(ConfigError::Invalid(problems)) = RuleSet::from_yaml(text) else {
        panic!("expected Invalid")
    };
    assert_eq!(problems.len(), 3, "{problems:?}");
}

#[test]
fn lateness_defaults_to_60_seconds() {
    let set = RuleSet::from_yaml(
        "version: 1\nrules:\n  - {id: a, alertType: t, severity: info, condition: {kind: threshold, metric: spo2, op: below, value: 90}}\n",
    )
    .unwrap();
    assert_eq!(set.allowed_lateness(), Duration::seconds(60));
}
