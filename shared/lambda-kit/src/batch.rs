//! Batch processing with partial batch responses (`ReportBatchItemFailures`), like
//! Powertools' batch utility:
//!
//! - [`sqs_standard`]: standard SQS queue; records run concurrently (up to a limit) and each
//!   failed one is reported by message id.
//! - [`sqs_fifo`]: FIFO queue; records run in order, and once a record of a message group
//!   fails, the group's later records are not processed and are reported too (order within
//!   the group is kept); other groups go on.
//! - [`kinesis`] and [`dynamodb_stream`]: records run in order and processing stops at the
//!   first failure, which is reported by sequence number; Lambda checkpoints before it and
//!   retries from it (order per shard is kept).
//!
//! A panic while processing a record is caught and reported as that record's failure. When
//! every record fails, the response reports them all (Lambda retries the whole batch) and
//! an error is logged. A record that cannot be identified (no message id / sequence
//! number) fails the whole batch, since it could not be reported alone.
//!
//! Fault injection: when the environment variable [`FAULT_INJECTION_PANIC_ON`] is set (not
//! in the template; tests and chaos experiments set it), a record whose payload contains
//! its value panics while being processed, inside the same guard as the handler's own
//! code. It exercises the panic path end to end, through a real handler and runtime.

use std::borrow::Cow;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::OnceLock;

use aws_lambda_events::event::dynamodb::EventRecord as DynamoDbRecord;
use aws_lambda_events::event::kinesis::KinesisEventRecord;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsMessage};
use aws_lambda_events::event::streams::{
    DynamoDbBatchItemFailure, DynamoDbEventResponse, KinesisEventResponse,
};
use futures::{FutureExt, StreamExt};

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("an SQS message has no messageId; failing the whole batch")]
    MissingMessageId,
    #[error("a stream record has no sequence number; failing the whole batch")]
    MissingSequenceNumber,
}

/// A message's body as bytes (an absent body is empty).
pub fn body(message: &SqsMessage) -> &[u8] {
    message.body.as_deref().unwrap_or_default().as_bytes()
}

/// Environment variable naming the fault-injection marker (see the module docs).
pub const FAULT_INJECTION_PANIC_ON: &str = "FAULT_INJECTION_PANIC_ON";

/// A record's payload, searched for the fault-injection marker.
trait Payload {
    fn payload(&self) -> Cow<'_, [u8]>;
}

impl Payload for SqsMessage {
    fn payload(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(body(self))
    }
}

impl Payload for KinesisEventRecord {
    fn payload(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.kinesis.data.0)
    }
}

impl Payload for DynamoDbRecord {
    fn payload(&self) -> Cow<'_, [u8]> {
        Cow::Owned(serde_json::to_vec(&self.change.new_image).unwrap_or_default())
    }
}

/// The fault-injection marker, read once from the environment.
fn fault_marker() -> Option<&'static str> {
    static MARKER: OnceLock<Option<String>> = OnceLock::new();
    MARKER
        .get_or_init(|| {
            let marker = std::env::var(FAULT_INJECTION_PANIC_ON)
                .ok()
                .filter(|m| !m.is_empty());
            if let Some(marker) = &marker {
                tracing::warn!(
                    marker,
                    "fault injection is on: records containing the marker panic"
                );
            }
            marker
        })
        .as_deref()
}

/// Panics when `marker` is set and occurs in `payload`.
fn inject_fault(marker: Option<&str>, payload: &[u8]) {
    if let Some(marker) = marker
        && !marker.is_empty()
        && payload
            .windows(marker.len())
            .any(|window| window == marker.as_bytes())
    {
        panic!("fault injected: the record contains the {FAULT_INJECTION_PANIC_ON} marker");
    }
}

/// Runs one record's future, turning a panic (while building or running it) into an error.
async fn guarded<R, F, Fut, E>(record: &R, process: F) -> Result<(), String>
where
    R: Payload,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let start = || {
        if let Some(marker) = fault_marker() {
            inject_fault(Some(marker), &record.payload());
        }
        process()
    };
    let future = match std::panic::catch_unwind(AssertUnwindSafe(start)) {
        Ok(future) => future,
        Err(panic) => return Err(panic_text(panic.as_ref())),
    };
    match AssertUnwindSafe(future).catch_unwind().await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(err.to_string()),
        Err(panic) => Err(panic_text(panic.as_ref())),
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_string());
    format!("panicked: {message}")
}

/// Logs the outcome and counts the failures (`BatchItemFailures` metric).
fn log_summary(kind: &str, total: usize, failed: usize) {
    crate::metrics::count(crate::metrics::BATCH_ITEM_FAILURES, failed);
    if total > 0 && failed == total {
        tracing::error!(kind, total, "every record of the batch failed");
    } else if failed > 0 {
        tracing::warn!(kind, total, failed, "partial batch failure");
    }
}

fn sqs_response(ids: Vec<String>) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for id in ids {
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = id;
        response.batch_item_failures.push(failure);
    }
    response
}

