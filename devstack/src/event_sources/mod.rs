//! Lambda's event source mappings for Kinesis streams, DynamoDB streams and SQS queues,
//! played locally.
//!
//! - `mapping`: a function's `Kinesis`, `DynamoDB` or `SQS` event, read from the template;
//! - `filter`: `FilterCriteria` (DynamoDB streams);
//! - `payload`: the event JSON a function receives, and the OnFailure record;
//! - `verdict`: what a function's response means for the batch;
//! - `stream_reader` and `stream_poller`: Kinesis and DynamoDB stream shards;
//! - `sqs_poller`: SQS queues.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;

mod filter;
mod mapping;
mod payload;
mod sqs_poller;
mod stream_poller;
pub(crate) mod stream_reader;
mod verdict;

pub use filter::filter_matches;
pub use mapping::{EventSourceMapping, SourceKind};
pub use payload::{RecordBody, StreamRecord, sqs_event, stream_event, stream_failure_record};
pub use sqs_poller::{batch_trace_header, start_sqs};
pub use stream_poller::start_stream;
pub use stream_reader::stream_name_from_arn;
pub use verdict::{BatchVerdict, classify};

/// Pause after a failed emulator call before trying again.
pub(crate) const ERROR_PAUSE: Duration = Duration::from_secs(1);

/// A running poller, for `Stack::wait_idle` and shutdown.
#[derive(Debug)]
pub struct Poller {
    /// e.g. "kinesis:ReadingsStream -> DetectFunction".
    pub description: String,
    /// For SQS pollers, the queue URL (idleness also needs the queue to be empty).
    pub queue_url: Option<String>,
    /// The queue holds long timers: its delayed messages are not work in flight.
    pub long_timers: bool,
    /// One flag per task (shard): true when the task has nothing in flight and has caught up.
    idle: Vec<(String, Arc<AtomicBool>)>,
    tasks: Vec<JoinHandle<()>>,
}

impl Poller {
    /// Names of the poller's tasks that are not idle.
    pub fn busy_parts(&self) -> Vec<String> {
        self.idle
            .iter()
            .filter(|(_, idle)| !idle.load(Ordering::SeqCst))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Stops the poller's tasks.
    pub fn abort(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }

    /// Stops the poller's tasks and waits for them to end.
    pub async fn shutdown(mut self) {
        self.abort();
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.abort();
    }
}

/// Shared by every poller of a stack.
#[derive(Clone, Debug)]
pub struct PollerContext {
    /// Kinesis client of the emulator.
    pub kinesis: aws_sdk_kinesis::Client,
    /// SQS client of the emulator.
    pub sqs: aws_sdk_sqs::Client,
    /// DynamoDB Streams client of the emulator.
    pub dynamodb_streams: aws_sdk_dynamodbstreams::Client,
    /// Emulator account id (for invokeIdentityArn).
    pub account_id: String,
    /// Bumped whenever a poller sees records (for `Stack::wait_idle`).
    pub activity: Arc<AtomicU64>,
    /// Local speed knob: visibility timeout applied to SQS messages that failed.
    pub sqs_retry_delay: Option<Duration>,
}

#[cfg(test)]
mod tests;
