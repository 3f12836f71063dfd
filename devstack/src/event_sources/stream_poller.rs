//! The poller of a Kinesis or DynamoDB stream mapping: one task per shard that batches
//! records, invokes the function and handles failures like Lambda (partial batch responses,
//! bisecting, retries, maximum record age, OnFailure destination).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::filter::keep_matching;
use super::mapping::{EventSourceMapping, SourceKind};
use super::payload::{StreamRecord, stream_event, stream_failure_record};
use super::stream_reader::{Fetched, StreamApi, now_epoch_seconds, stream_name_from_arn};
use super::verdict::{BatchVerdict, classify, outcome_summary};
use super::{ERROR_PAUSE, Poller, PollerContext};
use crate::lambda::FunctionHost;

/// Poll interval of a stream shard that returned nothing.
const STREAM_IDLE_POLL: Duration = Duration::from_millis(100);

/// Records of a stream batch still to process, with the retries they have used.
struct Segment {
    records: Vec<StreamRecord>,
    retries: u32,
}

/// Local retry backoff: 200 ms per attempt, at most 2 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(200 * u64::from(attempt.max(1))).min(Duration::from_secs(2))
}

/// Why records were given up.
#[derive(Debug, Clone, Copy)]
enum GiveUpCondition {
    RetryAttemptsExhausted,
    RecordAgeExceeded,
}

/// Everything a stream shard poller needs.
struct StreamSource {
    ctx: PollerContext,
    mapping: EventSourceMapping,
    function: Arc<FunctionHost>,
    api: StreamApi,
    source: String,
    on_failure_url: Option<String>,
}

/// Starts one poller task per shard of a Kinesis or DynamoDB stream. Shard iterators are
/// obtained before this returns, so a LATEST mapping sees every record put after
/// `Stack::start`.
pub async fn start_stream(
    ctx: PollerContext,
    mapping: EventSourceMapping,
    function: Arc<FunctionHost>,
    source_logical_id: &str,
    on_failure_url: Option<String>,
) -> Result<Poller> {
    let (api, prefix) = match mapping.kind {
        SourceKind::Kinesis => (
            StreamApi::Kinesis {
                client: ctx.kinesis.clone(),
                stream_name: stream_name_from_arn(&mapping.source_arn)?,
            },
            "kinesis",
        ),
        SourceKind::DynamoDb => (
            StreamApi::DynamoDb {
                client: ctx.dynamodb_streams.clone(),
                stream_arn: mapping.source_arn.clone(),
            },
            "dynamodb",
        ),
        SourceKind::Sqs => bail!("{} is a queue, not a stream", mapping.source_arn),
    };
    let description = format!(
        "{prefix}:{source_logical_id} -> {}",
        function.spec().logical_id
    );
    let source = Arc::new(StreamSource {
        ctx,
        mapping,
        function,
        api,
        source: format!("{prefix}:{source_logical_id}"),
        on_failure_url,
    });
    let shard_ids = source.api.shard_ids().await?;
    let mut idle = Vec::new();
    let mut tasks = Vec::new();
    for shard_id in shard_ids {
        let iterator = source.initial_iterator(&shard_id, None).await?;
        let flag = Arc::new(AtomicBool::new(false));
        idle.push((format!("{description} ({shard_id})"), flag.clone()));
        tasks.push(tokio::spawn(
            source.clone().run_shard(shard_id, iterator, flag),
        ));
    }
    tracing::info!(poller = %description, shards = tasks.len(), "stream poller started");
    Ok(Poller {
        description,
        queue_url: None,
        long_timers: false,
        idle,
        tasks,
    })
}

impl StreamSource {
    /// A shard iterator at the mapping's starting position, or right after `after`.
    async fn initial_iterator(&self, shard_id: &str, after: Option<&str>) -> Result<String> {
        self.api
            .iterator(shard_id, &self.mapping.starting_position, after)
            .await
    }

