//! Properties of the detection engine against a simple reference that evaluates each
//! patient's readings sorted by reading time (the default rules). docs/detection.md says
//! which rule kinds each property covers:
//!
//! 1. **Evaluated on arrival** (`threshold`, `all_of` of thresholds): readings from several
//!    devices with clock offsets within ingest's limits, arriving in *any* order, cut into
//!    any batches, with redeliveries. A threshold rule raises exactly one alert per episode
//!    of the sorted readings; an `all_of` misses none (it is exact when its readings arrive
//!    in reading-time order, see property 2).
//! 2. **Backfilled and evaluated in order** (`consecutive`, sliding `window`,
//!    `rate_of_change`, and every kind of 1): a wearable sends live, in its own order; a
//!    health worker's phone uploads an earlier visit (ending with normal readings) in one
//!    request, at any point of the wearable's stream, the batches cutting it anywhere;
//!    clocks offset within ingest's limits; redeliveries. The alerts are exactly the sorted reference's:
//!    the same episodes, with the same ids.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use domain::detection::{Input, Outcome, PatientState, RuleSet, alert_id};
use domain::reading::{Reading, VitalType};
use proptest::prelude::*;

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

fn normal(vital: VitalType) -> f64 {
    match vital {
        VitalType::HeartRate => 70.0,
        VitalType::Spo2 => 97.0,
        VitalType::Temperature => 36.8,
        VitalType::SystolicBp => 120.0,
        VitalType::DiastolicBp => 80.0,
    }
}

#[derive(Debug, Clone)]
struct Arrival {
    event_id: String,
    reading: Reading,
    /// Processing time at which it arrives.
    arrives: DateTime<Utc>,
}

fn arrival(
    device: &str,
    vital: VitalType,
    value: f64,
    stamp: DateTime<Utc>,
    arrives: DateTime<Utc>,
) -> Arrival {
    let reading = Reading {
        patient_id: "p-1".into(),
        vital,
        value,
        unit: vital.unit().into(),
        timestamp: stamp,
        device_id: device.into(),
    };
    Arrival {
        event_id: reading.event_id(),
        reading,
        arrives,
    }
}

/// Applies the batches in order, each at the arrival time of its last reading, then the
/// clock a day later (the sweep). Returns every outcome.
fn apply_batches(rules: &RuleSet, batches: &[Vec<&Arrival>]) -> Vec<Outcome> {
    let mut state = PatientState::default();
    let mut outcomes = Vec::new();
    let mut last = t0();
    for batch in batches {
        let inputs: Vec<Input<'_>> = batch
            .iter()
            .map(|a| Input {
                event_id: &a.event_id,
                correlation_id: "c",
                reading: &a.reading,
                received_at: Some(a.arrives),
            })
            .collect();
        let now = batch
            .iter()
            .map(|a| a.arrives)
            .max()
            .unwrap_or(last)
            .max(last);
        last = now;
        outcomes.push(rules.apply(&mut state, "p-1", &inputs, now));
    }
    outcomes.push(rules.apply(&mut state, "p-1", &[], last + Duration::days(1)));
    outcomes
}

/// Cuts `arrivals` (inserting redelivered copies) into batches.
fn cut<'a>(
    arrivals: &[&'a Arrival],
    cuts: &[usize],
    redelivered: &[(usize, usize)],
) -> Vec<Vec<&'a Arrival>> {
    let mut all: Vec<&Arrival> = arrivals.to_vec();
    for (which, offset) in redelivered {
        let copy = arrivals[which % arrivals.len()];
        let first = all
            .iter()
            .position(|a| a.event_id == copy.event_id)
            .unwrap_or(0)
            + 1;
        let at = (first + offset).min(all.len());
        // A redelivery arrives with the batch it lands in.
        all.insert(at, copy);
    }
    let mut batches = Vec::new();
    let mut rest = all.as_slice();
    for c in cuts.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (batch, tail) = rest.split_at((*c).min(rest.len()));
        batches.push(batch.to_vec());
        rest = tail;
    }
    batches
}

// ------------------------------------------------------------------------ the reference

/// A point of the sorted readings: (reading time ms, event id, value).
type Point = (i64, String, f64);

