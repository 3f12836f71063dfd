//! Per-patient anomaly detection: pure Rust, no AWS types, no I/O.
//!
//! - [`config`]: the versioned rules file (YAML or JSON) and its validation;
//! - [`engine`]: the engine's entry point ([`RuleSet::apply`]), rule modes, ids;
//! - [`state`]: what is remembered per patient ([`PatientState`]);
//! - [`progress`]: device clocks, the patient's progress and the frontier;
//! - [`arrival`]: rules evaluated on arrival (thresholds);
//! - [`ordered`]: the in-order evaluation, and `missing` rules by the clock;
//! - [`backfill`]: late readings evaluated against the kept history;
//! - [`window`]: reading history and window aggregates;
//! - [`snapshot`]: the state persisted per stream shard (buckets, watermark).
//!
//! Semantics are documented in `docs/detection.md`.

mod arrival;
mod backfill;
pub mod config;
pub mod engine;
mod input;
mod ordered;
mod progress;
pub mod snapshot;
pub mod state;
pub mod window;

pub use config::{
    Aggregate, Comparison, Condition, ConfigError, Direction, Rule, RulesConfig, WindowKind,
};
pub use engine::{
    AlertCandidate, DUE_QUANTUM_MS, HISTORY_SAMPLE_BUDGET, Input, LateReading, Mode, Outcome,
    REMEMBERED_READINGS, ReadingInput, Resolution, RuleSet, STATE_BYTES_BOUND, TIMELINE_READINGS,
    alert_id,
};
pub use state::{DeviceClock, Emit, PatientState, RaisedAlert, RecentIds};

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

#[cfg(test)]
mod tests;