    /// One GetRecords, keeping the records that pass the mapping's filters (DynamoDB streams
    /// only, see `from_event`); `caught_up` is decided before filtering.
    async fn fetch(&self, iterator: &mut Option<String>, limit: usize) -> Result<Fetched> {
        let fetched = self.api.get_records(iterator, limit).await?;
        Ok(Fetched {
            records: keep_matching(&self.mapping.filters, fetched.records),
            ..fetched
        })
    }

    async fn run_shard(self: Arc<Self>, shard_id: String, iterator: String, idle: Arc<AtomicBool>) {
        let mut iterator = Some(iterator);
        let mut buffer: VecDeque<StreamRecord> = VecDeque::new();
        // Sequence number of the last record read, to re-acquire an iterator after errors.
        let mut last_read: Option<String> = None;
        let batch_size = self.mapping.batch_size;
        loop {
            if buffer.is_empty() {
                match self.fetch(&mut iterator, batch_size).await {
                    Ok(fetched) if fetched.records.is_empty() => {
                        idle.store(fetched.caught_up, Ordering::SeqCst);
                        if fetched.closed {
                            tracing::info!(shard = %shard_id, stream = %self.mapping.source_arn, "shard closed; poller done");
                            idle.store(true, Ordering::SeqCst);
                            return;
                        }
                        tokio::time::sleep(STREAM_IDLE_POLL).await;
                        continue;
                    }
                    Ok(fetched) => {
                        idle.store(false, Ordering::SeqCst);
                        self.ctx.activity.fetch_add(1, Ordering::SeqCst);
                        buffer.extend(fetched.records);
                        self.fill_batching_window(&shard_id, &mut iterator, &mut buffer)
                            .await;
                        last_read = buffer.back().map(|r| r.sequence_number.clone());
                    }
                    Err(err) => {
                        tracing::info!(shard = %shard_id, stream = %self.mapping.source_arn, error = %format!("{err:#}"), "GetRecords failed; retrying");
                        tokio::time::sleep(ERROR_PAUSE).await;
                        // Re-acquire an iterator (it may have expired) right after the last
                        // record read; the buffer is empty, so nothing is lost or repeated.
                        if let Ok(fresh) =
                            self.initial_iterator(&shard_id, last_read.as_deref()).await
                        {
                            iterator = Some(fresh);
                        }
                        continue;
                    }
                }
            }
            let take = buffer.len().min(batch_size);
            let batch: Vec<StreamRecord> = buffer.drain(..take).collect();
            self.process_batch(&shard_id, batch).await;
        }
    }

    /// Waits up to `MaximumBatchingWindowInSeconds` for a fuller batch.
    async fn fill_batching_window(
        &self,
        shard_id: &str,
        iterator: &mut Option<String>,
        buffer: &mut VecDeque<StreamRecord>,
    ) {
        let window_end = Instant::now() + self.mapping.batching_window;
        while buffer.len() < self.mapping.batch_size && iterator.is_some() {
            let now = Instant::now();
            if now >= window_end {
                break;
            }
            tokio::time::sleep((window_end - now).min(STREAM_IDLE_POLL)).await;
            match self
                .fetch(iterator, self.mapping.batch_size - buffer.len())
                .await
            {
                Ok(fetched) => buffer.extend(fetched.records),
                Err(err) => {
                    tracing::debug!(shard = %shard_id, error = %format!("{err:#}"), "GetRecords failed during the batching window");
                    break;
                }
            }
        }
    }

