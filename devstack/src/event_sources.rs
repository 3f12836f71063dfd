//! Lambda's event source mappings for Kinesis streams, DynamoDB streams and SQS queues,
//! played locally.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;

use crate::lambda::{FunctionHost, InvokeOutcome};
use crate::template::{REGION, scalar_to_string};

/// Poll interval of a stream shard that returned nothing.
const STREAM_IDLE_POLL: Duration = Duration::from_millis(100);
/// Pause after a failed emulator call before trying again.
const ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Which kind of source a mapping reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// A Kinesis stream.
    Kinesis,
    /// An SQS queue.
    Sqs,
    /// A DynamoDB stream.
    DynamoDb,
}

/// An event source mapping, as declared by a function's `Events` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct EventSourceMapping {
    /// Kinesis or SQS.
    pub kind: SourceKind,
    /// Key of the entry in `Events`.
    pub event_name: String,
    /// Stream or queue ARN.
    pub source_arn: String,
    /// `BatchSize`.
    pub batch_size: usize,
    /// `MaximumBatchingWindowInSeconds`.
    pub batching_window: Duration,
    /// `StartingPosition` (Kinesis): TRIM_HORIZON or LATEST.
    pub starting_position: String,
    /// `FunctionResponseTypes` contains `ReportBatchItemFailures`.
    pub report_batch_item_failures: bool,
    /// `MaximumRetryAttempts` (Kinesis); None = retry until the record expires.
    pub max_retry_attempts: Option<u32>,
    /// `BisectBatchOnFunctionError` (Kinesis).
    pub bisect_on_error: bool,
    /// `MaximumRecordAgeInSeconds` (Kinesis); None = no limit.
    pub max_record_age: Option<Duration>,
    /// `DestinationConfig.OnFailure.Destination` (Kinesis): an SQS queue ARN.
    pub on_failure_arn: Option<String>,
    /// `FilterCriteria.Filters[].Pattern` (DynamoDB), parsed; a record is processed when it
    /// matches any of them (or when there are none).
    pub filters: Vec<Value>,
    /// `Enabled`.
    pub enabled: bool,
}

