//! Shared library of the health alerting pipeline.
//!
//! Layout (hexagonal):
//! - [`envelope`], [`events`]: the event contracts every message on the wire uses.
//! - [`reading`], [`detection`], [`routing`], [`saga`], [`escalation`], [`dashboard`]: pure
//!   domain logic (rules, windows, the saga state machine, read-model projections), no AWS
//!   types.
//! - [`ports`]: the small traits handlers depend on.
//! - [`aws`]: adapters implementing the ports with the AWS SDK (honours `AWS_ENDPOINT_URL`).
//! - [`memory`]: in-memory adapters for handler unit tests.
//! - [`event_store`]: the event store contract (streams, expected versions, `read_all`,
//!   upcasters); [`idempotency`]: the per-record idempotency guard; [`batch`]: partial batch
//!   responses for SQS, Kinesis and DynamoDB streams.
//! - [`timestamp`]: the RFC 3339 parsing of event timestamps (a fast path for the form
//!   chrono writes).
//! - [`telemetry`], [`metrics`], [`config`]: structured logging, CloudWatch EMF metrics and
//!   environment configuration.

pub mod ambulance;
pub mod aws;
pub mod batch;
pub mod config;
pub mod dashboard;
pub mod detection;
pub mod envelope;
pub mod escalation;
pub mod event_store;
pub mod events;
pub mod idempotency;
pub mod ids;
pub mod memory;
pub mod metrics;
pub mod ports;
pub mod reading;
pub mod retry;
pub mod routing;
pub mod saga;
pub mod telemetry;
pub mod timestamp;

pub use envelope::Envelope;