fn sorted_points(readings: &[&Reading], vital: VitalType) -> Vec<Point> {
    let mut points: Vec<Point> = readings
        .iter()
        .filter(|r| r.vital == vital)
        .map(|r| (r.timestamp.timestamp_millis(), r.event_id(), r.value))
        .collect();
    points.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    points
}

/// Episodes (first, last point time) of a per-point condition: maximal runs of points at
/// which it holds, each starting where `start` says.
fn runs(holds: &[(i64, bool, i64)]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut open: Option<(i64, i64)> = None;
    for &(at, h, start) in holds {
        match (&mut open, h) {
            (None, true) => open = Some((start, at)),
            (Some(run), true) => run.1 = at,
            (Some(_), false) => out.extend(open.take()),
            (None, false) => {}
        }
    }
    out.extend(open);
    out
}

/// The reference's episodes per rule id, from the readings sorted by (time, id):
/// (episode start, last holding point).
fn reference(readings: &[&Reading]) -> BTreeMap<&'static str, Vec<(i64, i64)>> {
    let mut out = BTreeMap::new();
    let spo2 = sorted_points(readings, VitalType::Spo2);
    out.insert(
        "spo2-low",
        runs(
            &spo2
                .iter()
                .map(|p| (p.0, p.2 < 90.0, p.0))
                .collect::<Vec<_>>(),
        ),
    );

    let hr = sorted_points(readings, VitalType::HeartRate);
    let mut run_start = None;
    let mut run_len = 0;
    let mut consecutive = Vec::new();
    for p in &hr {
        if p.2 > 100.0 {
            run_len += 1;
            let start = *run_start.get_or_insert(p.0);
            consecutive.push((p.0, run_len >= 3, start));
        } else {
            run_len = 0;
            run_start = None;
            consecutive.push((p.0, false, p.0));
        }
    }
    out.insert("hr-high-3", runs(&consecutive));

    let temp = sorted_points(readings, VitalType::Temperature);
    let fever: Vec<_> = temp
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let window: Vec<f64> = temp[..=i]
                .iter()
                .filter(|q| q.0 > p.0 - 600_000)
                .map(|q| q.2)
                .collect();
            let mean = window.iter().sum::<f64>() / window.len() as f64;
            (p.0, mean > 38.5, p.0)
        })
        .collect();
    out.insert("fever-10min", runs(&fever));

    let sbp = sorted_points(readings, VitalType::SystolicBp);
    let drop: Vec<_> = sbp
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let earlier_max = sbp[..i]
                .iter()
                .filter(|q| q.0 >= p.0 - 300_000)
                .map(|q| q.2)
                .fold(f64::NEG_INFINITY, f64::max);
            (p.0, earlier_max - p.2 > 30.0, p.0)
        })
        .collect();
    out.insert("systolic-drop", runs(&drop));

    // all_of: at every HR or SBP reading, the latest of each within 300 s.
    let mut both: Vec<(i64, String, VitalType, f64)> = readings
        .iter()
        .filter(|r| matches!(r.vital, VitalType::HeartRate | VitalType::SystolicBp))
        .map(|r| {
            (
                r.timestamp.timestamp_millis(),
                r.event_id(),
                r.vital,
                r.value,
            )
        })
        .collect();
    both.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let mut last_hr: Option<(i64, f64)> = None;
    let mut last_sbp: Option<(i64, f64)> = None;
    let shock: Vec<_> = both
        .iter()
        .map(|(at, _, vital, value)| {
            match vital {
                VitalType::HeartRate => last_hr = Some((*at, *value)),
                _ => last_sbp = Some((*at, *value)),
            }
            let fresh = |x: Option<(i64, f64)>, ok: fn(f64) -> bool| {
                x.is_some_and(|(t, v)| at - t <= 300_000 && ok(v))
            };
            let h = fresh(last_hr, |v| v > 120.0) && fresh(last_sbp, |v| v < 90.0);
            (*at, h, *at)
        })
        .collect();
    out.insert("shock-index", runs(&shock));
    out
}

/// The alerts of the outcomes per rule id: (episode start ms, alert id).
fn raised(outcomes: &[Outcome]) -> BTreeMap<String, Vec<(i64, String)>> {
    let mut out: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
    for alert in outcomes.iter().flat_map(|o| &o.alerts) {
        out.entry(alert.rule.id.clone()).or_default().push((
            alert.episode_start.timestamp_millis(),
            alert.alert_id.clone(),
        ));
    }
    for alerts in out.values_mut() {
        alerts.sort();
    }
    out
}

