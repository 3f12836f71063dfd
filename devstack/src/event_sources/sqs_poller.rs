//! The poller of an SQS mapping: receives batches (with the batching window), invokes the
//! function, deletes what succeeded and makes failed messages visible again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::mapping::EventSourceMapping;
use super::payload::sqs_event;
use super::verdict::{BatchVerdict, classify, outcome_summary};
use super::{ERROR_PAUSE, Poller, PollerContext};
use crate::lambda::{FunctionHost, InvokeOutcome};

/// Queues whose delayed messages are long timers (hours, re-delayed every 15 minutes):
/// [`crate::Stack::wait_idle`] does not wait for them, or a stack with an emergency on site
/// would never be idle.
pub const LONG_TIMER_QUEUES: [&str; 1] = ["TimersQueue"];

/// Everything an SQS poller needs.
struct SqsSource {
    ctx: PollerContext,
    mapping: EventSourceMapping,
    function: Arc<FunctionHost>,
    queue_url: String,
    source: String,
}

/// Starts the poller task of an SQS mapping.
pub fn start_sqs(
    ctx: PollerContext,
    mapping: EventSourceMapping,
    function: Arc<FunctionHost>,
    source_logical_id: &str,
    queue_url: String,
) -> Poller {
    let description = format!("sqs:{source_logical_id} -> {}", function.spec().logical_id);
    let idle = Arc::new(AtomicBool::new(true));
    let source = SqsSource {
        ctx,
        mapping,
        function,
        queue_url: queue_url.clone(),
        source: format!("sqs:{source_logical_id}"),
    };
    let task = tokio::spawn(source.run(idle.clone()));
    tracing::info!(poller = %description, "sqs poller started");
    Poller {
        description: description.clone(),
        queue_url: Some(queue_url),
        long_timers: LONG_TIMER_QUEUES.contains(&source_logical_id),
        idle: vec![(description, idle)],
        tasks: vec![task],
    }
}

/// The trace a batch's invocation continues, as Lambda does: the first message's
/// `AWSTraceHeader` system attribute (set by the sender, or by SNS for a subscribed queue),
/// if it has one. Every record also shows its own in `attributes.AWSTraceHeader`.
pub fn batch_trace_header(messages: &[aws_sdk_sqs::types::Message]) -> Option<String> {
    use aws_sdk_sqs::types::MessageSystemAttributeName;
    messages
        .first()?
        .attributes()?
        .get(&MessageSystemAttributeName::AwsTraceHeader)
        .filter(|header| !header.trim().is_empty())
        .cloned()
}

