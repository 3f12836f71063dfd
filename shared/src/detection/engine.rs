//! The per-patient detection engine: event-time ordering, allowed lateness, rule
//! episodes (one alert per continuing condition, one resolution when it clears).
//!
//! See `docs/detection.md` for the semantics. In short, per patient:
//!
//! - the *watermark* is the newest reading time seen;
//! - the *frontier* is the reading time up to which readings are final (evaluated, in
//!   order). It is `watermark - allowed lateness`, or, when readings are waiting, the
//!   processing time `now - allowed lateness` (never past the watermark) so a quiet device
//!   does not hold back its last readings;
//! - a new reading at or before the frontier is *late*: reported, never evaluated;
//! - any other reading waits in `pending` until the frontier passes it, then is evaluated
//!   in (reading time, event id) order.

use std::cmp::Ordering;
use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::config::{Condition, ConfigError, Direction, Rule, RulesConfig, WindowKind};
use super::window::{Sample, aggregate_range, bucket_start, samples_in};
use crate::events::Evidence;
use crate::ids::deterministic_id;
use crate::reading::{Reading, VitalType};

/// How many evaluated reading ids a patient's state remembers to recognise redeliveries.
pub const REMEMBERED_READINGS: usize = 64;
/// The most readings kept as evidence of one window condition.
pub const MAX_WINDOW_EVIDENCE: usize = 20;

const METRICS: usize = VitalType::ALL.len();

fn metric_index(vital: VitalType) -> usize {
    match vital {
        VitalType::HeartRate => 0,
        VitalType::Spo2 => 1,
        VitalType::Temperature => 2,
        VitalType::SystolicBp => 3,
        VitalType::DiastolicBp => 4,
    }
}