    async fn process_batch(&self, shard_id: &str, records: Vec<StreamRecord>) {
        let stream_arn = &self.mapping.source_arn;
        let mut segments = VecDeque::from([Segment {
            records,
            retries: 0,
        }]);
        while let Some(mut segment) = segments.pop_front() {
            if let Some(max_age) = self.mapping.max_record_age {
                let now = now_epoch_seconds();
                let expired = segment
                    .records
                    .iter()
                    .take_while(|r| now - r.arrival_epoch_seconds > max_age.as_secs_f64())
                    .count();
                if expired > 0 {
                    let dropped: Vec<StreamRecord> = segment.records.drain(..expired).collect();
                    self.give_up(
                        shard_id,
                        &dropped,
                        GiveUpCondition::RecordAgeExceeded,
                        segment.retries,
                        "",
                    )
                    .await;
                }
                if segment.records.is_empty() {
                    continue;
                }
            }

            let event = stream_event(&segment.records, shard_id, stream_arn, &self.ctx.account_id);
            let outcome = self.function.invoke(event, &self.source).await;
            let ids: Vec<String> = segment
                .records
                .iter()
                .map(|r| r.sequence_number.clone())
                .collect();
            match classify(&outcome, &ids, self.mapping.report_batch_item_failures) {
                BatchVerdict::Success => {}
                BatchVerdict::Partial(failed) => {
                    // Checkpoint everything before the lowest failed record; retry from there.
                    let first_failed = failed.first().copied().unwrap_or(0);
                    segment.records.drain(..first_failed);
                    tracing::debug!(shard = %shard_id, from = %segment.records.first().map(|r| r.sequence_number.as_str()).unwrap_or(""), retry = segment.retries + 1, "partial batch failure; retrying from the first failed record");
                    self.retry_or_give_up(shard_id, segment, "", &mut segments)
                        .await;
                }
                BatchVerdict::Failed => {
                    if self.mapping.bisect_on_error && segment.records.len() > 1 {
                        // Splitting does not use up a retry; each half keeps its own count.
                        let second = segment.records.split_off(segment.records.len() / 2);
                        tracing::debug!(shard = %shard_id, sizes = ?(segment.records.len(), second.len()), "batch failed; bisecting");
                        segments.push_front(Segment {
                            records: second,
                            retries: segment.retries,
                        });
                        segments.push_front(segment);
                    } else {
                        tracing::info!(function = %self.function.spec().logical_id, shard = %shard_id, retry = segment.retries + 1, outcome = ?outcome_summary(&outcome), "stream batch failed");
                        self.retry_or_give_up(shard_id, segment, "Unhandled", &mut segments)
                            .await;
                    }
                }
            }
        }
    }

    /// Counts a failed attempt of `segment`: once the retries are used up its records go to
    /// the OnFailure destination; otherwise it is retried first, after a backoff.
    async fn retry_or_give_up(
        &self,
        shard_id: &str,
        mut segment: Segment,
        function_error: &str,
        segments: &mut VecDeque<Segment>,
    ) {
        segment.retries += 1;
        if self.exhausted(segment.retries) {
            self.give_up(
                shard_id,
                &segment.records,
                GiveUpCondition::RetryAttemptsExhausted,
                segment.retries,
                function_error,
            )
            .await;
        } else {
            tokio::time::sleep(backoff(segment.retries)).await;
            segments.push_front(segment);
        }
    }

    /// True when `retries` exceeds MaximumRetryAttempts.
    fn exhausted(&self, retries: u32) -> bool {
        self.mapping
            .max_retry_attempts
            .is_some_and(|max| retries > max)
    }

    /// Skips records, reporting them to the OnFailure destination if there is one.
    async fn give_up(
        &self,
        shard_id: &str,
        records: &[StreamRecord],
        condition: GiveUpCondition,
        invoke_count: u32,
        function_error: &str,
    ) {
        if records.is_empty() {
            return;
        }
        let condition = match condition {
            GiveUpCondition::RetryAttemptsExhausted => "RetryAttemptsExhausted",
            GiveUpCondition::RecordAgeExceeded => "RecordAgeExceeded",
        };
        tracing::info!(
            function = %self.function.spec().logical_id,
            shard = %shard_id,
            records = records.len(),
            condition,
            "giving up on stream records"
        );
        let Some(url) = &self.on_failure_url else {
            return;
        };
        let record = stream_failure_record(
            records,
            shard_id,
            &self.mapping.source_arn,
            &self.function.spec().arn,
            condition,
            invoke_count,
            function_error,
        );
        if let Err(err) = self
            .ctx
            .sqs
            .send_message()
            .queue_url(url)
            .message_body(record.to_string())
            .send()
            .await
        {
            tracing::error!(queue = %url, error = %aws_sdk_sqs::error::DisplayErrorContext(&err), "could not send to the OnFailure destination");
        }
    }
}
