//! devstack: runs this project's serverless stack locally.
//!
//! It starts moto server (or attaches to a running emulator such as LocalStack), creates the
//! resources of `infra/template.yaml` in it through the AWS APIs, runs the real compiled
//! function binaries as child processes behind an in-process Lambda Runtime API, and plays
//! the part of Lambda's event source mappings (Kinesis, DynamoDB stream and SQS pollers), of
//! EventBridge schedules and of API Gateway's HTTP API.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use devstack::{Stack, StackConfig};
//! let stack = Stack::start(StackConfig::for_workspace(std::path::Path::new("."))).await?;
//! let url = format!("{}/readings", stack.api_url());
//! # let _ = url;
//! stack.wait_idle(std::time::Duration::from_secs(30)).await?;
//! stack.shutdown().await?;
//! # Ok(()) }
//! ```

pub mod archive;
pub mod auth;
pub mod emulator;
pub mod event_sources;
mod function_events;
pub mod http_api;
pub mod inspect;
pub mod lambda;
pub mod lambda_api;
pub mod metrics;
pub mod provision;
pub mod proxy;
pub mod replay;
pub mod request_log;
pub mod s3;
pub mod schedule;
pub mod stack;
pub mod template;
pub mod trace;

pub use auth::TokenSpec;
pub use lambda::{InvocationRecord, InvokeOutcome};
pub use metrics::{MetricAggregate, MetricTotals};
pub use provision::Resource;
pub use stack::{Stack, StackConfig};

#[cfg(test)]
mod smoke_tests;