fn secs_ms(seconds: u64) -> i64 {
    i64::try_from(seconds.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// Unix milliseconds to a timestamp (readings are validated, so this is always in range).
pub fn time_of(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// A validated rules configuration, ready to evaluate.
#[derive(Debug, Clone)]
pub struct RuleSet {
    config: RulesConfig,
    /// `(rule id, index in config.rules)`, sorted by id: finds a stored rule state's rule.
    by_id: Vec<(String, usize)>,
    lateness_ms: i64,
    /// How long evaluated readings of each metric are kept for windows.
    retention_ms: [i64; METRICS],
}

impl RuleSet {
    pub fn new(config: RulesConfig) -> Result<RuleSet, ConfigError> {
        config.validate()?;
        let mut retention_ms = [0i64; METRICS];
        for rule in &config.rules {
            for leaf in rule.condition.leaves() {
                let (metric, span) = match leaf {
                    Condition::Window {
                        metric,
                        window: WindowKind::Sliding,
                        seconds,
                        ..
                    } => (*metric, secs_ms(*seconds)),
                    Condition::Window {
                        metric,
                        window: WindowKind::Tumbling,
                        seconds,
                        ..
                    } => (*metric, secs_ms(*seconds).saturating_mul(2)),
                    Condition::RateOfChange {
                        metric,
                        within_seconds,
                        ..
                    } => (*metric, secs_ms(*within_seconds)),
                    Condition::Missing { metric, .. } => (*metric, 1),
                    _ => continue,
                };
                let slot = &mut retention_ms[metric_index(metric)];
                *slot = (*slot).max(span);
            }
        }
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

/// A reading waiting for the frontier to pass it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    #[serde(rename = "i")]
    pub id: String,
    #[serde(rename = "t")]
    pub at: i64,
    #[serde(rename = "v")]
    pub value: f64,
    #[serde(rename = "m")]
    pub metric: VitalType,
    /// Correlation id of the reading, carried by the alerts it triggers.
    #[serde(rename = "c")]
    pub correlation_id: String,
}

/// An open alert: the rule's condition holds since `started_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Episode {
    pub alert_id: String,
    pub started_at: i64,
}

/// Progress of one leaf condition of a rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeafState {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub active: bool,
    /// When the current active spell began (the episode key of single-condition rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<i64>,
    /// `consecutive`: length of the current run of matching readings.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub run: u32,
    /// `tumbling`: start of the open bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<i64>,
    /// The readings that made it hold (`consecutive`: the first `count` of the run).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<Evidence>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Progress of one rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleState {
    pub leaves: Vec<LeafState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub episode: Option<Episode>,
}

/// Everything detection remembers about one patient (stored per patient in DynamoDB).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PatientState {
    /// Ids of the most recently evaluated readings, oldest first.
    pub recent: RecentIds,
    /// Newest reading time seen (Unix ms).
    pub watermark: Option<i64>,
    /// Readings at or before this time (Unix ms) are final; new ones there are late.
    pub frontier: Option<i64>,
    /// Accepted readings not yet evaluated, in (time, id) order.
    pub pending: Vec<Pending>,
    /// Evaluated readings per metric (`VitalType::ALL` order), as long as windows need.
    pub history: Vec<VecDeque<Sample>>,
    /// Time of the newest evaluated reading per metric.
    pub last_seen: Vec<Option<i64>>,
    /// Progress per rule id.
    pub rule_states: BTreeMap<String, RuleState>,
    /// When (Unix ms, processing time) the scheduled sweep must next look at this patient:
    /// pending readings past the allowed lateness, a `missing` deadline, or alerts not yet
    /// emitted. `None` when there is nothing to do without new readings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due_at: Option<i64>,
}

/// How many shards the sweep's index of due states is split into, so that no single
/// index partition takes every due patient's write.
pub const DUE_SHARDS: u32 = 16;

/// The sweep shard of a patient (a stable FNV-1a hash of the id).
pub fn due_shard(patient_id: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in patient_id.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % DUE_SHARDS
}

/// The ids of the most recently evaluated readings, oldest first: stored (and compared
/// with `==`) as a plain list of ids. In memory, the first eight bytes of each id are also
/// kept side by side, so checking a new reading against all of them reads a few cache
/// lines instead of one heap block per id.
#[derive(Debug, Clone, Default)]
pub struct RecentIds {
    ids: VecDeque<String>,
    /// `head(id)` of each id, in the same order.
    heads: VecDeque<u64>,
}

/// The first eight bytes of an id (zero-padded), as a number.
fn head(id: &str) -> u64 {
    let mut bytes = [0u8; 8];
    match id.as_bytes().get(..8) {
        Some(first) => bytes.copy_from_slice(first),
        None => {
            for (b, c) in bytes.iter_mut().zip(id.bytes()) {
                *b = c;
            }
        }
    }
    u64::from_le_bytes(bytes)
}

impl RecentIds {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.ids.iter().map(String::as_str)
    }

    pub fn contains(&self, id: &str) -> bool {
        let h = head(id);
        self.heads
            .iter()
            .enumerate()
            .filter(|&(_, &other)| other == h)
            .any(|(i, _)| self.ids.get(i).is_some_and(|other| other == id))
    }

    pub fn push_back(&mut self, id: String) {
        self.heads.push_back(head(&id));
        self.ids.push_back(id);
    }

    pub fn pop_front(&mut self) -> Option<String> {
        self.heads.pop_front();
        self.ids.pop_front()
    }
}

impl PartialEq for RecentIds {
    fn eq(&self, other: &Self) -> bool {
        // `heads` follows from `ids`.
        self.ids == other.ids
    }
}

impl<S: Into<String>> FromIterator<S> for RecentIds {
    fn from_iter<I: IntoIterator<Item = S>>(ids: I) -> Self {
        let mut recent = RecentIds::default();
        for id in ids {
            recent.push_back(id.into());
        }
        recent
    }
}

impl Serialize for RecentIds {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.ids.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RecentIds {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        VecDeque::<String>::deserialize(deserializer).map(RecentIds::from_iter)
    }
}

/// One reading handed to the engine.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub event_id: &'a str,
    pub correlation_id: &'a str,
    pub reading: &'a Reading,
}

/// What the engine reads of each reading handed to it: [`Input`], or a caller's own view
/// of a decoded record (so the caller need not build a [`Reading`]).
pub trait ReadingInput {
    /// The reading's event id (its identity: redeliveries carry the same).
    fn event_id(&self) -> &str;
    /// Carried by the alerts the reading triggers.
    fn correlation_id(&self) -> &str;
    fn vital(&self) -> VitalType;
    fn value(&self) -> f64;
    /// Reading time.
    fn timestamp(&self) -> DateTime<Utc>;
}

