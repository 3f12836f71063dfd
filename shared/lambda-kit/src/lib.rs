//! Lambda plumbing any Rust function can reuse, with nothing of this project's domain in
//! it: a small Powertools for Rust.
//!
//! - [`run`]: the entry helper every `main.rs` calls (JSON logs, one span and one metrics
//!   recorder per invocation, typed errors logged and reported to Lambda).
//! - [`http`]: API Gateway (HTTP API) request and response glue: body decoding,
//!   correlation ids, JSON errors.
//! - [`batch`]: partial batch responses for SQS, Kinesis and DynamoDB stream events.
//! - [`metrics`]: CloudWatch metrics in the embedded metric format (EMF).
//! - [`telemetry`]: structured JSON logs with the request id and cold-start flag.
//! - [`config`]: required and parsed environment variables.
//! - [`fault`]: crash points that abort the process between two side effects (tests).

pub mod batch;
pub mod config;
pub mod fault;
pub mod http;
pub mod metrics;
mod run;
pub mod telemetry;

pub use run::{Context, Error, Invocation, error_chain, run};
