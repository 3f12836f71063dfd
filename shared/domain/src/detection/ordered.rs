//! In-order evaluation: readings up to the frontier, one at a time in (reading time, id)
//! order, against every rule. Order-sensitive rules raise and resolve here; rules
//! evaluated on arrival only resolve here. `missing` rules also fire by the clock.

use std::collections::VecDeque;

use super::config::{Condition, Direction, Rule, WindowKind, device_matches};
use super::engine::{
    MAX_WINDOW_EVIDENCE, Mode, Outcome, REMEMBERED_READINGS, RuleSet, metric_index, secs_ms,
    time_of,
};
use super::state::{
    Episode, LeafState, PatientState, Pending, RaisedAlert, RecentIds, Resolution, RuleState,
};
use super::window::{Sample, aggregate_range, bucket_start, samples_in};
use crate::events::Evidence;

/// What [`RuleSet::step`] works on: one patient's state, split so each rule's state is at
/// hand in rule order.
struct Patient<'p, 's> {
    id: &'p str,
    recent: &'s mut RecentIds,
    history: &'s mut [VecDeque<Sample>],
    last_seen: &'s mut [Option<i64>],
    last_device: &'s mut [Option<String>],
    raised: &'s mut Vec<RaisedAlert>,
    rule_states: &'p mut [Option<&'s mut RuleState>],
    /// Per rule: whether it has open alerts in `raised` that the in-order evaluation did
    /// not raise itself (raised on arrival or by a backfill).
    open_extra: Vec<bool>,
    /// Processing time (Unix ms).
    now_ms: i64,
}

impl RuleSet {
    /// Evaluates, in order, the pending readings the frontier has passed.
    pub(super) fn evaluate_in_order(
        &self,
        state: &mut PatientState,
        patient_id: &str,
        now_ms: i64,
        out: &mut Outcome,
    ) {
        let Some(frontier) = state.frontier else {
            return;
        };
        let ready = state.pending.partition_point(|p| p.at <= frontier);
        if ready == 0 {
            return;
        }
        let evaluated: Vec<Pending> = state.pending.drain(..ready).collect();
        out.evaluated += evaluated.len();
        let open_extra = self.open_extra(state);
        let PatientState {
            recent,
            history,
            last_seen,
            last_device,
            rule_states,
            raised,
            ..
        } = state;
        let mut rule_states = self.rule_states_in(rule_states);
        let mut patient = Patient {
            id: patient_id,
            recent,
            history,
            last_seen,
            last_device,
            raised,
            rule_states: &mut rule_states,
            open_extra,
            now_ms,
        };
        for reading in evaluated {
            self.step(&mut patient, reading, out);
        }
    }

    fn open_extra(&self, state: &PatientState) -> Vec<bool> {
        if !state.raised.iter().any(|a| a.open) {
            // (An empty list reads as false for every rule, and allocates nothing.)
            return Vec::new();
        }
        self.config
            .rules
            .iter()
            .map(|rule| {
                let own = state
                    .rule_states
                    .get(&rule.id)
                    .and_then(|rs| rs.episode.as_ref())
                    .map(|e| e.alert_id.as_str());
                state
                    .raised
                    .iter()
                    .any(|r| r.open && r.rule == rule.id && Some(r.alert_id.as_str()) != own)
            })
            .collect()
    }