impl ReadingInput for Input<'_> {
    fn event_id(&self) -> &str {
        self.event_id
    }
    fn correlation_id(&self) -> &str {
        self.correlation_id
    }
    fn vital(&self) -> VitalType {
        self.reading.vital
    }
    fn value(&self) -> f64 {
        self.reading.value
    }
    fn timestamp(&self) -> DateTime<Utc> {
        self.reading.timestamp
    }
}

/// A rule's condition started to hold: the alert to raise.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertCandidate {
    /// Deterministic: patient, rule, start of the episode.
    pub alert_id: String,
    pub rule: Rule,
    pub evidence: Vec<Evidence>,
    /// Event id of the reading that completed the condition.
    pub trigger_event_id: String,
    pub correlation_id: String,
    /// Reading time of the trigger.
    pub detected_at: DateTime<Utc>,
    pub episode_start: DateTime<Utc>,
}

/// A rule's condition stopped holding: the open alert is resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolution {
    pub alert_id: String,
    pub rule: Rule,
    pub trigger_event_id: String,
    pub correlation_id: String,
    pub episode_start: DateTime<Utc>,
    /// Reading time of the reading that cleared it.
    pub resolved_at: DateTime<Utc>,
}

/// A reading that arrived after the frontier had passed its time.
#[derive(Debug, Clone, PartialEq)]
pub struct LateReading {
    pub event_id: String,
    pub correlation_id: String,
    pub vital: VitalType,
    pub value: f64,
    pub timestamp: DateTime<Utc>,
    pub frontier: DateTime<Utc>,
}

