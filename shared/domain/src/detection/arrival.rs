//! Rules evaluated on arrival: a `threshold`, and an `all_of` of thresholds over each
//! metric's latest reading within its freshness bound. Whether they hold at a reading does
//! not depend on the order readings arrived in, only on the readings known, so they are
//! evaluated as soon as a reading arrives, late or not, in the same invocation.
//!
//! An episode is a run of consecutive readings (of the rule's metrics, in reading-time
//! order) at which the rule holds. Each batch, for each such rule a new reading may
//! concern, the runs are found over every reading the state knows (the kept history, the
//! pending readings and the new ones); a run that contains the start of no known alert
//! raises one, with the id the in-order evaluation gives it: (patient, rule, time of the
//! run's first reading). A late reading that splits a run raises the second half's alert; a
//! late reading that extends a run backwards raises nothing. Resolutions come only from the
//! in-order evaluation.

use super::config::{Condition, Rule};
use super::engine::{METRICS, Mode, Outcome, RuleSet, metric_index, time_of};
use super::ordered::reading_evidence;
use super::state::{PatientState, Pending, RaisedAlert};
use crate::events::Evidence;

/// One known reading of a rule's metrics.
struct Point<'a> {
    at: i64,
    id: &'a str,
    value: f64,
    metric: usize,
    /// Empty for readings of the history (their correlation id is not kept).
    correlation_id: &'a str,
}

impl RuleSet {
    pub(super) fn raise_on_arrival(
        &self,
        state: &mut PatientState,
        patient_id: &str,
        arrivals: &Arrivals,
        late: &[Pending],
        now_ms: i64,
        out: &mut Outcome,
    ) {
        for (i, rule) in self.config.rules.iter().enumerate() {
            let mask = self.metric_masks[i];
            if self.modes[i] != Mode::OnArrival || mask & arrivals.mask == 0 {
                continue;
            }
            // New readings that all come after everything known, none of which satisfies
            // its own member of the rule, cannot start, extend or split a run.
            let late_touches = late
                .iter()
                .any(|p| mask & (1 << metric_index(p.metric)) != 0);
            let may_hold = arrivals
                .readings
                .iter()
                .any(|&(m, _, v)| mask & (1 << m) != 0 && member_holds(&rule.condition, m, v));
            // Without a new reading that satisfies its member, a rule changes only where an
            // out-of-order reading splits an alerted run: none without an alert.
            if !late_touches && !may_hold && !state.raised.iter().any(|a| a.rule == rule.id) {
                continue;
            }
            let in_order = !late_touches && arrivals.in_order(mask);
            if in_order && !may_hold {
                continue;
            }
            if in_order && self.extend_in_order(state, patient_id, rule, arrivals, now_ms, out) {
                continue;
            }
            self.raise_runs(state, patient_id, i, rule, late, now_ms, out);
        }
    }

    /// The usual case of a single `threshold`, without building the whole timeline: the
    /// new readings of its metric all come after every known one, so each either starts a
    /// run, continues the last one, or ends it. Returns false (nothing changed) when the
    /// last known run has no alert where this expects one; the caller then takes the
    /// general path.
    fn extend_in_order(
        &self,
        state: &mut PatientState,
        patient_id: &str,
        rule: &Rule,
        arrivals: &Arrivals,
        now_ms: i64,
        out: &mut Outcome,
    ) -> bool {
        let Condition::Threshold { metric, op, value } = &rule.condition else {
            return false;
        };
        if state.held.iter().any(|p| p.metric == *metric) {
            return false;
        }
        let m = metric_index(*metric);
        let known_end = arrivals.known_end[m];
        // The newest known reading of the metric before this batch.
        let mut previous: Option<(i64, bool)> = state.history[m]
            .back()
            .map(|s| (s.at, s.value))
            .into_iter()
            .chain(
                state
                    .pending
                    .iter()
                    .filter(|p| p.metric == *metric && p.at <= known_end)
                    .map(|p| (p.at, p.value)),
            )
            .max_by_key(|(at, _)| *at)
            .map(|(at, v)| (at, op.holds(v, *value)));
        let mut raised: Vec<RaisedAlert> = Vec::new();
        // The run the previous reading belongs to: a known alert (index), or one raised in
        // this batch (the last of `raised`).
        let mut open: Option<Option<usize>> = None;
        for p in state
            .pending
            .iter()
            .filter(|p| p.metric == *metric && p.at > known_end)
        {
            let holds = op.holds(p.value, *value);
            if !holds {
                open = None;
            } else if let Some((at, true)) = previous {
                let run = match open {
                    Some(run) => run,
                    None => match state
                        .raised
                        .iter()
                        .rposition(|a| a.rule == rule.id && a.from <= at && at <= a.to)
                    {
                        Some(i) => Some(i),
                        None => return false,
                    },
                };
                let alert = match run {
                    Some(i) => &mut state.raised[i],
                    None => match raised.last_mut() {
                        Some(alert) => alert,
                        None => return false,
                    },
                };
                alert.to = alert.to.max(p.at);
                open = Some(run);
            } else {
                let evidence = vec![reading_evidence(p)];
                let candidate = self.candidate(
                    patient_id,
                    rule,
                    p.at,
                    (&p.id, &p.correlation_id),
                    p.at,
                    evidence,
                    now_ms,
                );
                raised.push(RaisedAlert {
                    rule: rule.id.clone(),
                    alert_id: candidate.alert_id.clone(),
                    from: p.at,
                    to: p.at,
                    open: true,
                });
                out.alerts.push(candidate);
                open = Some(None);
            }
            previous = Some((p.at, holds));
        }
        state.raised.extend(raised);
        true
    }