    /// Evaluates one reading, in order, against every rule.
    fn step(&self, p: &mut Patient<'_, '_>, r: Pending, out: &mut Outcome) {
        let m = metric_index(r.metric);
        let bit = 1u8 << m;
        if self.keep_count[m] > 0 || self.retention_ms[m] > 0 {
            p.history[m].push_back(Sample::reading(r.id.clone(), r.at, r.value));
        }

        for (i, (rule, slot)) in self
            .config
            .rules
            .iter()
            .zip(p.rule_states.iter_mut())
            .enumerate()
        {
            let leaves = rule.condition.leaves();
            let Some(rs) = slot.as_deref_mut() else {
                continue;
            };
            if rs.leaves.len() != leaves.len() {
                rs.leaves = vec![LeafState::default(); leaves.len()];
            }
            for (leaf, ls) in leaves.iter().zip(rs.leaves.iter_mut()) {
                step_leaf(leaf, ls, &r, p.history, p.last_seen, p.last_device);
            }
            let mode = self.modes[i];
            let concerned = self.metric_masks[i] & bit != 0;
            if mode == Mode::OnArrival && !concerned {
                // Its condition only changes at readings of its own metrics.
                continue;
            }
            let holds = rs.leaves.iter().all(|l| l.active)
                && self.fresh(rule, self.fresh_ms[i], &r, p.last_seen);
            if holds {
                if mode != Mode::OnArrival && rs.episode.is_none() {
                    let started_at = match rs.leaves.as_slice() {
                        [only] => only.since.unwrap_or(r.at),
                        _ => r.at,
                    };
                    let opened = Opened {
                        patient_id: p.id,
                        started_at,
                        now_ms: p.now_ms,
                    };
                    self.open_episode(p.raised, opened, rule, rs, &r, out);
                }
                continue;
            }
            if let Some(episode) = rs.episode.take() {
                close(p.raised, &episode.alert_id, r.at);
                out.resolutions
                    .push(resolution(rule, &episode.alert_id, episode.started_at, &r));
            }
            if p.open_extra.get(i).copied().unwrap_or(false) {
                for alert in p
                    .raised
                    .iter_mut()
                    .filter(|a| a.open && a.rule == rule.id && a.from < r.at)
                {
                    alert.open = false;
                    out.resolutions
                        .push(resolution(rule, &alert.alert_id, alert.from, &r));
                }
                let still_open = p.raised.iter().any(|a| a.open && a.rule == rule.id);
                if let Some(flag) = p.open_extra.get_mut(i) {
                    *flag = still_open;
                }
            }
        }

        p.last_seen[m] = Some(r.at);
        if p.last_device[m].as_deref() != Some(&*r.device) {
            p.last_device[m] = Some(r.device.to_string());
        }
        let history = &mut p.history[m];
        let keep_from = r.at.saturating_sub(self.retention_ms[m]);
        while history.len() > self.keep_count[m]
            && history.front().is_some_and(|s| s.at < keep_from)
        {
            history.pop_front();
        }
        p.recent.push_back(r.id);
        while p.recent.len() > REMEMBERED_READINGS {
            p.recent.pop_front();
        }
    }

    /// Whether the threshold members of an `all_of` are fresh at reading `r`.
    fn fresh(&self, rule: &Rule, fresh_ms: i64, r: &Pending, last_seen: &[Option<i64>]) -> bool {
        let Condition::AllOf { conditions, .. } = &rule.condition else {
            return true;
        };
        conditions.iter().all(|leaf| match leaf {
            Condition::Threshold { metric, .. } if *metric != r.metric => {
                last_seen[metric_index(*metric)].is_some_and(|t| r.at.saturating_sub(t) <= fresh_ms)
            }
            _ => true,
        })
    }

    fn open_episode(
        &self,
        raised: &mut Vec<RaisedAlert>,
        opened: Opened<'_>,
        rule: &Rule,
        rs: &mut RuleState,
        r: &Pending,
        out: &mut Outcome,
    ) {
        let Opened {
            patient_id,
            started_at,
            now_ms,
        } = opened;
        let covering = raised
            .iter()
            .position(|a| a.rule == rule.id && a.from <= r.at && a.to >= started_at);
        let id = match covering {
            // A backfill already alerted this condition: it becomes the open episode.
            Some(index) => {
                let alert = &mut raised[index];
                alert.open = true;
                alert.to = alert.to.max(r.at);
                alert.alert_id.clone()
            }
            None => {
                let evidence = rs.leaves.iter().flat_map(|l| l.evidence.clone()).collect();
                let candidate = self.candidate(
                    patient_id,
                    rule,
                    started_at,
                    (&r.id, &r.correlation_id),
                    r.at,
                    evidence,
                    now_ms,
                );
                raised.push(RaisedAlert {
                    rule: rule.id.clone(),
                    alert_id: candidate.alert_id.clone(),
                    from: started_at,
                    to: r.at,
                    open: true,
                });
                let id = candidate.alert_id.clone();
                out.alerts.push(candidate);
                id
            }
        };
        rs.episode = Some(Episode {
            alert_id: id,
            started_at,
        });
    }