impl EventSourceMapping {
    /// Reads a resolved `Events` entry of type Kinesis or SQS.
    pub fn from_event(event_name: &str, kind: SourceKind, properties: &Value) -> Result<Self> {
        let get = |key: &str| -> Result<Option<String>> {
            properties
                .get(key)
                .map(scalar_to_string)
                .transpose()
                .with_context(|| format!("event {event_name} property {key}"))
        };
        let int = |key: &str| -> Result<Option<i64>> {
            get(key)?
                .map(|s| {
                    s.parse::<i64>().with_context(|| {
                        format!("event {event_name} property {key} is not an integer")
                    })
                })
                .transpose()
        };
        let boolean = |key: &str| -> Result<Option<bool>> {
            get(key)?
                .map(|s| match s.to_ascii_lowercase().as_str() {
                    "true" => Ok(true),
                    "false" => Ok(false),
                    _ => bail!("event {event_name} property {key} is not a boolean"),
                })
                .transpose()
        };
        let source_key = match kind {
            SourceKind::Kinesis | SourceKind::DynamoDb => "Stream",
            SourceKind::Sqs => "Queue",
        };
        let source_arn =
            get(source_key)?.with_context(|| format!("event {event_name} has no {source_key}"))?;
        let default_batch = match kind {
            SourceKind::Kinesis | SourceKind::DynamoDb => 100,
            SourceKind::Sqs => 10,
        };
        let batch_size = int("BatchSize")?.unwrap_or(default_batch);
        if batch_size < 1 {
            bail!("event {event_name}: BatchSize must be at least 1");
        }
        let window = int("MaximumBatchingWindowInSeconds")?.unwrap_or(0).max(0);
        let starting_position = get("StartingPosition")?.unwrap_or_else(|| "LATEST".to_string());
        if kind != SourceKind::Sqs
            && !matches!(starting_position.as_str(), "TRIM_HORIZON" | "LATEST")
        {
            bail!(
                "event {event_name}: StartingPosition {starting_position} is not supported by devstack (TRIM_HORIZON or LATEST)"
            );
        }
        let report_batch_item_failures = match properties.get("FunctionResponseTypes") {
            Some(Value::Array(items)) => items
                .iter()
                .any(|v| v.as_str() == Some("ReportBatchItemFailures")),
            _ => false,
        };
        let max_retry_attempts = match int("MaximumRetryAttempts")? {
            None | Some(-1) => None,
            Some(n) if n >= 0 => Some(u32::try_from(n).unwrap_or(u32::MAX)),
            Some(n) => bail!("event {event_name}: MaximumRetryAttempts {n} is invalid"),
        };
        let max_record_age = match int("MaximumRecordAgeInSeconds")? {
            None | Some(-1) => None,
            Some(n) if n >= 0 => Some(Duration::from_secs(n.unsigned_abs())),
            Some(n) => bail!("event {event_name}: MaximumRecordAgeInSeconds {n} is invalid"),
        };
        let on_failure_arn = properties
            .get("DestinationConfig")
            .and_then(|d| d.get("OnFailure"))
            .and_then(|o| o.get("Destination"))
            .map(scalar_to_string)
            .transpose()
            .with_context(|| {
                format!("event {event_name} DestinationConfig.OnFailure.Destination")
            })?;
        if let Some(arn) = &on_failure_arn
            && !arn.starts_with("arn:aws:sqs:")
        {
            bail!(
                "event {event_name}: devstack supports only SQS queues as OnFailure destinations, not {arn}"
            );
        }
        let mut filters = Vec::new();
        if let Some(criteria) = properties.get("FilterCriteria") {
            if kind != SourceKind::DynamoDb {
                bail!(
                    "event {event_name}: devstack supports FilterCriteria on DynamoDB streams only"
                );
            }
            let empty = Vec::new();
            let entries = criteria
                .get("Filters")
                .and_then(Value::as_array)
                .unwrap_or(&empty);
            for entry in entries {
                let text = entry
                    .get("Pattern")
                    .map(scalar_to_string)
                    .transpose()?
                    .with_context(|| format!("event {event_name}: a filter has no Pattern"))?;
                let pattern: Value = serde_json::from_str(&text).with_context(|| {
                    format!("event {event_name}: filter pattern {text} is not JSON")
                })?;
                check_filter_pattern(&pattern)
                    .with_context(|| format!("event {event_name}: filter pattern {text}"))?;
                filters.push(pattern);
            }
        }
        Ok(EventSourceMapping {
            kind,
            event_name: event_name.to_string(),
            source_arn,
            batch_size: usize::try_from(batch_size).unwrap_or(usize::MAX),
            batching_window: Duration::from_secs(window.unsigned_abs()),
            starting_position,
            report_batch_item_failures,
            max_retry_attempts,
            bisect_on_error: boolean("BisectBatchOnFunctionError")?.unwrap_or(false),
            max_record_age,
            on_failure_arn,
            filters,
            enabled: boolean("Enabled")?.unwrap_or(true),
        })
    }
}

/// What a function's response means for a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchVerdict {
    /// Every record succeeded.
    Success,
    /// The listed items (indices into the batch) failed; the others succeeded.
    Partial(BTreeSet<usize>),
    /// The whole batch failed (function error, timeout, crash, or an invalid
    /// `batchItemFailures` response).
    Failed,
}

/// Interprets an invocation outcome like Lambda does. `ids` are the item identifiers of the
/// batch (sequence numbers or message ids), in batch order.
pub fn classify(
    outcome: &InvokeOutcome,
    ids: &[String],
    report_batch_item_failures: bool,
) -> BatchVerdict {
    let InvokeOutcome::Ok(response) = outcome else {
        return BatchVerdict::Failed;
    };
    if !report_batch_item_failures {
        return BatchVerdict::Success;
    }
    let failures = match response {
        Value::Null => return BatchVerdict::Success,
        Value::Object(map) => match map.get("batchItemFailures") {
            None | Some(Value::Null) => return BatchVerdict::Success,
            Some(Value::Array(items)) => items,
            Some(_) => return BatchVerdict::Failed,
        },
        _ => return BatchVerdict::Failed,
    };
    if failures.is_empty() {
        return BatchVerdict::Success;
    }
    let mut failed = BTreeSet::new();
    for failure in failures {
        let identifier = failure.get("itemIdentifier").and_then(Value::as_str);
        match identifier.and_then(|id| ids.iter().position(|x| x == id)) {
            Some(index) if identifier.is_some_and(|id| !id.is_empty()) => {
                failed.insert(index);
            }
            _ => return BatchVerdict::Failed,
        }
    }
    BatchVerdict::Partial(failed)
}