/// What applying a patient's readings did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    pub alerts: Vec<AlertCandidate>,
    pub resolutions: Vec<Resolution>,
    /// Readings already seen (redelivery): ignored.
    pub duplicates: Vec<String>,
    /// Readings beyond the allowed lateness: reported, not evaluated.
    pub late: Vec<LateReading>,
    /// Readings evaluated now.
    pub evaluated: usize,
    /// Readings still waiting for the frontier.
    pub pending: usize,
    /// Whether the state changed and must be saved.
    pub changed: bool,
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
        let mut out = Outcome::default();
        let before = (state.frontier, state.pending.len());

        for input in inputs {
            let timestamp = input.timestamp();
            let at = timestamp.timestamp_millis();
            let id = input.event_id();
            if state.recent.contains(id) || state.pending.iter().any(|p| same_id(&p.id, id)) {
                out.duplicates.push(id.to_string());
                continue;
            }
            if let Some(frontier) = state.frontier
                && at <= frontier
            {
                out.late.push(LateReading {
                    event_id: id.to_string(),
                    correlation_id: input.correlation_id().to_string(),
                    vital: input.vital(),
                    value: input.value(),
                    timestamp,
                    frontier: time_of(frontier),
                });
                continue;
            }
            state.pending.push(Pending {
                id: id.to_string(),
                at,
                value: input.value(),
                metric: input.vital(),
                correlation_id: input.correlation_id().to_string(),
            });
            state.watermark = Some(state.watermark.map_or(at, |w| w.max(at)));
        }

        if let (Some(watermark), false) = (state.watermark, state.pending.is_empty()) {
            let by_event_time = watermark.saturating_sub(self.lateness_ms);
            let by_processing_time = now
                .timestamp_millis()
                .saturating_sub(self.lateness_ms)
                .min(watermark);
            let target = by_event_time.max(by_processing_time);
            if state.frontier.is_none_or(|f| target > f) {
                state.frontier = Some(target);
            }
        }

        if let Some(frontier) = state.frontier {
            state
                .pending
                .sort_unstable_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
            let ready = state.pending.partition_point(|p| p.at <= frontier);
            if ready > 0 {
                let evaluated: Vec<Pending> = state.pending.drain(..ready).collect();
                out.evaluated = evaluated.len();
                if state.history.len() != METRICS {
                    state.history.resize_with(METRICS, VecDeque::new);
                }
                if state.last_seen.len() != METRICS {
                    state.last_seen.resize(METRICS, None);
                }
                let PatientState {
                    recent,
                    history,
                    last_seen,
                    rule_states,
                    ..
                } = state;
                let mut rule_states = self.rule_states(rule_states);
                let mut patient = Patient {
                    id: patient_id,
                    recent,
                    history,
                    last_seen,
                    rule_states: &mut rule_states,
                };
                for reading in evaluated {
                    self.step(&mut patient, reading, &mut out);
                }
            }
        }
        out.pending = state.pending.len();
        out.changed = (state.frontier, state.pending.len()) != before || out.evaluated > 0;
        out
    }

    /// Each rule's state, in rule order (created for rules that have none yet): one walk
    /// over the stored states per batch instead of two map lookups per rule per reading.
    fn rule_states<'s>(
        &self,
        stored: &'s mut BTreeMap<String, RuleState>,
    ) -> Vec<Option<&'s mut RuleState>> {
        if !self.has_every_rule(stored) {
            for rule in &self.config.rules {
                if !stored.contains_key(&rule.id) {
                    stored.insert(rule.id.clone(), RuleState::default());
                }
            }
        }
        self.rule_states_in(stored)
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

    /// The stored state of each rule, in rule order, where there is one. Both the map and
    /// `by_id` are sorted by id, so they are merged in one pass; states of rules no longer
    /// configured are skipped, and kept.
    fn rule_states_in<'s>(
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

    /// Evaluates one reading, in order, against every rule.
    fn step(&self, p: &mut Patient<'_, '_>, r: Pending, out: &mut Outcome) {
        let m = metric_index(r.metric);
        if self.retention_ms[m] > 0 {
            p.history[m].push_back(Sample {
                id: r.id.clone(),
                at: r.at,
                value: r.value,
            });
        }

        for (rule, slot) in self.config.rules.iter().zip(p.rule_states.iter_mut()) {
            let leaves = rule.condition.leaves();
            let Some(rs) = slot.as_deref_mut() else {
                continue;
            };
            if rs.leaves.len() != leaves.len() {
                rs.leaves = vec![LeafState::default(); leaves.len()];
            }
            for (leaf, ls) in leaves.iter().zip(rs.leaves.iter_mut()) {
                step_leaf(leaf, ls, &r, p.history, p.last_seen);
            }
            let holds = rs.leaves.iter().all(|l| l.active);
            let open = rs.episode.is_some();
            if holds && !open {
                let started_at = match rs.leaves.as_slice() {
                    [only] => only.since.unwrap_or(r.at),
                    _ => r.at,
                };
                let alert_id =
                    deterministic_id(&["alert", p.id, &rule.id, &time_of(started_at).to_rfc3339()]);
                out.alerts.push(AlertCandidate {
                    alert_id: alert_id.clone(),
                    rule: rule.clone(),
                    evidence: rs.leaves.iter().flat_map(|l| l.evidence.clone()).collect(),
                    trigger_event_id: r.id.clone(),
                    correlation_id: r.correlation_id.clone(),
                    detected_at: time_of(r.at),
                    episode_start: time_of(started_at),
                });
                rs.episode = Some(Episode {
                    alert_id,
                    started_at,
                });
            } else if !holds && let Some(episode) = rs.episode.take() {
                out.resolutions.push(Resolution {
                    alert_id: episode.alert_id,
                    rule: rule.clone(),
                    trigger_event_id: r.id.clone(),
                    correlation_id: r.correlation_id.clone(),
                    episode_start: time_of(episode.started_at),
                    resolved_at: time_of(r.at),
                });
            }
        }

        p.last_seen[m] = Some(r.at);
        let keep_from = r.at.saturating_sub(self.retention_ms[m]);
        let history = &mut p.history[m];
        while history.front().is_some_and(|s| s.at < keep_from) {
            history.pop_front();
        }
        p.recent.push_back(r.id);
        while p.recent.len() > REMEMBERED_READINGS {
            p.recent.pop_front();
        }
    }
}

/// What [`RuleSet::step`] works on: one patient's state, split so each rule's state is at
/// hand in rule order.
struct Patient<'p, 's> {
    id: &'p str,
    recent: &'s mut RecentIds,
    history: &'s mut [VecDeque<Sample>],
    last_seen: &'s mut [Option<i64>],
    rule_states: &'p mut [Option<&'s mut RuleState>],
}