/// Standard SQS: processes up to `concurrency` messages at a time and reports each failed
/// one. Failures are reported in batch order.
pub async fn sqs_standard<'a, F, Fut, E>(
    messages: &'a [SqsMessage],
    concurrency: usize,
    process: F,
) -> Result<SqsBatchResponse, BatchError>
where
    F: Fn(&'a SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut ids = Vec::with_capacity(messages.len());
    for message in messages {
        ids.push(
            message
                .message_id
                .as_deref()
                .ok_or(BatchError::MissingMessageId)?,
        );
    }
    let process = &process;
    let results: Vec<(usize, Result<(), String>)> =
        futures::stream::iter(messages.iter().enumerate())
            .map(|(i, m)| async move { (i, guarded(m, || process(m)).await) })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
    let mut failed: Vec<usize> = Vec::new();
    for (i, result) in results {
        if let Err(err) = result {
            tracing::error!(message_id = ids[i], error = %err, "message failed; it will be retried");
            failed.push(i);
        }
    }
    failed.sort_unstable();
    log_summary("sqs", messages.len(), failed.len());
    Ok(sqs_response(
        failed.into_iter().map(|i| ids[i].to_string()).collect(),
    ))
}

/// Standard SQS, one message at a time in batch order.
pub async fn process_sqs<'a, F, Fut, E>(
    messages: &'a [SqsMessage],
    process: F,
) -> Result<SqsBatchResponse, BatchError>
where
    F: Fn(&'a SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    sqs_standard(messages, 1, process).await
}

/// SQS FIFO: in order; after a failure in a message group, the group's later messages are
/// skipped and reported (so they are retried after it, in order). Other groups go on.
pub async fn sqs_fifo<'a, F, Fut, E>(
    messages: &'a [SqsMessage],
    process: F,
) -> Result<SqsBatchResponse, BatchError>
where
    F: Fn(&'a SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut failed_groups: Vec<&str> = Vec::new();
    let mut failures = Vec::new();
    for message in messages {
        let id = message
            .message_id
            .as_deref()
            .ok_or(BatchError::MissingMessageId)?;
        let group = message
            .attributes
            .get("MessageGroupId")
            .map(String::as_str)
            .unwrap_or_default();
        if failed_groups.contains(&group) {
            tracing::info!(
                message_id = id,
                group,
                "skipped: an earlier message of its group failed"
            );
            failures.push(id.to_string());
            continue;
        }
        if let Err(err) = guarded(message, || process(message)).await {
            tracing::error!(message_id = id, group, error = %err, "message failed; its group stops here");
            failed_groups.push(group);
            failures.push(id.to_string());
        }
    }
    log_summary("sqs-fifo", messages.len(), failures.len());
    Ok(sqs_response(failures))
}

/// In order, stopping at the first failure; returns its sequence number.
async fn ordered<'a, R: Payload, F, Fut, E>(
    kind: &str,
    records: &'a [R],
    sequence_number: fn(&R) -> Option<&str>,
    process: F,
) -> Result<Option<String>, BatchError>
where
    F: Fn(&'a R) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    for (i, record) in records.iter().enumerate() {
        let seq = sequence_number(record).ok_or(BatchError::MissingSequenceNumber)?;
        if let Err(err) = guarded(record, || process(record)).await {
            tracing::error!(kind, sequence_number = seq, error = %err, unprocessed = records.len() - i, "record failed; the batch stops here and is retried from it");
            log_summary(kind, records.len(), records.len() - i);
            return Ok(Some(seq.to_string()));
        }
    }
    Ok(None)
}

fn kinesis_sequence(record: &KinesisEventRecord) -> Option<&str> {
    Some(record.kinesis.sequence_number.as_str())
}

fn dynamodb_sequence(record: &DynamoDbRecord) -> Option<&str> {
    record.change.sequence_number.as_deref()
}

/// Kinesis: in order, stopping at the first failure (reported by sequence number).
pub async fn kinesis<'a, F, Fut, E>(
    records: &'a [KinesisEventRecord],
    process: F,
) -> Result<KinesisEventResponse, BatchError>
where
    F: Fn(&'a KinesisEventRecord) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut response = KinesisEventResponse::default();
    if let Some(failed) = ordered("kinesis", records, kinesis_sequence, process).await? {
        response.add_failure(failed);
    }
    Ok(response)
}

/// DynamoDB streams: in order, stopping at the first failure (reported by sequence number).
pub async fn dynamodb_stream<'a, F, Fut, E>(
    records: &'a [DynamoDbRecord],
    process: F,
) -> Result<DynamoDbEventResponse, BatchError>
where
    F: Fn(&'a DynamoDbRecord) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut response = DynamoDbEventResponse::default();
    if let Some(failed) = ordered("dynamodb", records, dynamodb_sequence, process).await? {
        let mut failure = DynamoDbBatchItemFailure::default();
        failure.item_identifier = Some(failed);
        response.batch_item_failures.push(failure);
    }
    Ok(response)
}

#[cfg(test)]
mod tests;