/// Local retry backoff: 200 ms per attempt, at most 2 s.
/// Records of a stream batch still to process, with the retries they have used.
struct Segment {
    records: Vec<StreamRecord>,
    retries: u32,
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(200 * u64::from(attempt.max(1))).min(Duration::from_secs(2))
}

/// A running poller, for `Stack::wait_idle` and shutdown.
#[derive(Debug)]
pub struct Poller {
    /// e.g. "kinesis:ReadingsStream -> DetectFunction".
    pub description: String,
    /// For SQS pollers, the queue URL (idleness also needs the queue to be empty).
    pub queue_url: Option<String>,
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
    /// Emulator clients.
    pub kinesis: aws_sdk_kinesis::Client,
    /// Emulator clients.
    pub sqs: aws_sdk_sqs::Client,
    /// Emulator clients.
    pub dynamodb_streams: aws_sdk_dynamodbstreams::Client,
    /// Emulator account id (for invokeIdentityArn).
    pub account_id: String,
    /// Bumped whenever a poller sees records (for `Stack::wait_idle`).
    pub activity: Arc<AtomicU64>,
    /// Local speed knob: visibility timeout applied to SQS messages that failed.
    pub sqs_retry_delay: Option<Duration>,
}

// ------------------------------------------------------------------ Kinesis and DynamoDB streams

/// What a shard record carries.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordBody {
    /// A Kinesis record.
    Kinesis {
        /// Partition key.
        partition_key: String,
        /// Payload.
        data: Vec<u8>,
    },
    /// A DynamoDB stream record, as Lambda's event shows it (without `eventSourceARN`).
    DynamoDb(Value),
}

/// A record read from a shard of a Kinesis stream or a DynamoDB stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRecord {
    /// Sequence number.
    pub sequence_number: String,
    /// Approximate arrival (Kinesis) or creation (DynamoDB), epoch seconds.
    pub arrival_epoch_seconds: f64,
    /// The record itself.
    pub body: RecordBody,
}

impl StreamRecord {
    /// The record as Lambda puts it in the event.
    fn lambda_record(&self, shard_id: &str, source_arn: &str, account_id: &str) -> Value {
        match &self.body {
            RecordBody::Kinesis {
                partition_key,
                data,
            } => json!({
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": partition_key,
                    "sequenceNumber": self.sequence_number,
                    "data": base64::engine::general_purpose::STANDARD.encode(data),
                    "approximateArrivalTimestamp": self.arrival_epoch_seconds,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": format!("{shard_id}:{}", self.sequence_number),
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": format!("arn:aws:iam::{account_id}:role/devstack"),
                "awsRegion": REGION,
                "eventSourceARN": source_arn,
            }),
            RecordBody::DynamoDb(record) => {
                let mut record = record.clone();
                if let Some(fields) = record.as_object_mut() {
                    fields.insert("eventSourceARN".to_string(), json!(source_arn));
                }
                record
            }
        }
    }
}

/// Lambda's event for a batch of one shard (Kinesis or DynamoDB stream).
pub fn stream_event(
    records: &[StreamRecord],
    shard_id: &str,
    source_arn: &str,
    account_id: &str,
) -> Value {
    let records: Vec<Value> = records
        .iter()
        .map(|r| r.lambda_record(shard_id, source_arn, account_id))
        .collect();
    json!({ "Records": records })
}

fn iso8601_from_epoch(seconds: f64) -> String {
    let millis = (seconds * 1000.0).round() as i64;
    chrono::DateTime::from_timestamp_millis(millis)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn now_epoch_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// Why records were given up.
#[derive(Debug, Clone, Copy)]
enum GiveUpCondition {
    RetryAttemptsExhausted,
    RecordAgeExceeded,
}

/// Lambda's on-failure destination record for a batch of a stream: `KinesisBatchInfo` or
/// `DDBStreamBatchInfo`, by the kind of the records.
pub fn stream_failure_record(
    records: &[StreamRecord],
    shard_id: &str,
    stream_arn: &str,
    function_arn: &str,
    condition: &str,
    invoke_count: u32,
    function_error: &str,
) -> Value {
    let first = records.first();
    let last = records.last();
    let info_key = match first.map(|r| &r.body) {
        Some(RecordBody::DynamoDb(_)) => "DDBStreamBatchInfo",
        _ => "KinesisBatchInfo",
    };
    json!({
        "requestContext": {
            "requestId": uuid::Uuid::new_v4().to_string(),
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": invoke_count,
        },
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": function_error,
        },
        "version": "1.0",
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        info_key: {
            "shardId": shard_id,
            "startSequenceNumber": first.map(|r| r.sequence_number.clone()),
            "endSequenceNumber": last.map(|r| r.sequence_number.clone()),
            "approximateArrivalOfFirstRecord": first.map(|r| iso8601_from_epoch(r.arrival_epoch_seconds)),
            "approximateArrivalOfLastRecord": last.map(|r| iso8601_from_epoch(r.arrival_epoch_seconds)),
            "batchSize": records.len(),
            "streamArn": stream_arn,
        }
    })
}

