//! What the engine takes and gives: the readings handed to it ([`Input`], or any
//! [`ReadingInput`]) and what applying them did ([`Outcome`]).

use chrono::{DateTime, Utc};

use super::engine::{AlertCandidate, Resolution};
use super::state::Emit;
use crate::reading::{Reading, VitalType};

/// One reading handed to the engine.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub event_id: &'a str,
    pub correlation_id: &'a str,
    pub reading: &'a Reading,
    /// When it arrived (ingest's clock); `None` = at its own time.
    pub received_at: Option<DateTime<Utc>>,
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
    /// The device that took it.
    fn device_id(&self) -> &str;
    /// When the pipeline received it (ingest's clock, not the device's).
    fn received_at(&self) -> DateTime<Utc>;
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
    fn device_id(&self) -> &str {
        &self.reading.device_id
    }
    fn received_at(&self) -> DateTime<Utc> {
        self.received_at.unwrap_or(self.reading.timestamp)
    }
}

/// A reading that arrived after the frontier had passed its time: evaluated by backfill.
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
    /// Readings beyond the allowed lateness: evaluated by backfill.
    pub late: Vec<LateReading>,
    /// Readings evaluated in order now.
    pub evaluated: usize,
    /// Readings still waiting for the frontier.
    pub pending: usize,
    /// Whether the state changed and must be saved.
    pub changed: bool,
}

impl Outcome {
    /// The effects to carry out, in the order they were decided per kind: alerts first.
    pub fn emits(&self) -> impl Iterator<Item = Emit> + '_ {
        self.alerts
            .iter()
            .cloned()
            .map(Emit::Raise)
            .chain(self.resolutions.iter().cloned().map(Emit::Resolve))
    }
}
