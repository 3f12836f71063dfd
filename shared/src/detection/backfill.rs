//! Backfill: readings that arrive after the frontier passed their time (an offline phone
//! uploading yesterday's visit, a kiosk that synced late, a redelivered old batch) are not
//! lost. Each batch's late readings are put into the patient's history in their place, and
//! every order-sensitive rule that can be evaluated late (`consecutive`, sliding `window`,
//! `rate_of_change`) runs again, from a fresh start, over the history of its metric: the
//! late readings themselves plus the evaluated readings the state keeps (at least the last
//! [`TIMELINE_READINGS`](super::engine::TIMELINE_READINGS) of the metric, and as long as
//! the rule's window). An episode found there that contains a late reading and overlaps no
//! alert the patient already had raises an alert, marked late when its readings are older
//! than the allowed lateness. Resolutions come only from the in-order evaluation.
//!
//! Not backfilled: tumbling windows (a bucket closes in order) and `missing` (a late reading
//! can only fill a gap, never open one); rules evaluated on arrival need no backfill.

use std::collections::{BTreeSet, VecDeque};

use super::engine::{METRICS, Mode, Outcome, REMEMBERED_READINGS, RuleSet, metric_index};
use super::ordered::step_leaf;
use super::state::{LeafState, PatientState, Pending, RaisedAlert};
use super::window::Sample;
use crate::events::Evidence;

/// An episode found by a backfill run.
struct Found {
    start: i64,
    end: i64,
    trigger: usize,
    evidence: Vec<Evidence>,
    has_late: bool,
}

impl RuleSet {
    pub(super) fn backfill(
        &self,
        state: &mut PatientState,
        patient_id: &str,
        late: Vec<Pending>,
        now_ms: i64,
        out: &mut Outcome,
    ) {
        let mut late_mask = 0u8;
        let late_ids: BTreeSet<&str> = late.iter().map(|p| p.id.as_str()).collect();
        for r in &late {
            let m = metric_index(r.metric);
            late_mask |= 1 << m;
            if self.keep_count[m] > 0 || self.retention_ms[m] > 0 {
                let history = &mut state.history[m];
                let at = history.partition_point(|s| (s.at, s.id.as_str()) < (r.at, r.id.as_str()));
                history.insert(
                    at,
                    Sample {
                        id: r.id.clone(),
                        at: r.at,
                        value: r.value,
                    },
                );
            }
        }

        for (i, rule) in self.config.rules.iter().enumerate() {
            if self.modes[i] != Mode::Backfilled || self.metric_masks[i] & late_mask == 0 {
                continue;
            }
            let Some(metric) = rule.condition.metric() else {
                continue;
            };
            let m = metric_index(metric);
            let found = episodes(&rule.condition, &state.history[m], &late_ids);
            for ep in found.into_iter().filter(|ep| ep.has_late) {
                let covered = state
                    .raised
                    .iter()
                    .any(|a| a.rule == rule.id && a.from <= ep.end && (a.open || a.to >= ep.start));
                if covered {
                    continue;
                }
                let trigger = &state.history[m][ep.trigger];
                let correlation = late
                    .iter()
                    .find(|p| p.id == trigger.id)
                    .or(late.first())
                    .map(|p| p.correlation_id.as_str())
                    .unwrap_or_default();
                let candidate = self.candidate(
                    patient_id,
                    rule,
                    ep.start,
                    (&trigger.id, correlation),
                    trigger.at,
                    ep.evidence,
                    now_ms,
                );
                state.raised.push(RaisedAlert {
                    rule: rule.id.clone(),
                    alert_id: candidate.alert_id.clone(),
                    from: ep.start,
                    to: ep.end,
                    open: true,
                });
                out.alerts.push(candidate);
            }
        }

        for r in late {
            state.recent.push_back(r.id);
        }
        while state.recent.len() > REMEMBERED_READINGS {
            state.recent.pop_front();
        }
        for m in 0..METRICS {
            if late_mask & (1 << m) == 0 {
                continue;
            }
            let history = &mut state.history[m];
            let newest = history.back().map_or(i64::MIN, |s| s.at);
            let keep_from = newest.saturating_sub(self.retention_ms[m]);
            while history.len() > self.keep_count[m]
                && history.front().is_some_and(|s| s.at < keep_from)
            {
                history.pop_front();
            }
        }
    }
}

/// The episodes of a single-metric `condition` over `history`, evaluated from a fresh
/// start in reading-time order.
fn episodes(
    condition: &super::config::Condition,
    history: &VecDeque<Sample>,
    late_ids: &BTreeSet<&str>,
) -> Vec<Found> {
    let mut scratch: Vec<VecDeque<Sample>> = vec![VecDeque::new(); METRICS];
    let Some(metric) = condition.metric() else {
        return Vec::new();
    };
    let m = metric_index(metric);
    let mut leaf = LeafState::default();
    let mut open: Option<Found> = None;
    let mut found = Vec::new();
    for (k, s) in history.iter().enumerate() {
        scratch[m].push_back(s.clone());
        let r = Pending {
            id: s.id.clone(),
            at: s.at,
            value: s.value,
            metric,
            correlation_id: String::new(),
            device: String::new(),
        };
        step_leaf(condition, &mut leaf, &r, &scratch, &[], &[]);
        let is_late = late_ids.contains(s.id.as_str());
        match (&mut open, leaf.active) {
            (None, true) => {
                let has_late = is_late
                    || leaf
                        .evidence
                        .iter()
                        .any(|e| late_ids.contains(e.reading_event_id.as_str()));
                open = Some(Found {
                    start: leaf.since.unwrap_or(s.at),
                    end: s.at,
                    trigger: k,
                    evidence: leaf.evidence.clone(),
                    has_late,
                });
            }
            (Some(ep), true) => {
                ep.end = s.at;
                ep.has_late |= is_late;
            }
            (Some(_), false) => found.extend(open.take()),
            (None, false) => {}
        }
    }
    found.extend(open);
    found
}