    #[allow(clippy::too_many_arguments)]
    fn raise_runs(
        &self,
        state: &mut PatientState,
        patient_id: &str,
        index: usize,
        rule: &Rule,
        late: &[Pending],
        now_ms: i64,
        out: &mut Outcome,
    ) {
        let mask = self.metric_masks[index];
        let fresh_ms = self.fresh_ms[index];
        let mut points: Vec<Point<'_>> = Vec::new();
        for (m, history) in state.history.iter().enumerate() {
            if mask & (1 << m) != 0 {
                points.extend(history.iter().map(|s| Point {
                    at: s.at,
                    id: &s.id,
                    value: s.value,
                    metric: m,
                    correlation_id: "",
                }));
            }
        }
        for p in late.iter().chain(&state.held).chain(&state.pending) {
            let m = metric_index(p.metric);
            if mask & (1 << m) != 0 {
                points.push(Point {
                    at: p.at,
                    id: &p.id,
                    value: p.value,
                    metric: m,
                    correlation_id: &p.correlation_id,
                });
            }
        }
        points.sort_unstable_by(|a, b| (a.at, a.id).cmp(&(b.at, b.id)));

        // Whether the rule holds at each point, and the latest point of each metric there.
        let leaves = rule.condition.leaves();
        let mut latest: [Option<usize>; METRICS] = [None; METRICS];
        let mut holds = Vec::with_capacity(points.len());
        let mut latest_at = Vec::with_capacity(points.len());
        for (k, point) in points.iter().enumerate() {
            latest[point.metric] = Some(k);
            holds.push(leaves.iter().all(|leaf| match leaf {
                Condition::Threshold { metric, op, value } => {
                    latest[metric_index(*metric)].is_some_and(|j| {
                        point.at.saturating_sub(points[j].at) <= fresh_ms
                            && op.holds(points[j].value, *value)
                    })
                }
                _ => false,
            }));
            latest_at.push(latest);
        }

        let fallback_correlation = late
            .first()
            .or(state.pending.last())
            .map(|p| p.correlation_id.clone())
            .unwrap_or_default();
        let mut raised = Vec::new();
        let mut k = 0;
        while k < points.len() {
            if !holds[k] {
                k += 1;
                continue;
            }
            let first = k;
            while k + 1 < points.len() && holds[k + 1] {
                k += 1;
            }
            let last = k;
            k += 1;
            let (start, end) = (points[first].at, points[last].at);
            let mut covered = false;
            for alert in state.raised.iter_mut().filter(|a| a.rule == rule.id) {
                let starts_here = alert.from >= start && alert.from <= end;
                // The run's beginning was forgotten (the history keeps the newest readings).
                let continues = first == 0 && alert.from < start && alert.to >= start;
                if starts_here || continues {
                    covered = true;
                    alert.to = alert.to.max(end);
                }
            }
            if covered {
                continue;
            }
            let trigger = &points[first];
            let evidence: Vec<Evidence> = latest_at[first]
                .iter()
                .flatten()
                .map(|&j| {
                    let p = &points[j];
                    Evidence {
                        reading_event_id: p.id.to_string(),
                        vital: crate::reading::VitalType::ALL[p.metric],
                        value: p.value,
                        timestamp: time_of(p.at),
                    }
                })
                .collect();
            let correlation = if trigger.correlation_id.is_empty() {
                fallback_correlation.as_str()
            } else {
                trigger.correlation_id
            };
            let candidate = self.candidate(
                patient_id,
                rule,
                start,
                (trigger.id, correlation),
                start,
                evidence,
                now_ms,
            );
            raised.push(RaisedAlert {
                rule: rule.id.clone(),
                alert_id: candidate.alert_id.clone(),
                from: start,
                to: end,
                open: true,
            });
            out.alerts.push(candidate);
        }
        state.raised.extend(raised);
    }
}

/// Whether a new reading of metric index `m` with `value` satisfies a threshold member of
/// `condition` on its metric.
fn member_holds(condition: &Condition, m: usize, value: f64) -> bool {
    condition.leaves().iter().any(|leaf| match leaf {
        Condition::Threshold {
            metric,
            op,
            value: threshold,
        } => metric_index(*metric) == m && op.holds(value, *threshold),
        _ => false,
    })
}

/// The new readings of one batch, and where each metric's known readings ended before.
#[derive(Debug, Default)]
pub(super) struct Arrivals {
    /// Bit per metric index with a new reading.
    pub mask: u8,
    /// Reading time of the newest known reading of each metric before this batch.
    pub known_end: [i64; METRICS],
    /// `(metric index, reading time, value)` of each new reading, in arrival order.
    pub readings: Vec<(usize, i64, f64)>,
}

impl Arrivals {
    pub(super) fn note(&mut self, m: usize, at: i64, value: f64) {
        self.mask |= 1 << m;
        self.readings.push((m, at, value));
    }

    /// Whether the new readings of the metrics in `mask` each came after every reading
    /// known of those metrics (so they can only be appended to the rule's timeline).
    pub fn in_order(&self, mask: u8) -> bool {
        let mut end = (0..METRICS)
            .filter(|m| mask & (1 << m) != 0)
            .map(|m| self.known_end[m])
            .max()
            .unwrap_or(i64::MIN);
        for &(m, at, _) in &self.readings {
            if mask & (1 << m) == 0 {
                continue;
            }
            if at <= end {
                return false;
            }
            end = at;
        }
        true
    }
}