/// Which reference episode each alert start falls in (`None`: in none).
fn episode_of(episodes: &[(i64, i64)], start: i64) -> Option<usize> {
    episodes
        .iter()
        .position(|(first, last)| *first <= start && start <= *last)
}

// ------------------------------------------------------------------------ property 1

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn on_arrival_rules_in_any_arrival_order(
        // (gap to the previous reading in s, device, vital index, value pick)
        steps in prop::collection::vec((1i64..200, 0usize..3, 0usize..4, 0usize..4), 1..30),
        // clock offset of each device in s (ingest accepts up to 5 minutes ahead)
        offsets in prop::collection::vec(-240i64..240, 3),
        // processing time of each reading: any order, up to 3 hours after it was taken
        delays in prop::collection::vec(0i64..10_800, 30),
        cuts in prop::collection::vec(1usize..8, 1..30),
        redelivered in prop::collection::vec((0usize..30, 0usize..30), 0..8),
    ) {
        let rules = detect::default_rules().unwrap();
        let mut second = 0;
        let readings: Vec<Arrival> = steps
            .iter()
            .enumerate()
            .map(|(i, (gap, device, vital, pick))| {
                second += gap;
                // Vitals on-arrival rules use, and a normal value now and then.
                let vital = [VitalType::Spo2, VitalType::HeartRate, VitalType::SystolicBp, VitalType::Spo2][*vital];
                let truth = t0() + Duration::seconds(second);
                let stamp = truth + Duration::seconds(offsets[*device]) + Duration::milliseconds(*device as i64);
                arrival(&format!("dev-{device}"), vital, value_for(vital, *pick), stamp, truth + Duration::seconds(delays[i % delays.len()]))
            })
            .collect();
        let mut arrivals: Vec<&Arrival> = readings.iter().collect();
        arrivals.sort_by_key(|a| (a.arrives, a.event_id.clone()));
        let outcomes = apply_batches(&rules, &cut(&arrivals, &cuts, &redelivered));

        let all: Vec<&Reading> = readings.iter().map(|a| &a.reading).collect();
        let expected = reference(&all);
        let actual = raised(&outcomes);

        // Threshold: exactly one alert per episode of the sorted readings.
        let episodes = &expected["spo2-low"];
        let alerts = actual.get("spo2-low").cloned().unwrap_or_default();
        let mut hits = vec![0; episodes.len()];
        for (start, id) in &alerts {
            let e = episode_of(episodes, *start);
            prop_assert!(e.is_some(), "alert {id} at {start} is in no episode {episodes:?}");
            hits[e.unwrap_or_default()] += 1;
        }
        prop_assert!(hits.iter().all(|h| *h == 1), "alerts per episode {hits:?}: {alerts:?} vs {episodes:?}");
        // all_of of thresholds: no episode without an alert.
        let episodes = &expected["shock-index"];
        let alerts = actual.get("shock-index").cloned().unwrap_or_default();
        for episode in episodes {
            prop_assert!(
                alerts.iter().any(|(start, _)| episode.0 <= *start && *start <= episode.1),
                "shock-index episode {episode:?} has no alert: {alerts:?}"
            );
        }
    }
}

type Step = (i64, usize, usize);