    /// Fires `missing` rules whose deadline has passed by the clock: the patient's
    /// continuous device has gone silent, and no reading can still arrive in time to
    /// fill the gap.
    pub(super) fn missing_by_clock(
        &self,
        state: &mut PatientState,
        patient_id: &str,
        now_ms: i64,
        out: &mut Outcome,
    ) {
        let tick = now_ms.saturating_sub(self.lateness_ms);
        for rule in &self.config.rules {
            let Condition::Missing {
                metric,
                after_seconds,
                ..
            } = &rule.condition
            else {
                continue;
            };
            let Some(deadline) =
                self.missing_deadline(rule, state.rule_states.get(&rule.id), state)
            else {
                continue;
            };
            if now_ms < deadline {
                continue;
            }
            let m = metric_index(*metric);
            let Some(last) = state.last_seen[m] else {
                continue;
            };
            let evidence: Vec<Evidence> = state.history[m]
                .back()
                .filter(|s| s.at == last)
                .map(|s| evidence_of(*metric, s))
                .into_iter()
                .collect();
            let trigger = evidence
                .first()
                .map(|e| e.reading_event_id.clone())
                .unwrap_or_default();
            let mut candidate = self.candidate(
                patient_id,
                rule,
                last,
                (&trigger, ""),
                last.saturating_add(secs_ms(*after_seconds)),
                evidence.clone(),
                now_ms,
            );
            candidate.correlation_id = format!("missing-{}", candidate.alert_id);
            state.raised.push(RaisedAlert {
                rule: rule.id.clone(),
                alert_id: candidate.alert_id.clone(),
                from: last,
                to: tick,
                open: true,
            });
            if let Some(rs) = state.rule_states.get_mut(&rule.id) {
                if let Some(ls) = rs.leaves.first_mut() {
                    ls.active = true;
                    ls.since = Some(last);
                    ls.evidence = evidence;
                }
                rs.episode = Some(Episode {
                    alert_id: candidate.alert_id.clone(),
                    started_at: last,
                });
            }
            out.alerts.push(candidate);
        }
    }

    /// When a `missing` rule with no open episode fires by the clock (Unix ms), if its
    /// metric was last sent by a continuous device.
    pub(super) fn missing_deadline(
        &self,
        rule: &Rule,
        rs: Option<&RuleState>,
        state: &PatientState,
    ) -> Option<i64> {
        let Condition::Missing {
            metric,
            after_seconds,
            devices,
        } = &rule.condition
        else {
            return None;
        };
        if rs.is_some_and(|rs| rs.episode.is_some()) {
            return None;
        }
        let m = metric_index(*metric);
        let last = state.last_seen.get(m).copied().flatten()?;
        let device = state
            .last_device
            .get(m)
            .cloned()
            .flatten()
            .unwrap_or_default();
        if let Some(patterns) = devices
            && !device_matches(patterns, &device)
        {
            return None;
        }
        Some(
            last.saturating_add(secs_ms(*after_seconds))
                .saturating_add(self.lateness_ms)
                .saturating_add(1),
        )
    }
}

/// An in-order episode that starts.
struct Opened<'a> {
    patient_id: &'a str,
    started_at: i64,
    now_ms: i64,
}

fn resolution(rule: &Rule, alert_id: &str, started_at: i64, r: &Pending) -> Resolution {
    Resolution {
        alert_id: alert_id.to_string(),
        rule: rule.clone(),
        trigger_event_id: r.id.clone(),
        correlation_id: r.correlation_id.clone(),
        episode_start: time_of(started_at),
        resolved_at: time_of(r.at),
    }
}

/// Marks an alert resolved; its episode ended before `at`.
fn close(raised: &mut [RaisedAlert], alert_id: &str, at: i64) {
    if let Some(alert) = raised.iter_mut().find(|a| a.alert_id == alert_id) {
        alert.open = false;
        alert.to = alert.to.max(at.saturating_sub(1));
    }
}

pub(super) fn evidence_of(metric: crate::reading::VitalType, s: &Sample) -> Evidence {
    Evidence {
        reading_event_id: s.id.clone(),
        vital: metric,
        value: s.value,
        timestamp: time_of(s.at),
    }
}

pub(super) fn reading_evidence(r: &Pending) -> Evidence {
    Evidence {
        reading_event_id: r.id.clone(),
        vital: r.metric,
        value: r.value,
        timestamp: time_of(r.at),
    }
}

/// Sets the leaf's `active` flag; `since` and `evidence` follow it.
fn set(ls: &mut LeafState, active: bool, since: i64, evidence: impl FnOnce() -> Vec<Evidence>) {
    if active && !ls.active {
        ls.since = Some(since);
        ls.evidence = evidence();
    } else if !active {
        ls.since = None;
        ls.evidence.clear();
    }
    ls.active = active;
}

