//! The domain of the health alerting pipeline: pure Rust, no AWS types, no async runtime,
//! no logging (its `Cargo.toml` has none of those crates, and `tests/architecture.rs` checks
//! `cargo tree -p domain`).
//!
//! - [`envelope`], [`events`]: the event contracts every message on the wire uses
//!   (published as JSON Schemas in `events/contracts/`).
//! - [`reading`]: vital-sign readings and their validation.
//! - [`detection`]: the per-patient anomaly rules, windows and state.
//! - [`routing`]: who an alert goes to.
//! - [`saga`]: the emergency-dispatch state machine; [`escalation`]: the acknowledgement
//!   timeouts and escalation ladder.
//! - [`dashboard`]: the read models projected from recorded events.
//! - [`recorded`], [`upcast`]: events as the store records them, and upcasting of old
//!   schema versions on read.
//! - [`access`]: who may do what to whose data (the authorization matrix).
//! - [`onboarding`]: the onboarding API's validation, CSV import and roster planning.
//! - [`messages`]: every SMS text, in the recipient's language (template files, segment rule).
//! - [`ack`]: acknowledgement codes health workers reply with by SMS ("ACK 4K7Q2M").
//! - [`ids`], [`timestamp`]: deterministic ids and fast RFC 3339 parsing.

// `#[derive(EventData)]` names the trait `::domain::envelope::EventData`, here too.
extern crate self as domain;

pub mod access;
pub mod ack;
pub mod canary;
pub mod dashboard;
pub mod detection;
pub mod envelope;
pub mod escalation;
pub mod events;
pub mod ids;
pub mod messages;
pub mod notices;
pub mod onboarding;
pub mod reading;
pub mod recorded;
pub mod routing;
pub mod saga;
pub mod strict_json;
pub mod timestamp;
pub mod upcast;
pub mod village_stats;
pub mod vitals;

pub use envelope::Envelope;