/// Property 2's scenario: the readings of both devices, and the outcomes of the batches.
#[allow(clippy::type_complexity)]
fn live_and_visit(
    live: &[Step],
    visit: &[Step],
    offsets: (i64, i64),
    upload_after: i64,
    chunks: &[usize],
    cuts: &[usize],
    redelivered: &[(usize, usize)],
) -> (Vec<Reading>, Vec<Vec<Arrival>>, Vec<Outcome>) {
    let rules = detect::default_rules().unwrap();
    let vitals = [
        VitalType::HeartRate,
        VitalType::Spo2,
        VitalType::Temperature,
        VitalType::SystolicBp,
    ];

    // The visit: its readings, then a normal reading of each vital (the worker's last
    // check before leaving), 30 minutes or more before the wearable starts.
    let mut truth = t0();
    let mut phone: Vec<Arrival> = Vec::new();
    let add = |list: &mut Vec<Arrival>,
               device: &str,
               offset: i64,
               vital: VitalType,
               value: f64,
               at: DateTime<Utc>| {
        list.push(arrival(
            device,
            vital,
            value,
            at + Duration::seconds(offset),
            at,
        ));
    };
    for (gap, vital, pick) in visit {
        truth += Duration::seconds(*gap);
        let vital = vitals[*vital];
        add(
            &mut phone,
            "phone-1",
            offsets.1,
            vital,
            value_for(vital, *pick),
            truth,
        );
    }
    // The last check, 11 minutes on: no window of the visit reaches past it.
    truth += Duration::minutes(11);
    for vital in vitals {
        truth += Duration::seconds(5);
        add(
            &mut phone,
            "phone-1",
            offsets.1,
            vital,
            normal(vital),
            truth,
        );
    }
    let visit_end = truth;
    truth += Duration::minutes(30) + Duration::seconds(offsets.1.abs() + offsets.0.abs());
    let mut wearable: Vec<Arrival> = Vec::new();
    for (gap, vital, pick) in live {
        truth += Duration::seconds(*gap);
        let vital = vitals[*vital];
        add(
            &mut wearable,
            "wearable-1",
            offsets.0,
            vital,
            value_for(vital, *pick),
            truth,
        );
    }
    // The phone uploads in its own order, in chunks, between the wearable's readings.
    let upload_at = visit_end + Duration::minutes(upload_after);
    // One request: the whole visit arrives at once, after wearable reading `position` (the
    // batches may still cut it anywhere, with wearable readings on either side).
    let position = chunks.first().copied().unwrap_or_default() % (wearable.len() + 1);
    let when = wearable
        .get(position.wrapping_sub(1))
        .map_or(upload_at, |w| w.arrives.max(upload_at));
    let uploads: Vec<Arrival> = phone
        .iter()
        .map(|a| Arrival {
            arrives: when,
            ..a.clone()
        })
        .collect();
    let mut order: Vec<&Arrival> = wearable[..position].iter().collect();
    order.extend(&uploads);
    order.extend(&wearable[position..]);
    // Processing time never goes backwards.
    let mut clock = t0();
    let order: Vec<Arrival> = order
        .into_iter()
        .map(|a| {
            clock = clock.max(a.arrives);
            Arrival {
                arrives: clock,
                ..a.clone()
            }
        })
        .collect();
    let order_refs: Vec<&Arrival> = order.iter().collect();
    let outcomes = apply_batches(&rules, &cut(&order_refs, cuts, redelivered));

    let readings = phone
        .iter()
        .chain(&wearable)
        .map(|a| a.reading.clone())
        .collect();
    let batches = cut(&order_refs, cuts, redelivered);
    let owned = batches
        .iter()
        .map(|b| b.iter().map(|a| (*a).clone()).collect())
        .collect();
    (readings, owned, outcomes)
}

// ------------------------------------------------------------------------ property 2

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn live_wearable_and_a_late_visit_upload_give_the_sorted_alerts(
        // the wearable: (gap in s, vital index, value pick)
        live in prop::collection::vec((5i64..120, 0usize..4, 0usize..4), 1..24),
        // the visit: (gap in s, vital index, value pick)
        visit in prop::collection::vec((5i64..120, 0usize..4, 0usize..4), 0..12),
        // clock offsets of the wearable and the phone in s
        offsets in (-240i64..240, -240i64..240),
        // how long after the visit ended it is uploaded, in minutes (0: never late)
        upload_after in 0i64..180,
        // after which wearable reading the visit is uploaded
        chunks in prop::collection::vec(0usize..24, 1..2),
        cuts in prop::collection::vec(1usize..6, 1..30),
        redelivered in prop::collection::vec((0usize..36, 0usize..36), 0..8),
    ) {
        let (readings, _, outcomes) = live_and_visit(&live, &visit, offsets, upload_after, &chunks, &cuts, &redelivered);
        let all: Vec<&Reading> = readings.iter().collect();
        let expected = reference(&all);
        let actual = raised(&outcomes);
        for (rule, episodes) in &expected {
            let want: Vec<(i64, String)> = episodes
                .iter()
                .map(|(start, _)| (*start, alert_id("p-1", rule, *start)))
                .collect();
            let got = actual.get(*rule).cloned().unwrap_or_default();
            prop_assert_eq!(got, want, "rule {}", rule);
        }
    }
}