/// Stream name from a stream ARN (`arn:aws:kinesis:REGION:ACCOUNT:stream/NAME`).
pub fn stream_name_from_arn(arn: &str) -> Result<String> {
    arn.rsplit_once(":stream/")
        .map(|(_, name)| name.to_string())
        .filter(|n| !n.is_empty())
        .with_context(|| format!("{arn} is not a Kinesis stream ARN"))
}

/// True when `record` matches a Lambda event filter `pattern`: every key of the pattern is
/// in the record, a nested object matches recursively and a list holds the allowed values.
/// (Only equality is supported; [`EventSourceMapping::from_event`] refuses other rules.)
pub fn filter_matches(pattern: &Value, record: &Value) -> bool {
    match pattern {
        Value::Object(fields) => fields.iter().all(|(key, expected)| {
            record
                .get(key)
                .is_some_and(|actual| filter_matches(expected, actual))
        }),
        Value::Array(allowed) => allowed.iter().any(|value| value == record),
        _ => false,
    }
}

/// Checks that a filter pattern uses only what [`filter_matches`] supports.
fn check_filter_pattern(pattern: &Value) -> Result<()> {
    match pattern {
        Value::Object(fields) => fields.values().try_for_each(check_filter_pattern),
        Value::Array(allowed) => {
            if let Some(rule) = allowed.iter().find(|v| v.is_object() || v.is_array()) {
                bail!("filter rule {rule} is not supported by devstack (only exact values)");
            }
            Ok(())
        }
        other => bail!("filter pattern value {other} must be a list of values or an object"),
    }
}

/// The stream API of a mapping.
enum StreamApi {
    Kinesis {
        client: aws_sdk_kinesis::Client,
        stream_name: String,
    },
    DynamoDb {
        client: aws_sdk_dynamodbstreams::Client,
    },
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
    let shard_ids = source.shard_ids().await?;
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
        idle,
        tasks,
    })
}

/// Result of one GetRecords.
struct Fetched {
    records: Vec<StreamRecord>,
    caught_up: bool,
    closed: bool,
}

/// Lambda's view of a DynamoDB stream record (without `eventSourceARN`).
fn dynamodb_record(record: aws_sdk_dynamodbstreams::types::Record) -> Result<StreamRecord> {
    let item = |image: Option<HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>>| {
        image.map(|image| serde_json::to_value(serde_dynamo::Item::from(image)))
    };
    let change = record.dynamodb.context("stream record without dynamodb")?;
    let sequence_number = change
        .sequence_number
        .clone()
        .context("stream record without SequenceNumber")?;
    let created = change
        .approximate_creation_date_time
        .map(|t| t.as_secs_f64())
        .unwrap_or_else(now_epoch_seconds);
    let mut dynamodb = Map::new();
    dynamodb.insert("ApproximateCreationDateTime".into(), json!(created));
    for (key, image) in [
        ("Keys", item(change.keys)),
        ("NewImage", item(change.new_image)),
        ("OldImage", item(change.old_image)),
    ] {
        if let Some(image) = image {
            dynamodb.insert(key.into(), image.context("stream record image")?);
        }
    }
    dynamodb.insert("SequenceNumber".into(), json!(sequence_number));
    dynamodb.insert("SizeBytes".into(), json!(change.size_bytes));
    if let Some(view) = &change.stream_view_type {
        dynamodb.insert("StreamViewType".into(), json!(view.as_str()));
    }
    Ok(StreamRecord {
        sequence_number,
        arrival_epoch_seconds: created,
        body: RecordBody::DynamoDb(json!({
            "eventID": record.event_id,
            "eventName": record.event_name.as_ref().map(|n| n.as_str()),
            "eventVersion": record.event_version,
            "eventSource": "aws:dynamodb",
            "awsRegion": REGION,
            "dynamodb": dynamodb,
        })),
    })
}

