//! Backfill: readings that arrive after the frontier passed their time (an offline phone
//! uploading yesterday's visit, a kiosk that synced late, a redelivered old batch) are not
//! lost. Each batch's late readings are put into the patient's history in their place, and
//! every order-sensitive rule that can be evaluated late (`consecutive`, sliding `window`,
//! `rate_of_change`) runs again, from a fresh start, over the history of its metric: the
//! late readings themselves plus the evaluated readings the state keeps (at least the last
//! [`TIMELINE_READINGS`](super::engine::TIMELINE_READINGS) of the metric, and as long as
//! the rule's window). An episode found there that overlaps no alert the patient already
//! had (as the replay sees that alert's episode) raises an alert, marked late when its
//! readings are older than the allowed lateness. The rule's in-order
//! state becomes that of the replayed history, so an open episode the late readings end is
//! resolved.
//!
//! Late readings wait the allowed lateness (by the clock) before they are backfilled, so
//! an upload cut into several batches is evaluated whole: a visit's last fast heartbeats
//! are not joined to the wearable's of half an hour later before the visit's next reading
//! has been seen.
//!
//! Not backfilled: tumbling windows (a bucket closes in order) and `missing` (a late reading
//! can only fill a gap, never open one); rules evaluated on arrival need no backfill.

use std::collections::VecDeque;

use super::config::Condition;
use super::engine::time_of;
use super::engine::{METRICS, Mode, Outcome, REMEMBERED_READINGS, RuleSet, metric_index};
use super::ordered::step_leaf;
use super::state::{Episode, LeafState, PatientState, Pending, RaisedAlert, Resolution};
use super::window::Sample;
use crate::events::Evidence;

/// An episode found by a backfill run.
struct Found {
    start: i64,
    end: i64,
    /// Index in the history of the reading that made it hold, and of its last reading.
    trigger: usize,
    last: usize,
    evidence: Vec<Evidence>,
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
        for r in &late {
            let m = metric_index(r.metric);
            late_mask |= 1 << m;
            if self.keep_count[m] > 0 || self.retention_ms[m] > 0 {
                let history = &mut state.history[m];
                let at = history.partition_point(|s| (s.at, s.id.as_str()) < (r.at, r.id.as_str()));
                history.insert(at, Sample::reading(r.id.clone(), r.at, r.value));
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
            let (found, last_leaf) = episodes(&rule.condition, &state.history[m]);
            let first_kept = state.history[m].front().map_or(i64::MIN, |s| s.at);
            let newest = late.iter().rfind(|p| p.metric == metric);
            // The in-order state of the rule becomes what in-order evaluation of the kept
            // history gives, unless its open episode began before the kept history.
            let mut own: Option<String> = state
                .rule_states
                .get(&rule.id)
                .and_then(|rs| rs.episode.as_ref())
                .map(|e| e.alert_id.clone());
            if let Some(rs) = state.rule_states.get_mut(&rule.id)
                && rs
                    .episode
                    .as_ref()
                    .is_none_or(|e| e.started_at >= first_kept)
            {
                own = None;
                if let Some(episode) = rs.episode.take() {
                    let continues = last_leaf.active
                        && found.last().is_some_and(|f| f.start <= episode.started_at);
                    if continues {
                        own = Some(episode.alert_id.clone());
                        rs.episode = Some(episode);
                    } else if let Some(late_reading) = newest {
                        let ended = found
                            .iter()
                            .find(|f| f.start <= episode.started_at && episode.started_at <= f.end)
                            .map_or(episode.started_at, |f| f.end);
                        if let Some(alert) = state
                            .raised
                            .iter_mut()
                            .find(|a| a.alert_id == episode.alert_id)
                        {
                            alert.open = false;
                            alert.to = ended;
                        }
                        out.resolutions.push(Resolution {
                            alert_id: episode.alert_id,
                            rule: rule.clone(),
                            trigger_event_id: late_reading.id.clone(),
                            correlation_id: late_reading.correlation_id.clone(),
                            episode_start: time_of(episode.started_at),
                            resolved_at: time_of(late_reading.at),
                        });
                    }
                }
                rs.leaves = vec![last_leaf.clone()];
            }

            // The alerts' episodes as the replay sees them: the late readings may have
            // ended one where the in-order evaluation saw it go on.
            for alert in state.raised.iter_mut().filter(|a| a.rule == rule.id) {
                if alert.from < first_kept || own.as_deref() == Some(alert.alert_id.as_str()) {
                    continue;
                }
                if let Some(f) = found
                    .iter()
                    .find(|f| f.start <= alert.from && alert.from <= f.end)
                {
                    alert.to = f.end;
                }
            }
            let last_index = state.history[m].len().saturating_sub(1);
            // Every episode of the kept history that no alert covers yet: the late readings
            // made it, or split it off an episode that was alerted.
            for ep in found {
                let trigger = &state.history[m][ep.trigger];
                let covered = state.raised.iter().any(|a| {
                    a.rule == rule.id
                        && a.from <= ep.end
                        && (a.to >= ep.start || own.as_deref() == Some(a.alert_id.as_str()))
                });
                if covered {
                    continue;
                }
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
                // Still holding at the newest kept reading: it is the in-order episode now.
                if ep.last == last_index
                    && last_leaf.active
                    && let Some(rs) = state.rule_states.get_mut(&rule.id)
                    && rs.episode.is_none()
                {
                    rs.episode = Some(Episode {
                        alert_id: candidate.alert_id.clone(),
                        started_at: ep.start,
                    });
                }
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
/// start in reading-time order, and the condition's state after the newest reading.
fn episodes(condition: &Condition, history: &VecDeque<Sample>) -> (Vec<Found>, LeafState) {
    let mut scratch: Vec<VecDeque<Sample>> = vec![VecDeque::new(); METRICS];
    let Some(metric) = condition.metric() else {
        return (Vec::new(), LeafState::default());
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
            device: std::sync::Arc::from(""),
            received: s.at,
        };
        step_leaf(condition, &mut leaf, &r, &scratch, &[], &[]);
        match (&mut open, leaf.active) {
            (None, true) => {
                open = Some(Found {
                    start: leaf.since.unwrap_or(s.at),
                    end: s.at,
                    trigger: k,
                    last: k,
                    evidence: leaf.evidence.clone(),
                });
            }
            (Some(ep), true) => {
                ep.end = s.at;
                ep.last = k;
            }
            (Some(_), false) => found.extend(open.take()),
            (None, false) => {}
        }
    }
    found.extend(open);
    (found, leaf)
}
