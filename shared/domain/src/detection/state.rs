//! What detection remembers about one patient between invocations ([`PatientState`],
//! stored per patient in DynamoDB), and the small records it is made of. Field names of
//! the records kept in bulk are one letter: they are stored with every save.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::config::Rule;
use super::window::Sample;
use crate::events::Evidence;
use crate::reading::VitalType;

/// A reading accepted but not evaluated in order yet (it waits for the frontier).
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
    /// The device that sent it (shared by the readings of one device in a batch).
    #[serde(rename = "d", default, skip_serializing_if = "str::is_empty")]
    pub device: std::sync::Arc<str>,
    /// When it arrived (Unix ms, ingest's clock).
    #[serde(rename = "r", default)]
    pub received: i64,
}

/// An open alert of the in-order evaluation: the rule's condition holds since `started_at`.
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

/// Progress of one rule in the in-order evaluation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleState {
    pub leaves: Vec<LeafState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub episode: Option<Episode>,
}

/// What one device has shown of the patient's time: its newest reading time, but no later
/// than when that reading arrived, and when it last sent (ingest's clock). Kept while the
/// device sent within the allowed lateness.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DeviceClock {
    #[serde(rename = "p")]
    pub progress: i64,
    #[serde(rename = "s")]
    pub seen: i64,
}

/// An alert this patient has had: the span of reading time its episode is known to cover.
/// Alerts raised on arrival or by a backfill are found again here (so a run of readings is
/// alerted once, whatever order its readings came in) and resolved by the in-order
/// evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RaisedAlert {
    #[serde(rename = "r")]
    pub rule: String,
    #[serde(rename = "a")]
    pub alert_id: String,
    /// Reading time the episode started at (the time in its id).
    #[serde(rename = "f")]
    pub from: i64,
    /// Reading time of its last known holding point.
    #[serde(rename = "u")]
    pub to: i64,
    /// Not resolved yet.
    #[serde(rename = "o", default, skip_serializing_if = "std::ops::Not::not")]
    pub open: bool,
}

/// A rule's condition started to hold: the alert to raise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
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
    /// Processing time at which the engine decided it.
    pub decided_at: DateTime<Utc>,
    /// Set when `detected_at` was already more than the allowed lateness in the past when
    /// the alert was decided: how far, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_by_seconds: Option<f64>,
}

/// A rule's condition stopped holding: the open alert is resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resolution {
    pub alert_id: String,
    pub rule: Rule,
    pub trigger_event_id: String,
    pub correlation_id: String,
    pub episode_start: DateTime<Utc>,
    /// Reading time of the reading that cleared it.
    pub resolved_at: DateTime<Utc>,
}

/// An effect the engine decided and the handler has yet to carry out (append the event,
/// publish it). Kept in the state's outbox until done, so a crash after the state was
/// saved re-sends it instead of losing it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Emit {
    Raise(AlertCandidate),
    Resolve(Resolution),
}

/// Everything detection remembers about one patient (stored per patient in DynamoDB).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PatientState {
    /// Ids of the most recently evaluated readings, oldest first.
    pub recent: RecentIds,
    /// Newest reading time seen (Unix ms), as the devices stamped it.
    pub watermark: Option<i64>,
    /// Newest reading time seen, each no later than its arrival: how far the patient's
    /// readings have really progressed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<i64>,
    /// Readings at or before this time (Unix ms) are final; new ones there are late and
    /// are evaluated by backfill.
    pub frontier: Option<i64>,
    /// Accepted readings not yet evaluated in order, in (time, id) order.
    pub pending: Vec<Pending>,
    /// Late readings (at or before the frontier) waiting to be backfilled together with
    /// the rest of their upload: until they have waited the allowed lateness.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<Pending>,
    /// Evaluated readings per metric (`VitalType::ALL` order), in reading-time order: the
    /// last [`super::engine::TIMELINE_READINGS`] of every metric a rule uses, and as long
    /// as windows need.
    pub history: Vec<VecDeque<Sample>>,
    /// Time of the newest evaluated reading per metric.
    pub last_seen: Vec<Option<i64>>,
    /// The device of the newest evaluated reading per metric (for `missing` rules).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub last_device: Vec<Option<String>>,
    /// Progress per rule id.
    pub rule_states: BTreeMap<String, RuleState>,
    /// Devices that sent within the allowed lateness, by device id.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub devices: BTreeMap<String, DeviceClock>,
    /// The patient's recent alerts, oldest first (at most
    /// [`super::engine::REMEMBERED_ALERTS`], open ones always kept).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub raised: Vec<RaisedAlert>,
    /// Decided effects not yet carried out.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub outbox: Vec<Emit>,
    /// When (Unix ms, processing time) the scheduled sweep must next look at this patient:
    /// pending readings past the allowed lateness, a `missing` deadline, or effects not yet
    /// carried out. `None` when there is nothing to do without new readings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due_at: Option<i64>,
    /// Accepted readings of the hours not yet written to the vitals table (filled and
    /// flushed by `detect`, not by the engine; see [`crate::vitals`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub vitals: Vec<crate::vitals::OpenHour>,
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
