//! The per-patient detection engine. See `docs/detection.md` for the semantics. In short,
//! for each patient and each batch of their readings:
//!
//! 1. readings already seen are dropped (redelivery);
//! 2. rules whose condition does not depend on reading order (a `threshold`, an `all_of`
//!    of thresholds) are evaluated **on arrival**, over every reading the state knows of
//!    the rule's metrics ([`arrival`](super::arrival));
//! 3. readings at or before the patient's *frontier* are late: they are evaluated as a
//!    **backfill**, in their own reading-time order against the history the state keeps
//!    ([`backfill`](super::backfill));
//! 4. the frontier moves: to the progress of the slowest device that sent within the
//!    allowed lateness, to the patient's progress minus the allowed lateness, and to the
//!    clock minus the allowed lateness ([`progress`](super::progress)); readings up to it are
//!    evaluated **in order** ([`ordered`](super::ordered)), which is where order-sensitive
//!    rules raise and every rule resolves;
//! 5. `missing` rules whose deadline has passed by the clock fire.

use std::cmp::Ordering;
use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::arrival::Arrivals;
use super::config::{Condition, ConfigError, DEFAULT_FRESH_SECONDS, Rule};
use super::config::{RulesConfig, WindowKind};
use super::state::{PatientState, Pending, RaisedAlert, RuleState};

pub use super::input::{Input, LateReading, Outcome, ReadingInput};
use crate::reading::VitalType;

pub use super::state::{AlertCandidate, Resolution};

/// How many evaluated reading ids a patient's state remembers to recognise redeliveries.
pub const REMEMBERED_READINGS: usize = 64;
/// The most readings kept as evidence of one window condition.
pub const MAX_WINDOW_EVIDENCE: usize = 20;
/// How many evaluated readings of each metric a rule uses the state keeps at least: the
/// timeline that on-arrival rules and backfills are evaluated against.
pub const TIMELINE_READINGS: usize = 32;
/// The bound on a patient's state as stored (serialized JSON, outbox carried out), in bytes:
/// well under DynamoDB's 400 KB item limit whatever the reading rate (docs/detection.md,
/// "State size"). Enforced by keeping at most [`HISTORY_SAMPLE_BUDGET`] history samples
/// (compacting older ones), [`REMEMBERED_READINGS`] ids and [`REMEMBERED_ALERTS`] alerts.
pub const STATE_BYTES_BOUND: usize = 64 * 1024;
/// The most history samples a patient's state keeps over all metrics. Metrics only used by
/// reading-by-reading rules keep [`TIMELINE_READINGS`]; the rest is shared by the metrics
/// of windows and rates of change, whose older samples are compacted into buckets
/// ([`super::window::compact`]).
pub const HISTORY_SAMPLE_BUDGET: usize = 320;
/// The fewest samples a windowed metric's history is compacted to.
const MIN_WINDOW_SAMPLES: usize = TIMELINE_READINGS + 16;
/// How many alerts a patient's state remembers (open ones are always kept).
pub const REMEMBERED_ALERTS: usize = 64;
/// Due times of `missing` deadlines are rounded up to this, so a continuous device moving
/// its deadline with every reading rewrites the sweep's index at most once a minute.
pub const DUE_QUANTUM_MS: i64 = 60_000;

pub(super) const METRICS: usize = VitalType::ALL.len();

pub(super) fn metric_index(vital: VitalType) -> usize {
    match vital {
        VitalType::HeartRate => 0,
        VitalType::Spo2 => 1,
        VitalType::Temperature => 2,
        VitalType::SystolicBp => 3,
        VitalType::DiastolicBp => 4,
    }
}