impl StreamSource {
    /// The shards of the stream.
    async fn shard_ids(&self) -> Result<Vec<String>> {
        let mut shard_ids = Vec::new();
        match &self.api {
            StreamApi::Kinesis {
                client,
                stream_name,
            } => {
                let mut next_token: Option<String> = None;
                loop {
                    let mut request = client.list_shards();
                    request = match &next_token {
                        Some(token) => request.next_token(token),
                        None => request.stream_name(stream_name),
                    };
                    let page = request
                        .send()
                        .await
                        .with_context(|| format!("ListShards {stream_name}"))?;
                    shard_ids.extend(page.shards().iter().map(|s| s.shard_id().to_string()));
                    match page.next_token {
                        Some(token) if !token.is_empty() => next_token = Some(token),
                        _ => break,
                    }
                }
            }
            StreamApi::DynamoDb { client } => {
                let arn = &self.mapping.source_arn;
                let mut start: Option<String> = None;
                loop {
                    let description = client
                        .describe_stream()
                        .stream_arn(arn)
                        .set_exclusive_start_shard_id(start.clone())
                        .send()
                        .await
                        .with_context(|| format!("DescribeStream {arn}"))?
                        .stream_description
                        .with_context(|| format!("DescribeStream {arn}: no description"))?;
                    shard_ids.extend(
                        description
                            .shards()
                            .iter()
                            .filter_map(|s| s.shard_id().map(str::to_string)),
                    );
                    match description.last_evaluated_shard_id {
                        Some(last) if !last.is_empty() => start = Some(last),
                        _ => break,
                    }
                }
            }
        }
        Ok(shard_ids)
    }

    /// A shard iterator at the mapping's starting position, or right after `after`.
    async fn initial_iterator(&self, shard_id: &str, after: Option<&str>) -> Result<String> {
        let position = self.mapping.starting_position.as_str();
        let iterator = match &self.api {
            StreamApi::Kinesis {
                client,
                stream_name,
            } => {
                use aws_sdk_kinesis::types::ShardIteratorType;
                let request = client
                    .get_shard_iterator()
                    .stream_name(stream_name)
                    .shard_id(shard_id);
                let request = match after {
                    Some(sequence) => request
                        .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                        .starting_sequence_number(sequence),
                    None => request.shard_iterator_type(ShardIteratorType::from(position)),
                };
                request
                    .send()
                    .await
                    .with_context(|| format!("GetShardIterator {stream_name} {shard_id}"))?
                    .shard_iterator
            }
            StreamApi::DynamoDb { client } => {
                use aws_sdk_dynamodbstreams::types::ShardIteratorType;
                let request = client
                    .get_shard_iterator()
                    .stream_arn(&self.mapping.source_arn)
                    .shard_id(shard_id);
                let request = match after {
                    Some(sequence) => request
                        .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                        .sequence_number(sequence),
                    None => request.shard_iterator_type(ShardIteratorType::from(position)),
                };
                request
                    .send()
                    .await
                    .with_context(|| {
                        format!("GetShardIterator {} {shard_id}", self.mapping.source_arn)
                    })?
                    .shard_iterator
            }
        };
        iterator.with_context(|| format!("GetShardIterator {shard_id}: no iterator"))
    }