impl SqsSource {
    async fn receive(
        &self,
        max: usize,
        wait_seconds: i32,
    ) -> Result<Vec<aws_sdk_sqs::types::Message>> {
        use aws_sdk_sqs::types::MessageSystemAttributeName;
        let output = self
            .ctx
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(i32::try_from(max.clamp(1, 10)).unwrap_or(10))
            .wait_time_seconds(wait_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            // Named too (All includes it on AWS): the trace header the batch continues.
            .message_system_attribute_names(MessageSystemAttributeName::AwsTraceHeader)
            .message_attribute_names("All")
            .send()
            .await
            .with_context(|| format!("ReceiveMessage {}", self.queue_url))?;
        Ok(output.messages.unwrap_or_default())
    }

    async fn run(self, idle: Arc<AtomicBool>) {
        loop {
            let mut messages = match self.receive(self.mapping.batch_size, 1).await {
                Ok(messages) => messages,
                Err(err) => {
                    tracing::info!(queue = %self.queue_url, error = %format!("{err:#}"), "ReceiveMessage failed; retrying");
                    tokio::time::sleep(ERROR_PAUSE).await;
                    continue;
                }
            };
            if messages.is_empty() {
                continue;
            }
            idle.store(false, Ordering::SeqCst);
            self.ctx.activity.fetch_add(1, Ordering::SeqCst);

            // Batching window: keep receiving until the batch is full or the window closes.
            let window_end = Instant::now() + self.mapping.batching_window;
            while messages.len() < self.mapping.batch_size && Instant::now() < window_end {
                match self
                    .receive(self.mapping.batch_size - messages.len(), 0)
                    .await
                {
                    Ok(more) if more.is_empty() => {
                        tokio::time::sleep(
                            Duration::from_millis(100).min(window_end - Instant::now()),
                        )
                        .await;
                    }
                    Ok(more) => messages.extend(more),
                    Err(_) => break,
                }
            }

            self.process_batch(messages).await;
            self.ctx.activity.fetch_add(1, Ordering::SeqCst);
            idle.store(true, Ordering::SeqCst);
        }
    }

    async fn process_batch(&self, messages: Vec<aws_sdk_sqs::types::Message>) {
        let event = sqs_event(&messages, &self.mapping.source_arn);
        let outcome = self
            .function
            .invoke_traced(event, &self.source, batch_trace_header(&messages))
            .await;
        let ids: Vec<String> = messages
            .iter()
            .map(|m| m.message_id().unwrap_or_default().to_string())
            .collect();
        let (done, failed): (Vec<_>, Vec<_>) = match classify(
            &outcome,
            &ids,
            self.mapping.report_batch_item_failures,
        ) {
            BatchVerdict::Success => (messages.iter().collect(), Vec::new()),
            BatchVerdict::Partial(failed) => {
                let mut done = Vec::new();
                let mut retry = Vec::new();
                for (index, message) in messages.iter().enumerate() {
                    if failed.contains(&index) {
                        retry.push(message);
                    } else {
                        done.push(message);
                    }
                }
                (done, retry)
            }
            BatchVerdict::Failed => {
                tracing::info!(function = %self.function.spec().logical_id, queue = %self.queue_url, messages = messages.len(), outcome = %outcome_summary(&outcome), "sqs batch failed");
                (Vec::new(), messages.iter().collect())
            }
        };
        self.delete(&done).await;
        // A crashed or timed-out invocation gave no answer: as on AWS (where a queue's
        // visibility timeout is at least the function's timeout), its messages come back no
        // earlier than the invocation's deadline, so in-progress idempotency records that
        // expire then do not refuse the redelivery.
        let delay = match outcome {
            InvokeOutcome::Crashed(_) | InvokeOutcome::Timeout => self
                .ctx
                .sqs_retry_delay
                .map(|delay| delay.max(self.function.spec().timeout + Duration::from_secs(1))),
            _ => self.ctx.sqs_retry_delay,
        };
        self.release(&failed, delay).await;
    }

    /// Deletes processed messages.
    async fn delete(&self, messages: &[&aws_sdk_sqs::types::Message]) {
        use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
        for chunk in messages.chunks(10) {
            let entries: Vec<_> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, m)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(m.receipt_handle()?)
                        .build()
                        .ok()
                })
                .collect();
            if entries.is_empty() {
                continue;
            }
            match self
                .ctx
                .sqs
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(out) if !out.failed().is_empty() => {
                    tracing::warn!(queue = %self.queue_url, failed = ?out.failed(), "some messages could not be deleted");
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(queue = %self.queue_url, error = %aws_sdk_sqs::error::DisplayErrorContext(&err), "DeleteMessageBatch failed")
                }
            }
        }
    }

    /// Makes failed messages visible again after `delay` (`sqs_retry_delay`, instead of the
    /// queue's visibility timeout, so local retries are quick; `None`: the queue's timeout).
    async fn release(&self, messages: &[&aws_sdk_sqs::types::Message], delay: Option<Duration>) {
        use aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry;
        let Some(delay) = delay else {
            return;
        };
        let seconds = i32::try_from(delay.as_secs() + u64::from(delay.subsec_nanos() > 0))
            .unwrap_or(i32::MAX);
        for chunk in messages.chunks(10) {
            let entries: Vec<_> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, m)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(m.receipt_handle()?)
                        .visibility_timeout(seconds)
                        .build()
                        .ok()
                })
                .collect();
            if entries.is_empty() {
                continue;
            }
            if let Err(err) = self
                .ctx
                .sqs
                .change_message_visibility_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                tracing::warn!(queue = %self.queue_url, error = %aws_sdk_sqs::error::DisplayErrorContext(&err), "ChangeMessageVisibilityBatch failed");
            }
        }
    }
}
