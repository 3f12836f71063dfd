//! Reading an event source mapping (a function's `Kinesis`, `DynamoDB` or `SQS` event) from
//! the template.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::filter::check_filter_pattern;
use crate::template::scalar_to_string;

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
    /// Kinesis stream, DynamoDB stream or SQS queue.
    pub kind: SourceKind,
    /// Key of the entry in `Events`.
    pub event_name: String,
    /// Stream or queue ARN.
    pub source_arn: String,
    /// `BatchSize`.
    pub batch_size: usize,
    /// `MaximumBatchingWindowInSeconds`.
    pub batching_window: Duration,
    /// `StartingPosition` (streams): TRIM_HORIZON or LATEST.
    pub starting_position: String,
    /// `FunctionResponseTypes` contains `ReportBatchItemFailures`.
    pub report_batch_item_failures: bool,
    /// `MaximumRetryAttempts` (streams); None = retry until the record expires.
    pub max_retry_attempts: Option<u32>,
    /// `BisectBatchOnFunctionError` (streams).
    pub bisect_on_error: bool,
    /// `MaximumRecordAgeInSeconds` (streams); None = no limit.
    pub max_record_age: Option<Duration>,
    /// `DestinationConfig.OnFailure.Destination` (streams): an SQS queue ARN.
    pub on_failure_arn: Option<String>,
    /// `FilterCriteria.Filters[].Pattern` (DynamoDB), parsed; a record is processed when it
    /// matches any of them (or when there are none).
    pub filters: Vec<Value>,
    /// `Enabled`.
    pub enabled: bool,
}

impl EventSourceMapping {
    /// Reads a resolved `Events` entry of type Kinesis, DynamoDB or SQS.
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