/// `a == b` for reading ids, looking at the first byte before comparing whole strings:
/// ids of different readings (UUIDs) nearly always differ there, and this runs for every
/// remembered id of every new reading.
fn same_id(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.as_bytes().first() == b.as_bytes().first() && a == b
}

fn evidence_of(metric: VitalType, s: &Sample) -> Evidence {
    Evidence {
        reading_event_id: s.id.clone(),
        vital: metric,
        value: s.value,
        timestamp: time_of(s.at),
    }
}

fn reading_evidence(r: &Pending) -> Evidence {
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

fn step_leaf(
    leaf: &Condition,
    ls: &mut LeafState,
    r: &Pending,
    history: &[VecDeque<Sample>],
    last_seen: &[Option<i64>],
) {
    match *leaf {
        Condition::Threshold { metric, op, value } => {
            if r.metric == metric {
                set(ls, op.holds(r.value, value), r.at, || {
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
            if r.metric != metric {
                return;
            }
            if op.holds(r.value, value) {
                if ls.run == 0 {
                    ls.since = Some(r.at);
                    ls.evidence.clear();
                }
                ls.run = ls.run.saturating_add(1);
                if ls.evidence.len() < count as usize {
                    ls.evidence.push(reading_evidence(r));
                }
                ls.active = ls.run >= count;
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
            if r.metric != metric {
                return;
            }
            let h = &history[metric_index(metric)];
            let from = r.at.saturating_sub(secs_ms(seconds)).saturating_add(1);
            let acc = aggregate_range(h, from, r.at.saturating_add(1));
            let holds = acc.value(aggregate).is_some_and(|a| op.holds(a, value));
            set(ls, holds, r.at, || {
                samples_in(h, from, r.at.saturating_add(1), MAX_WINDOW_EVIDENCE)
                    .into_iter()
                    .map(|s| evidence_of(metric, s))
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
            let size = secs_ms(seconds);
            let bucket = bucket_start(r.at, size);
            match ls.bucket {
                Some(open) if bucket > open => {
                    let h = &history[metric_index(metric)];
                    let end = open.saturating_add(size);
                    let acc = aggregate_range(h, open, end);
                    let holds = acc.value(aggregate).is_some_and(|a| op.holds(a, value));
                    set(ls, holds, open, || {
                        samples_in(h, open, end, MAX_WINDOW_EVIDENCE)
                            .into_iter()
                            .map(|s| evidence_of(metric, s))
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
            if r.metric != metric {
                return;
            }
            let h = &history[metric_index(metric)];
            let from = r.at.saturating_sub(secs_ms(within_seconds));
            // Earlier readings in the span: everything before this reading's own sample.
            let earlier = h.iter().rev().skip(1).take_while(|s| s.at >= from);
            let extreme = match direction {
                Direction::Drop => earlier.max_by(|a, b| a.value.total_cmp(&b.value)),
                Direction::Rise => earlier.min_by(|a, b| a.value.total_cmp(&b.value)),
            };
            let holds = extreme.is_some_and(|e| match direction {
                Direction::Drop => e.value - r.value > amount,
                Direction::Rise => r.value - e.value > amount,
            });
            set(ls, holds, r.at, || {
                extreme
                    .map(|e| evidence_of(metric, e))
                    .into_iter()
                    .chain([reading_evidence(r)])
                    .collect()
            });
        }
        Condition::Missing {
            metric,
            after_seconds,
        } => {
            let m = metric_index(metric);
            if r.metric == metric {
                set(ls, false, r.at, Vec::new);
                return;
            }
            let Some(last) = last_seen.get(m).copied().flatten() else {
                return;
            };
            let holds = r.at.saturating_sub(last) > secs_ms(after_seconds);
            set(ls, holds, last, || {
                history[m]
                    .back()
                    .filter(|s| s.at == last)
                    .map(|s| evidence_of(metric, s))
                    .into_iter()
                    .chain([reading_evidence(r)])
                    .collect()
            });
        }
        Condition::AllOf { .. } => {}
    }
}
