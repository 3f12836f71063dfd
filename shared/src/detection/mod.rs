//! Per-patient anomaly detection: pure Rust, no AWS types, no I/O.
//!
//! - [`config`]: the versioned rules file (YAML or JSON) and its validation;
//! - [`engine`]: the per-patient state and the event-time engine (ordering, allowed
//!   lateness, one alert per episode, resolutions, deterministic alert ids);
//! - [`window`]: reading history and window aggregates.
//!
//! Semantics are documented in `docs/detection.md`.

pub mod config;
pub mod engine;
pub mod window;

pub use config::{
    Aggregate, Comparison, Condition, ConfigError, Direction, Rule, RulesConfig, WindowKind,
};
pub use engine::{
    AlertCandidate, DUE_SHARDS, Input, LateReading, Outcome, PatientState, REMEMBERED_READINGS,
    ReadingInput, RecentIds, Resolution, RuleSet, due_shard,
};

#[cfg(test)]
mod tests;