pub(super) fn secs_ms(seconds: u64) -> i64 {
    i64::try_from(seconds.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// Unix milliseconds to a timestamp (readings are validated, so this is always in range).
pub fn time_of(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// When a rule can fire (docs/detection.md has the table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `threshold`, `all_of` of thresholds: evaluated on arrival, whatever the reading's
    /// lateness; resolved in order.
    OnArrival,
    /// `consecutive`, sliding `window`, `rate_of_change`: in order, and late readings by
    /// backfill.
    Backfilled,
    /// tumbling `window`, `missing`, other `all_of`: in order only (`missing` also by the
    /// clock).
    Ordered,
}

impl Mode {
    fn of(condition: &Condition) -> Mode {
        match condition {
            Condition::Threshold { .. } => Mode::OnArrival,
            Condition::AllOf { conditions, .. }
                if conditions
                    .iter()
                    .all(|c| matches!(c, Condition::Threshold { .. })) =>
            {
                Mode::OnArrival
            }
            Condition::Consecutive { .. }
            | Condition::RateOfChange { .. }
            | Condition::Window {
                window: WindowKind::Sliding,
                ..
            } => Mode::Backfilled,
            _ => Mode::Ordered,
        }
    }
}

/// A validated rules configuration, ready to evaluate.
#[derive(Debug, Clone)]
pub struct RuleSet {
    pub(super) config: RulesConfig,
    /// `(rule id, index in config.rules)`, sorted by id: finds a stored rule state's rule.
    by_id: Vec<(String, usize)>,
    pub(super) lateness_ms: i64,
    /// How long evaluated readings of each metric are kept for windows.
    pub(super) retention_ms: [i64; METRICS],
    /// How many evaluated readings of each metric are kept at least.
    pub(super) keep_count: [usize; METRICS],
    /// How many history samples of each metric are kept at most (older ones compacted).
    pub(super) history_cap: [usize; METRICS],
    /// Per rule: its mode, the metrics of its leaves (bit per metric index) and, for an
    /// `all_of`, how fresh a threshold member's reading must be.
    pub(super) modes: Vec<Mode>,
    pub(super) metric_masks: Vec<u8>,
    pub(super) fresh_ms: Vec<i64>,
}

impl RuleSet {
    pub fn new(config: RulesConfig) -> Result<RuleSet, ConfigError> {
        config.validate()?;
        let mut retention_ms = [0i64; METRICS];
        let mut keep_count = [0usize; METRICS];
        let mut modes = Vec::with_capacity(config.rules.len());
        let mut metric_masks = Vec::with_capacity(config.rules.len());
        let mut fresh_ms = Vec::with_capacity(config.rules.len());
        for rule in &config.rules {
            let mut mask = 0u8;
            for leaf in rule.condition.leaves() {
                let Some(metric) = leaf.metric() else {
                    continue;
                };
                mask |= 1 << metric_index(metric);
                keep_count[metric_index(metric)] = TIMELINE_READINGS;
                let span = match leaf {
                    Condition::Window {
                        window: WindowKind::Sliding,
                        seconds,
                        ..
                    } => secs_ms(*seconds),
                    Condition::Window {
                        window: WindowKind::Tumbling,
                        seconds,
                        ..
                    } => secs_ms(*seconds).saturating_mul(2),
                    Condition::RateOfChange { within_seconds, .. } => secs_ms(*within_seconds),
                    _ => 0,
                };
                let slot = &mut retention_ms[metric_index(metric)];
                *slot = (*slot).max(span);
            }
            modes.push(Mode::of(&rule.condition));
            metric_masks.push(mask);
            fresh_ms.push(match &rule.condition {
                Condition::AllOf { fresh_seconds, .. } => {
                    secs_ms(fresh_seconds.unwrap_or(DEFAULT_FRESH_SECONDS))
                }
                _ => i64::MAX,
            });
        }
        let windowed = retention_ms.iter().filter(|&&r| r > 0).count();
        let timeline_only: usize = (0..METRICS)
            .filter(|&m| retention_ms[m] == 0)
            .map(|m| keep_count[m])
            .sum();
        let share = HISTORY_SAMPLE_BUDGET
            .saturating_sub(timeline_only)
            .checked_div(windowed)
            .unwrap_or(0)
            .max(MIN_WINDOW_SAMPLES);
        let history_cap: [usize; METRICS] = std::array::from_fn(|m| {
            if retention_ms[m] > 0 {
                share
            } else {
                keep_count[m]
            }
        });
        let mut by_id: Vec<(String, usize)> = config
            .rules
            .iter()
            .enumerate()
            .map(|(i, rule)| (rule.id.clone(), i))
            .collect();
        by_id.sort_unstable();
        Ok(RuleSet {
            lateness_ms: secs_ms(config.allowed_lateness_seconds),
            by_id,
            config,
            retention_ms,
            keep_count,
            history_cap,
            modes,
            metric_masks,
            fresh_ms,
        })
    }

    /// Parses, validates and compiles a YAML (or JSON) rules document.
    pub fn from_yaml(text: &str) -> Result<RuleSet, ConfigError> {
        RuleSet::new(RulesConfig::from_yaml(text)?)
    }

    pub fn rules(&self) -> &[Rule] {
        &self.config.rules
    }

    pub fn config(&self) -> &RulesConfig {
        &self.config
    }

    pub fn allowed_lateness(&self) -> Duration {
        Duration::milliseconds(self.lateness_ms)
    }
}

/// `(time, id)` order of readings.
pub(super) fn by_time(a: &Pending, b: &Pending) -> Ordering {
    (a.at, &a.id).cmp(&(b.at, &b.id))
}

impl RuleSet {
    /// Applies one patient's `inputs` (any order) to `state` at processing time `now`.
    pub fn apply(
        &self,
        state: &mut PatientState,
        patient_id: &str,
        inputs: &[Input<'_>],
        now: DateTime<Utc>,
    ) -> Outcome {
        self.apply_inputs(state, patient_id, inputs, now)
    }

    /// [`RuleSet::apply`] for any [`ReadingInput`] (e.g. a view of a decoded record).
    pub fn apply_inputs<I: ReadingInput>(
        &self,
        state: &mut PatientState,
        patient_id: &str,
        inputs: &[I],
        now: DateTime<Utc>,
    ) -> Outcome {
        let now_ms = now.timestamp_millis();
        let mut out = Outcome::default();
        self.prepare(state);
        let frontier_before = state.frontier;
        let held_before = state.held.len();

        // Where each metric's known readings end, to tell in-order arrivals.
        let mut arrivals = Arrivals {
            known_end: [i64::MIN; METRICS],
            ..Arrivals::default()
        };
        for (m, end) in arrivals.known_end.iter_mut().enumerate() {
            if let Some(last) = state.history[m].back() {
                *end = last.at;
            }
        }
        for p in &state.pending {
            let end = &mut arrivals.known_end[metric_index(p.metric)];
            *end = (*end).max(p.at);
        }
        let mut late: Vec<Pending> = Vec::new();
        let mut device: std::sync::Arc<str> = std::sync::Arc::from("");
        let mut clocks = super::progress::Observed::default();
        for input in inputs {
            let at = input.timestamp().timestamp_millis();
            let id = input.event_id();
            let m = metric_index(input.vital());
            let is_late = state.frontier.is_some_and(|f| at <= f);
            if state.recent.contains(id)
                || state.pending.iter().any(|p| same_id(&p.id, id))
                || state.held.iter().any(|p| same_id(&p.id, id))
                || late.iter().any(|p| same_id(&p.id, id))
                || (is_late && state.history[m].iter().any(|s| same_id(&s.id, id)))
            {
                out.duplicates.push(id.to_string());
                continue;
            }
            let received = input.received_at().timestamp_millis();
            clocks.observe(state, input.device_id(), at, received);
            arrivals.note(m, at, input.value());
            let reading = Pending {
                id: id.to_string(),
                at,
                value: input.value(),
                metric: input.vital(),
                correlation_id: input.correlation_id().to_string(),
                device: if *device == *input.device_id() {
                    device.clone()
                } else {
                    device = std::sync::Arc::from(input.device_id());
                    device.clone()
                },
                received,
            };
            if is_late {
                if let Some(frontier) = state.frontier {
                    out.late.push(LateReading {
                        event_id: reading.id.clone(),
                        correlation_id: reading.correlation_id.clone(),
                        vital: reading.metric,
                        value: reading.value,
                        timestamp: input.timestamp(),
                        frontier: time_of(frontier),
                    });
                }
                late.push(reading);
            } else {
                state.pending.push(reading);
            }
        }
        clocks.flush(state);
        if arrivals.mask != 0 {
            state.pending.sort_unstable_by(by_time);
            late.sort_unstable_by(by_time);
            self.raise_on_arrival(state, patient_id, &arrivals, &late, now_ms, &mut out);
        }
        // Late readings are backfilled once they have waited the allowed lateness, so
        // that an upload cut into several batches is evaluated whole.
        state.held.extend(late);
        let waited_since = now_ms.saturating_sub(self.lateness_ms);
        if state.held.iter().any(|p| p.received <= waited_since) {
            let (mut ready, waiting): (Vec<Pending>, Vec<Pending>) =
                std::mem::take(&mut state.held)
                    .into_iter()
                    .partition(|p| p.received <= waited_since);
            state.held = waiting;
            ready.sort_unstable_by(by_time);
            self.backfill(state, patient_id, ready, now_ms, &mut out);
        }
        // While an upload is held for backfill, the in-order evaluation waits for it: the
        // readings it holds may end a run the in-order state would otherwise continue.
        let mut pruned = false;
        if state.held.is_empty() {
            pruned = super::progress::advance(state, self.lateness_ms, now_ms);
            self.evaluate_in_order(state, patient_id, now_ms, &mut out);
            self.missing_by_clock(state, patient_id, now_ms, &mut out);
        }
        let compacted = self.compact_history(state);
        forget_old_alerts(&mut state.raised);

        out.pending = state.pending.len();
        out.changed = arrivals.mask != 0
            || held_before != state.held.len()
            || pruned
            || compacted
            || state.frontier != frontier_before
            || out.evaluated > 0
            || !out.alerts.is_empty()
            || !out.resolutions.is_empty();
        out
    }

    /// Keeps each metric's history within its cap ([`HISTORY_SAMPLE_BUDGET`]): older
    /// samples of windowed metrics are merged per time bucket. Returns whether it did.
    fn compact_history(&self, state: &mut PatientState) -> bool {
        let mut changed = false;
        for (m, history) in state.history.iter_mut().enumerate() {
            if self.retention_ms[m] > 0 {
                changed |= super::window::compact(history, self.keep_count[m], self.history_cap[m]);
            }
        }
        changed
    }

    /// Sizes the per-metric vectors, and moves the open episodes of on-arrival rules
    /// (states saved before those rules were evaluated on arrival) to the alert list.
    fn prepare(&self, state: &mut PatientState) {
        if state.history.len() != METRICS {
            state.history.resize_with(METRICS, VecDeque::new);
        }
        if state.last_seen.len() != METRICS {
            state.last_seen.resize(METRICS, None);
        }
        if state.last_device.len() != METRICS {
            state.last_device.resize(METRICS, None);
        }
        if !self.has_every_rule(&state.rule_states) {
            for rule in &self.config.rules {
                if !state.rule_states.contains_key(&rule.id) {
                    state
                        .rule_states
                        .insert(rule.id.clone(), RuleState::default());
                }
            }
        }
        if !state.rule_states.values().any(|rs| rs.episode.is_some()) {
            return;
        }
        for (rule, mode) in self.config.rules.iter().zip(&self.modes) {
            if *mode != Mode::OnArrival {
                continue;
            }
            if let Some(episode) = state
                .rule_states
                .get_mut(&rule.id)
                .and_then(|rs| rs.episode.take())
            {
                state.raised.push(RaisedAlert {
                    rule: rule.id.clone(),
                    alert_id: episode.alert_id,
                    from: episode.started_at,
                    to: state.watermark.unwrap_or(episode.started_at),
                    open: true,
                });
            }
        }
    }

    /// Each rule's state, in rule order (every configured rule has one after `prepare`):
    /// one walk over the stored states per batch instead of two map lookups per rule per
    /// reading.
    pub(super) fn rule_states_in<'s>(
        &self,
        stored: &'s mut BTreeMap<String, RuleState>,
    ) -> Vec<Option<&'s mut RuleState>> {
        let mut slots: Vec<Option<&mut RuleState>> = std::iter::repeat_with(|| None)
            .take(self.by_id.len())
            .collect();
        let mut wanted = self.by_id.iter().peekable();
        for (id, rs) in stored.iter_mut() {
            while let Some((rule_id, index)) = wanted.peek() {
                match rule_id.as_str().cmp(id) {
                    // A configured rule without a stored state.
                    Ordering::Less => {
                        wanted.next();
                    }
                    Ordering::Equal => {
                        if let Some(slot) = slots.get_mut(*index) {
                            *slot = Some(rs);
                        }
                        wanted.next();
                        break;
                    }
                    // The state of a rule no longer configured.
                    Ordering::Greater => break,
                }
            }
        }
        slots
    }

    /// Whether every configured rule has a stored state. The usual case, exactly the
    /// configured rules (both sorted by id), takes one comparison per rule.
    fn has_every_rule(&self, stored: &BTreeMap<String, RuleState>) -> bool {
        if stored.len() == self.by_id.len()
            && stored
                .keys()
                .zip(&self.by_id)
                .all(|(id, (rule_id, _))| id == rule_id)
        {
            return true;
        }
        self.by_id.iter().all(|(id, _)| stored.contains_key(id))
    }

    /// The alert to raise for an episode of `rule` starting at `start`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn candidate(
        &self,
        patient_id: &str,
        rule: &Rule,
        start: i64,
        trigger: (&str, &str),
        detected_at: i64,
        evidence: Vec<crate::events::Evidence>,
        now_ms: i64,
    ) -> AlertCandidate {
        let late_by = now_ms.saturating_sub(detected_at);
        AlertCandidate {
            alert_id: alert_id(patient_id, &rule.id, start),
            rule: rule.clone(),
            evidence,
            trigger_event_id: trigger.0.to_string(),
            correlation_id: trigger.1.to_string(),
            detected_at: time_of(detected_at),
            episode_start: time_of(start),
            decided_at: time_of(now_ms),
            late_by_seconds: (late_by > self.lateness_ms).then(|| late_by as f64 / 1000.0),
        }
    }

    /// When the sweep must next look at `state` (see [`PatientState::due_at`]).
    pub fn due_at(&self, state: &PatientState) -> Option<i64> {
        if !state.outbox.is_empty() {
            return Some(0);
        }
        // Waiting readings: due when the first has waited the allowed lateness, or when a
        // device falls silent (the frontier may then move).
        let devices_expire = state
            .devices
            .values()
            .map(|clock| clock.seen)
            .filter(|_| !state.pending.is_empty());
        let mut due = state
            .pending
            .iter()
            .chain(&state.held)
            .map(|p| p.received)
            .chain(devices_expire)
            .min()
            .map(|first| first.saturating_add(self.lateness_ms));
        for (rule, rs) in self.config.rules.iter().zip(self.rule_states_ref(state)) {
            if let Some(deadline) = self.missing_deadline(rule, rs, state) {
                let quantized = deadline
                    .saturating_add(DUE_QUANTUM_MS - 1)
                    .div_euclid(DUE_QUANTUM_MS)
                    .saturating_mul(DUE_QUANTUM_MS);
                due = Some(due.map_or(quantized, |d| d.min(quantized)));
            }
        }
        due
    }

    fn rule_states_ref<'s>(
        &'s self,
        state: &'s PatientState,
    ) -> impl Iterator<Item = Option<&'s RuleState>> + 's {
        self.config
            .rules
            .iter()
            .map(|rule| state.rule_states.get(&rule.id))
    }
}

/// The deterministic id of the alert of `rule`'s episode that started at `start`.
pub fn alert_id(patient_id: &str, rule_id: &str, start: i64) -> String {
    crate::ids::deterministic_id(&["alert", patient_id, rule_id, &time_of(start).to_rfc3339()])
}

/// Drops the oldest resolved alerts past [`REMEMBERED_ALERTS`].
fn forget_old_alerts(raised: &mut Vec<RaisedAlert>) {
    let mut excess = raised.len().saturating_sub(REMEMBERED_ALERTS);
    if excess == 0 {
        return;
    }
    raised.sort_by_key(|r| r.to);
    raised.retain(|r| {
        if excess > 0 && !r.open {
            excess -= 1;
            false
        } else {
            true
        }
    });
}

/// `a == b` for reading ids, looking at the first byte before comparing whole strings:
/// ids of different readings (UUIDs) nearly always differ there, and this runs for every
/// remembered id of every new reading.
pub(super) fn same_id(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.as_bytes().first() == b.as_bytes().first() && a == b
}
