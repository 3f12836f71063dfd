//! Table-driven tests of every rule kind, boundaries, ordering, lateness and episodes.

use chrono::{DateTime, Duration, Utc};

use super::*;
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
        })
        .collect()
}

/// Applies the readings in one batch, then flushes: (alert times, resolution times) in s.
fn run(set: &RuleSet, readings: &[(String, Reading)]) -> (Vec<i64>, Vec<i64>) {
    let mut state = PatientState::default();
    let mut out = set.apply(&mut state, "p-1", &inputs(readings), early());
    let flush = set.apply(&mut state, "p-1", &[], late_now());
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
fn out_of_order_within_lateness_across_batches_gives_the_in_order_alerts() {
    let set = one_rule(HR_3_OVER_100);
    let all = series(HR, &[(0, 101.0), (20, 101.0), (40, 99.0), (60, 101.0)]);
    // Arrives as [0, 60] then [40, 20]: 40 and 20 are within 60 s of the newest (60).
    let mut state = PatientState::default();
    let mut alerts = Vec::new();
    for batch in [
        vec![all[0].clone(), all[3].clone()],
        vec![all[2].clone(), all[1].clone()],
    ] {
        let out = set.apply(&mut state, "p-1", &inputs(&batch), early());
        assert!(out.late.is_empty());
        alerts.extend(out.alerts);
    }
    alerts.extend(set.apply(&mut state, "p-1", &[], late_now()).alerts);
    assert!(alerts.is_empty(), "the 99 at 40 s breaks the run");
    assert_eq!(run(&set, &all).0, Vec::<i64>::new());
}

#[test]
fn readings_wait_until_the_watermark_passes_them_by_the_allowed_lateness() {
    let set = one_rule(SPO2_BELOW_90);
    let mut state = PatientState::default();
    let low = series(Spo2, &[(0, 85.0)]);
    let out = set.apply(&mut state, "p-1", &inputs(&low), early());
    assert!(out.alerts.is_empty());
    assert_eq!(out.pending, 1);
    // 60 s later in reading time: 0 <= 60 - 60, so it is final now.
    let next = series(Spo2, &[(60, 95.0)]);
    let out = set.apply(&mut state, "p-1", &inputs(&next), early());
    assert_eq!(out.alerts.len(), 1);
    assert_eq!(out.pending, 1);
}

#[test]
fn processing_time_flushes_a_quiet_patients_last_readings() {
    let set = one_rule(SPO2_BELOW_90);
    let mut state = PatientState::default();
    let low = series(Spo2, &[(0, 85.0)]);
    // Arrives 61 s after it was taken: nothing newer will come, it is evaluated at once.
    let out = set.apply(&mut state, "p-1", &inputs(&low), at(61));
    assert_eq!(out.alerts.len(), 1);
    assert_eq!(out.pending, 0);
    // Arriving 30 s after it was taken, it waits.
    let mut fresh = PatientState::default();
    let out = set.apply(&mut fresh, "p-1", &inputs(&low), at(30));
    assert_eq!((out.alerts.len(), out.pending), (0, 1));
}

#[test]
fn a_reading_beyond_the_allowed_lateness_is_late_and_not_evaluated() {
    let set = one_rule(SPO2_BELOW_90);
    let mut state = PatientState::default();
    set.apply(
        &mut state,
        "p-1",
        &inputs(&series(Spo2, &[(0, 97.0), (200, 97.0)])),
        early(),
    );
    // Frontier is 200 - 60 = 140: 140 is late, 141 is not.
    let old = series(Spo2, &[(140, 80.0), (141, 97.0)]);
    let out = set.apply(&mut state, "p-1", &inputs(&old), early());
    assert_eq!(out.late.len(), 1);
    assert_eq!(out.late[0].event_id, old[0].0);
    assert_eq!(out.late[0].frontier, at(140));
    assert!(out.alerts.is_empty());
    assert!(out.changed);
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
    assert!(old_state.episode.is_some());

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
    // The same DynamoDB attribute too (a list of strings).
    let dynamo: serde_dynamo::AttributeValue = serde_dynamo::to_attribute_value(&recent).unwrap();
    let plain: serde_dynamo::AttributeValue =
        serde_dynamo::to_attribute_value(ids.iter().collect::<std::collections::VecDeque<_>>())
            .unwrap();
    assert_eq!(dynamo, plain);
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
            "allowedLatenessSeconds 999999 is over the maximum 3600",
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
