//! The application layer: what handlers depend on, with no AWS types.
//!
//! - [`ports`]: the small traits the handlers call (AWS adapters in `aws-adapters`,
//!   in-memory ones in `testkit`).
//! - [`event_store`]: the event store contract (streams, expected versions, `read_all`),
//!   reading recorded events through the domain's upcasters.
//! - [`idempotency`]: the per-record idempotency guard (Powertools' design).
//! - [`access`]: reads the directory facts a request's authorization needs and decides.
//! - [`ack_codes`]: gives an alert or emergency its acknowledgement code (registered first).
//! - [`retry`]: retries with backoff for partial batch writes.
//! - [`shard_state`]: detection state per stream shard (snapshot store, stream replay).
//! - [`views`]: the query API's port to the dashboard table's indexes.

pub mod access;
pub mod ack_codes;
pub mod event_store;
pub mod idempotency;
pub mod ports;
pub mod retry;
pub mod shard_state;
pub mod views;
pub mod vitals;