    async fn fetch(&self, iterator: &mut Option<String>, limit: usize) -> Result<Fetched> {
        let Some(current) = iterator.as_ref() else {
            return Ok(Fetched {
                records: Vec::new(),
                caught_up: true,
                closed: true,
            });
        };
        let (records, next, behind) = match &self.api {
            StreamApi::Kinesis { client, .. } => {
                let output = client
                    .get_records()
                    .shard_iterator(current)
                    .limit(i32::try_from(limit.min(10_000)).unwrap_or(10_000))
                    .send()
                    .await
                    .context("GetRecords")?;
                let records: Vec<StreamRecord> = output
                    .records
                    .into_iter()
                    .map(|r| StreamRecord {
                        arrival_epoch_seconds: r
                            .approximate_arrival_timestamp
                            .map(|t| t.as_secs_f64())
                            .unwrap_or_else(now_epoch_seconds),
                        sequence_number: r.sequence_number,
                        body: RecordBody::Kinesis {
                            partition_key: r.partition_key.unwrap_or_default(),
                            data: r.data.into_inner(),
                        },
                    })
                    .collect();
                (
                    records,
                    output.next_shard_iterator,
                    output.millis_behind_latest.unwrap_or(0),
                )
            }
            StreamApi::DynamoDb { client } => {
                let output = client
                    .get_records()
                    .shard_iterator(current)
                    .limit(i32::try_from(limit.min(1_000)).unwrap_or(1_000))
                    .send()
                    .await
                    .context("GetRecords")?;
                let records = output
                    .records
                    .unwrap_or_default()
                    .into_iter()
                    .map(dynamodb_record)
                    .collect::<Result<Vec<_>>>()?;
                (records, output.next_shard_iterator, 0)
            }
        };
        *iterator = next;
        let caught_up = records.is_empty() && behind == 0;
        // Event filtering (DynamoDB streams only, see `from_event`): records that match no
        // filter are dropped (and checkpointed).
        let records = match self.mapping.filters.as_slice() {
            [] => records,
            filters => records
                .into_iter()
                .filter(|r| match &r.body {
                    RecordBody::DynamoDb(record) => {
                        filters.iter().any(|f| filter_matches(f, record))
                    }
                    RecordBody::Kinesis { .. } => true,
                })
                .collect(),
        };
        Ok(Fetched {
            caught_up,
            closed: iterator.is_none(),
            records,
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

fn outcome_summary(outcome: &InvokeOutcome) -> String {
    match outcome {
        InvokeOutcome::Ok(_) => "ok (invalid batchItemFailures)".to_string(),
        InvokeOutcome::FunctionError {
            error_type,
            error_message,
        } => format!("{error_type}: {error_message}"),
        InvokeOutcome::Timeout => "timeout".to_string(),
        InvokeOutcome::Crashed(reason) => format!("crashed: {reason}"),
    }
}

// ------------------------------------------------------------------------------ SQS

/// Lambda's SQS event for received messages.
pub fn sqs_event(messages: &[aws_sdk_sqs::types::Message], queue_arn: &str) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attributes: Map<String, Value> = m
                .attributes()
                .map(|attrs| {
                    attrs
                        .iter()
                        .map(|(k, v)| (k.as_str().to_string(), Value::String(v.clone())))
                        .collect()
                })
                .unwrap_or_default();
            let message_attributes: Map<String, Value> = m
                .message_attributes()
                .map(|attrs| {
                    attrs
                        .iter()
                        .map(|(name, a)| {
                            let b64 = |b: &aws_sdk_sqs::primitives::Blob| {
                                Value::String(base64::engine::general_purpose::STANDARD.encode(b.as_ref()))
                            };
                            (
                                name.clone(),
                                json!({
                                    "stringValue": a.string_value(),
                                    "binaryValue": a.binary_value().map(b64),
                                    "stringListValues": a.string_list_values(),
                                    "binaryListValues": a.binary_list_values().iter().map(b64).collect::<Vec<_>>(),
                                    "dataType": a.data_type(),
                                }),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body().unwrap_or_default(),
                "attributes": attributes,
                "messageAttributes": message_attributes,
                "md5OfBody": m.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            })
        })
        .collect();
    json!({ "Records": records })
}

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
        idle: vec![(description, idle)],
        tasks: vec![task],
    }
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
        let outcome = self.function.invoke(event, &self.source).await;
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
        self.release(&failed).await;
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

    /// Makes failed messages visible again after `sqs_retry_delay` (instead of the queue's
    /// visibility timeout), so local retries are quick.
    async fn release(&self, messages: &[&aws_sdk_sqs::types::Message]) {
        use aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry;
        let Some(delay) = self.ctx.sqs_retry_delay else {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: &str) -> StreamRecord {
        StreamRecord {
            sequence_number: seq.to_string(),
            body: RecordBody::Kinesis {
                partition_key: "patient-1".to_string(),
                data: br#"{"hr":80}"#.to_vec(),
            },
            arrival_epoch_seconds: 1_700_000_000.25,
        }
    }

    fn dynamodb(seq: &str, event_name: &str, all_pk: &str) -> StreamRecord {
        StreamRecord {
            sequence_number: seq.to_string(),
            arrival_epoch_seconds: 1_700_000_000.0,
            body: RecordBody::DynamoDb(json!({
                "eventID": format!("e-{seq}"),
                "eventName": event_name,
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1",
                "dynamodb": {
                    "ApproximateCreationDateTime": 1_700_000_000.0,
                    "Keys": {"streamId": {"S": "s-1"}, "version": {"N": "1"}},
                    "NewImage": {"streamId": {"S": "s-1"}, "version": {"N": "1"}, "allPk": {"S": all_pk}},
                    "SequenceNumber": seq,
                    "SizeBytes": 50,
                    "StreamViewType": "NEW_IMAGE",
                },
            })),
        }
    }

    #[test]
    fn dynamodb_stream_event_deserializes_as_dynamodb_event() {
        let event = stream_event(
            &[dynamodb("11", "INSERT", "all")],
            "shardId-1",
            "arn:aws:dynamodb:us-east-1:1:table/t/stream/x",
            "1",
        );
        let parsed: aws_lambda_events::event::dynamodb::Event =
            serde_json::from_value(event).expect("valid DynamoDB event");
        let record = &parsed.records[0];
        assert_eq!(record.event_name, "INSERT");
        assert_eq!(record.change.sequence_number.as_deref(), Some("11"));
        assert_eq!(
            record.event_source_arn.as_deref(),
            Some("arn:aws:dynamodb:us-east-1:1:table/t/stream/x")
        );
        assert!(record.change.new_image.contains_key("allPk"));
    }

    #[test]
    fn dynamodb_failure_record_has_ddb_stream_batch_info() {
        let value = stream_failure_record(
            &[
                dynamodb("3", "INSERT", "all"),
                dynamodb("4", "INSERT", "all"),
            ],
            "shardId-1",
            "arn:stream",
            "arn:function",
            "RetryAttemptsExhausted",
            6,
            "",
        );
        assert_eq!(value["DDBStreamBatchInfo"]["startSequenceNumber"], "3");
        assert_eq!(value["DDBStreamBatchInfo"]["endSequenceNumber"], "4");
        assert!(value.get("KinesisBatchInfo").is_none());
    }

    #[test]
    fn filter_patterns_match_like_lambda_event_filtering() {
        let pattern =
            json!({"eventName": ["INSERT"], "dynamodb": {"NewImage": {"allPk": {"S": ["all"]}}}});
        let body = |r: StreamRecord| match r.body {
            RecordBody::DynamoDb(v) => v,
            RecordBody::Kinesis { .. } => unreachable!(),
        };
        assert!(filter_matches(
            &pattern,
            &body(dynamodb("1", "INSERT", "all"))
        ));
        assert!(!filter_matches(
            &pattern,
            &body(dynamodb("2", "MODIFY", "all"))
        ));
        assert!(!filter_matches(
            &pattern,
            &body(dynamodb("3", "INSERT", "other"))
        ));
        assert!(!filter_matches(
            &json!({"missing": ["x"]}),
            &body(dynamodb("4", "INSERT", "all"))
        ));
    }

    #[test]
    fn filter_criteria_are_parsed_and_unsupported_rules_refused() {
        let props = |pattern: &str| {
            json!({
                "Stream": "arn:aws:dynamodb:us-east-1:1:table/t/stream/x",
                "StartingPosition": "TRIM_HORIZON",
                "FilterCriteria": {"Filters": [{"Pattern": pattern}]},
            })
        };
        let mapping = EventSourceMapping::from_event(
            "E",
            SourceKind::DynamoDb,
            &props(r#"{"eventName": ["INSERT"]}"#),
        )
        .unwrap();
        assert_eq!(mapping.filters, [json!({"eventName": ["INSERT"]})]);
        assert_eq!(mapping.batch_size, 100);
        let err = EventSourceMapping::from_event(
            "E",
            SourceKind::DynamoDb,
            &props(r#"{"eventName": [{"prefix": "IN"}]}"#),
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("not supported by devstack"),
            "{err:#}"
        );
    }

    #[test]
    fn kinesis_event_deserializes_as_kinesis_event() {
        let event = stream_event(
            &[record("1"), record("2")],
            "shardId-000000000000",
            "arn:aws:kinesis:us-east-1:123456789012:stream/s",
            "123456789012",
        );
        let parsed: aws_lambda_events::event::kinesis::KinesisEvent =
            serde_json::from_value(event).expect("valid KinesisEvent");
        assert_eq!(parsed.records.len(), 2);
        let first = &parsed.records[0];
        assert_eq!(first.kinesis.sequence_number, "1");
        assert_eq!(first.kinesis.partition_key, "patient-1");
        assert_eq!(first.kinesis.data.0, br#"{"hr":80}"#.to_vec());
        assert_eq!(first.event_id.as_deref(), Some("shardId-000000000000:1"));
        assert_eq!(
            first.kinesis.approximate_arrival_timestamp.0.timestamp(),
            1_700_000_000
        );
    }

    #[test]
    fn kinesis_failure_record_has_batch_info() {
        let value = stream_failure_record(
            &[record("5"), record("9")],
            "shardId-000000000001",
            "arn:stream",
            "arn:function",
            "RetryAttemptsExhausted",
            4,
            "Unhandled",
        );
        assert_eq!(value["KinesisBatchInfo"]["startSequenceNumber"], "5");
        assert_eq!(value["KinesisBatchInfo"]["endSequenceNumber"], "9");
        assert_eq!(value["KinesisBatchInfo"]["batchSize"], 2);
        assert_eq!(value["requestContext"]["approximateInvokeCount"], 4);
        assert_eq!(value["responseContext"]["functionError"], "Unhandled");
        assert!(
            value["KinesisBatchInfo"]["approximateArrivalOfFirstRecord"]
                .as_str()
                .unwrap()
                .starts_with("2023-11-14T22:13:20.250")
        );
    }

    #[test]
    fn sqs_event_deserializes_as_sqs_event() {
        use aws_sdk_sqs::primitives::Blob;
        use aws_sdk_sqs::types::{Message, MessageAttributeValue, MessageSystemAttributeName};
        let message = Message::builder()
            .message_id("m-1")
            .receipt_handle("rh")
            .body("{\"x\":1}")
            .md5_of_body("abc")
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "1")
            .attributes(MessageSystemAttributeName::SentTimestamp, "1700000000000")
            .message_attributes(
                "eventType",
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value("AlertRaised")
                    .build()
                    .unwrap(),
            )
            .message_attributes(
                "bin",
                MessageAttributeValue::builder()
                    .data_type("Binary")
                    .binary_value(Blob::new(vec![1, 2, 3]))
                    .build()
                    .unwrap(),
            )
            .build();
        let event = sqs_event(&[message], "arn:aws:sqs:us-east-1:123456789012:q");
        let parsed: aws_lambda_events::event::sqs::SqsEvent =
            serde_json::from_value(event).expect("valid SqsEvent");
        let record = &parsed.records[0];
        assert_eq!(record.message_id.as_deref(), Some("m-1"));
        assert_eq!(record.attributes["ApproximateReceiveCount"], "1");
        assert_eq!(
            record.message_attributes["eventType"]
                .string_value
                .as_deref(),
            Some("AlertRaised")
        );
        assert_eq!(
            record.message_attributes["bin"]
                .binary_value
                .as_ref()
                .map(|b| b.0.clone()),
            Some(vec![1, 2, 3])
        );
        assert_eq!(record.event_source.as_deref(), Some("aws:sqs"));
    }

    #[test]
    fn classify_follows_lambda_rules() {
        let ids: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let ok = |v: Value| InvokeOutcome::Ok(v);
        assert_eq!(
            classify(&ok(Value::Null), &ids, true),
            BatchVerdict::Success
        );
        assert_eq!(classify(&ok(json!({})), &ids, true), BatchVerdict::Success);
        assert_eq!(
            classify(&ok(json!({"batchItemFailures": []})), &ids, true),
            BatchVerdict::Success
        );
        assert_eq!(
            classify(
                &ok(
                    json!({"batchItemFailures": [{"itemIdentifier": "c"}, {"itemIdentifier": "b"}]})
                ),
                &ids,
                true
            ),
            BatchVerdict::Partial(BTreeSet::from([1, 2]))
        );
        for invalid in [json!(null), json!(""), json!("zzz")] {
            assert_eq!(
                classify(
                    &ok(json!({"batchItemFailures": [{"itemIdentifier": invalid}]})),
                    &ids,
                    true
                ),
                BatchVerdict::Failed
            );
        }
        // Without ReportBatchItemFailures the response is ignored.
        assert_eq!(
            classify(
                &ok(json!({"batchItemFailures": [{"itemIdentifier": "a"}]})),
                &ids,
                false
            ),
            BatchVerdict::Success
        );
        assert_eq!(
            classify(&InvokeOutcome::Timeout, &ids, true),
            BatchVerdict::Failed
        );
    }

    #[test]
    fn stream_name_comes_from_the_arn() {
        assert_eq!(
            stream_name_from_arn("arn:aws:kinesis:us-east-1:1:stream/vitals-ReadingsStream")
                .unwrap(),
            "vitals-ReadingsStream"
        );
        assert!(stream_name_from_arn("arn:aws:sqs:us-east-1:1:q").is_err());
    }
}