/// Advances one leaf condition by one reading `r` (already in `history` if its metric
/// keeps one).
pub(super) fn step_leaf(
    leaf: &Condition,
    ls: &mut LeafState,
    r: &Pending,
    history: &[VecDeque<Sample>],
    last_seen: &[Option<i64>],
    last_device: &[Option<String>],
) {
    match leaf {
        Condition::Threshold { metric, op, value } => {
            if r.metric == *metric {
                set(ls, op.holds(r.value, *value), r.at, || {
                    vec![reading_evidence(r)]
                });
            }
        }
        Condition::Consecutive {
            metric,
            op,
            value,
            count,
        } => {
            if r.metric != *metric {
                return;
            }
            if op.holds(r.value, *value) {
                if ls.run == 0 {
                    ls.since = Some(r.at);
                    ls.evidence.clear();
                }
                ls.run = ls.run.saturating_add(1);
                if ls.evidence.len() < *count as usize {
                    ls.evidence.push(reading_evidence(r));
                }
                ls.active = ls.run >= *count;
            } else {
                *ls = LeafState::default();
            }
        }
        Condition::Window {
            metric,
            window: WindowKind::Sliding,
            seconds,
            aggregate,
            op,
            value,
        } => {
            if r.metric != *metric {
                return;
            }
            let h = &history[metric_index(*metric)];
            let from = r.at.saturating_sub(secs_ms(*seconds)).saturating_add(1);
            let acc = aggregate_range(h, from, r.at.saturating_add(1));
            let holds = acc.value(*aggregate).is_some_and(|a| op.holds(a, *value));
            set(ls, holds, r.at, || {
                samples_in(h, from, r.at.saturating_add(1), MAX_WINDOW_EVIDENCE)
                    .into_iter()
                    .map(|s| evidence_of(*metric, s))
                    .collect()
            });
        }
        Condition::Window {
            metric,
            window: WindowKind::Tumbling,
            seconds,
            aggregate,
            op,
            value,
        } => {
            let size = secs_ms(*seconds);
            let bucket = bucket_start(r.at, size);
            match ls.bucket {
                Some(open) if bucket > open => {
                    let h = &history[metric_index(*metric)];
                    let end = open.saturating_add(size);
                    let acc = aggregate_range(h, open, end);
                    let holds = acc.value(*aggregate).is_some_and(|a| op.holds(a, *value));
                    set(ls, holds, open, || {
                        samples_in(h, open, end, MAX_WINDOW_EVIDENCE)
                            .into_iter()
                            .map(|s| evidence_of(*metric, s))
                            .collect()
                    });
                    ls.bucket = Some(bucket);
                }
                Some(_) => {}
                None => ls.bucket = Some(bucket),
            }
        }
        Condition::RateOfChange {
            metric,
            direction,
            amount,
            within_seconds,
        } => {
            if r.metric != *metric {
                return;
            }
            let h = &history[metric_index(*metric)];
            let from = r.at.saturating_sub(secs_ms(*within_seconds));
            // Earlier readings in the span: those before this reading's own sample.
            let earlier = h
                .iter()
                .rev()
                .skip_while(|s| s.at > r.at || (s.at == r.at && s.id != r.id))
                .skip(1)
                .take_while(|s| s.at >= from);
            // A compacted sample counts with its highest (lowest) reading.
            let extreme = match direction {
                Direction::Drop => earlier
                    .map(|s| (s, s.highest()))
                    .max_by(|a, b| a.1.total_cmp(&b.1)),
                Direction::Rise => earlier
                    .map(|s| (s, s.lowest()))
                    .min_by(|a, b| a.1.total_cmp(&b.1)),
            };
            let holds = extreme.is_some_and(|(_, e)| match direction {
                Direction::Drop => e - r.value > *amount,
                Direction::Rise => r.value - e > *amount,
            });
            set(ls, holds, r.at, || {
                extreme
                    .map(|(s, value)| Evidence {
                        value,
                        ..evidence_of(*metric, s)
                    })
                    .into_iter()
                    .chain([reading_evidence(r)])
                    .collect()
            });
        }
        Condition::Missing {
            metric,
            after_seconds,
            devices,
        } => {
            let m = metric_index(*metric);
            if r.metric == *metric {
                set(ls, false, r.at, Vec::new);
                return;
            }
            let Some(last) = last_seen.get(m).copied().flatten() else {
                return;
            };
            let continuous = devices.as_ref().is_none_or(|patterns| {
                device_matches(
                    patterns,
                    last_device.get(m).and_then(|d| d.as_deref()).unwrap_or(""),
                )
            });
            let holds = continuous && r.at.saturating_sub(last) > secs_ms(*after_seconds);
            // Only a reading of the metric itself ends the gap (in order, a later reading of
            // another metric cannot undo it; and the clock may have opened it already).
            if !holds && ls.active {
                return;
            }
            set(ls, holds, last, || {
                history[m]
                    .back()
                    .filter(|s| s.at == last)
                    .map(|s| evidence_of(*metric, s))
                    .into_iter()
                    .chain([reading_evidence(r)])
                    .collect()
            });
        }
        Condition::AllOf { .. } => {}
    }
}
