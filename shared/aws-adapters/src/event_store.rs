//! [`EventStreams`] and [`EventStore`] on DynamoDB: the event store on one table
//! (`EventsTable`, keys `streamId` S / `version` N). Design, guarantees and limits:
//! `docs/event-store.md`.
//!
//! Items:
//! - an event: `streamId`, `version` (1, 2, ...) and the [`StoredEvent`] fields;
//! - one dedupe item per event id: `streamId = "$event#<eventId>"`, `version = 0`,
//!   `eventStream`, `eventVersion`, `expiresAt` (TTL attribute).
//!
//! An append is one `TransactWriteItems`: the previous stream version is checked to exist,
//! and each event and its dedupe item are put with `attribute_not_exists`. It writes only
//! keys of its own stream and of its own event ids: no item or key is written by every
//! append (no global counter, no single-valued index key), so the store's write capacity
//! grows with the number of streams.
//!
//! `read_all` is a consistent `Scan` of the table (event items only), resumable from the
//! last key it examined: the replay path for rebuilds. The live feed of every new event is
//! the table's DynamoDB stream.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{ConditionCheck, Put, TransactWriteItem};
use chrono::Utc;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, to_item};
use serde_json::Value;

use application::event_store::*;
use application::ports::{Appended, EventStore, PortError, StoredEvent};

use crate::attributes::{Item, describe, n, number, s};

/// Attempts when a cancelled append was neither a repeat nor a conflict: another append to
/// the same stream (`ExpectedVersion::Any`) or a concurrent transaction on the same items.
const APPEND_ATTEMPTS: u32 = 40;
/// The attribute only event items have: `read_all`'s filter, and the stream filters of the
/// projector and the archive pipe (`infra/template.yaml`).
pub const EVENT_MARKER_ATTRIBUTE: &str = "eventType";
/// Prefix of the `read_all` checkpoints this adapter gives out (`v1:<version>:<streamId>`,
/// the key of the last item a pass examined).
const CHECKPOINT_PREFIX: &str = "v1:";

fn dedupe_stream(event_id: &str) -> String {
    format!("$event#{event_id}")
}

fn backend(context: &str, err: impl std::fmt::Display) -> EventStoreError {
    EventStoreError::Backend(format!("{context}: {err}"))
}

pub struct DynamoEventStore {
    client: Client,
    table: String,
    dedupe_ttl_seconds: i64,
}

impl DynamoEventStore {
    pub fn new(config: &aws_config::SdkConfig, table: String) -> Self {
        DynamoEventStore {
            client: Client::new(config),
            table,
            dedupe_ttl_seconds: DEFAULT_DEDUPE_TTL_SECONDS,
        }
    }

    /// How long appended event ids stay recognisable as duplicates.
    pub fn with_dedupe_ttl(mut self, seconds: i64) -> Self {
        self.dedupe_ttl_seconds = seconds;
        self
    }

    /// The dedupe records of `events` that exist and have not expired: (eventId, stream, version).
    async fn stored_ids(
        &self,
        events: &[StoredEvent],
    ) -> Result<Vec<(String, String, u64)>, EventStoreError> {
        let now = Utc::now().timestamp();
        let mut found = Vec::new();
        for event in events {
            let out = self
                .client
                .get_item()
                .table_name(&self.table)
                .key("streamId", s(&dedupe_stream(&event.event_id)))
                .key("version", n(0))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| backend("GetItem dedupe item", describe(&e)))?;
            let Some(item) = out.item else { continue };
            let row: DedupeRow =
                from_item(item).map_err(|e| EventStoreError::Decode(e.to_string()))?;
            if row.expires_at >= now {
                found.push((event.event_id.clone(), row.event_stream, row.event_version));
            }
        }
        Ok(found)
    }

    fn transaction(
        &self,
        stream_id: &str,
        current: u64,
        events: &[StoredEvent],
    ) -> Result<Vec<TransactWriteItem>, EventStoreError> {
        let now = Utc::now().timestamp();
        let mut items = Vec::with_capacity(1 + 2 * events.len());
        if current > 0 {
            let check = ConditionCheck::builder()
                .table_name(&self.table)
                .key("streamId", s(stream_id))
                .key("version", n(current))
                .condition_expression("attribute_exists(streamId)")
                .build()
                .map_err(|e| backend("building ConditionCheck", e))?;
            items.push(TransactWriteItem::builder().condition_check(check).build());
        }
        for (i, event) in events.iter().enumerate() {
            let version = current + 1 + i as u64;
            let item: Item = to_item(EventRow {
                stream_id: stream_id.to_string(),
                version,
                event_id: event.event_id.clone(),
                event_type: event.event_type.clone(),
                schema_version: event.schema_version,
                timestamp: event.timestamp,
                source: event.source.clone(),
                correlation_id: event.correlation_id.clone(),
                causation_id: event.causation_id.clone(),
                data: event.data.clone(),
            })
            .map_err(|e| backend("serialising an event item", e))?;
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(streamId)")
                .build()
                .map_err(|e| backend("building Put", e))?;
            items.push(TransactWriteItem::builder().put(put).build());

            let dedupe = Put::builder()
                .table_name(&self.table)
                .item("streamId", s(&dedupe_stream(&event.event_id)))
                .item("version", n(0))
                .item("eventStream", s(stream_id))
                .item("eventVersion", n(version))
                .item("expiresAt", n(now + self.dedupe_ttl_seconds))
                .condition_expression("attribute_not_exists(streamId) OR expiresAt < :now")
                .expression_attribute_values(":now", n(now))
                .build()
                .map_err(|e| backend("building Put", e))?;
            items.push(TransactWriteItem::builder().put(dedupe).build());
        }
        Ok(items)
    }

    async fn query_stream(
        &self,
        stream_id: &str,
        from_version: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, EventStoreError> {
        let mut events = Vec::new();
        let mut start = None;
        while events.len() < max {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("streamId = :s AND version >= :from")
                .expression_attribute_values(":s", s(stream_id))
                .expression_attribute_values(":from", n(from_version.max(1)))
                .consistent_read(true)
                .limit(i32::try_from(max - events.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| backend(&format!("Query {}", self.table), describe(&e)))?;
            for item in out.items.unwrap_or_default() {
                events.push(decode_event(item)?);
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        Ok(events)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventRow {
    stream_id: String,
    version: u64,
    event_id: String,
    event_type: String,
    schema_version: u32,
    timestamp: chrono::DateTime<Utc>,
    source: String,
    correlation_id: String,
    causation_id: String,
    data: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DedupeRow {
    event_stream: String,
    event_version: u64,
    expires_at: i64,
}

fn decode_event(item: Item) -> Result<RecordedEvent, EventStoreError> {
    let row: EventRow = from_item(item).map_err(|e| EventStoreError::Decode(e.to_string()))?;
    Ok(recorded_event(row))
}

/// The event in an item image of the events table's stream (`NewImage` of an INSERT), or
/// `None` for the table's other items: the dedupe items and, in tables from before the
/// counter was removed, the `$all` position counter (docs/event-store.md, migration).
pub fn event_from_stream_image(
    image: serde_dynamo::Item,
) -> Result<Option<RecordedEvent>, EventStoreError> {
    let reserved = matches!(image.get("streamId"), Some(serde_dynamo::AttributeValue::S(id)) if id.starts_with(RESERVED_PREFIX));
    if reserved || !image.contains_key(EVENT_MARKER_ATTRIBUTE) {
        return Ok(None);
    }
    let row: EventRow =
        serde_dynamo::from_item(image).map_err(|e| EventStoreError::Decode(e.to_string()))?;
    Ok(Some(recorded_event(row)))
}

fn recorded_event(row: EventRow) -> RecordedEvent {
    RecordedEvent {
        stream_id: row.stream_id,
        stream_version: row.version,
        event: StoredEvent {
            event_id: row.event_id,
            event_type: row.event_type,
            schema_version: row.schema_version,
            timestamp: row.timestamp,
            source: row.source,
            correlation_id: row.correlation_id,
            causation_id: row.causation_id,
            data: row.data,
        },
    }
}

#[async_trait]
impl EventStreams for DynamoEventStore {
    async fn append(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: &[StoredEvent],
    ) -> Result<AppendResult, EventStoreError> {
        validate_append(stream_id, events)?;
        for attempt in 0..APPEND_ATTEMPTS {
            let current = match expected {
                ExpectedVersion::Any => self.stream_version(stream_id).await?,
                ExpectedVersion::NoStream => 0,
                ExpectedVersion::Exact(v) => v,
            };
            let items = self.transaction(stream_id, current, events)?;
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await;
            let err = match result {
                Ok(_) => {
                    return Ok(AppendResult {
                        outcome: Appended::Written,
                        versions: (1..=events.len() as u64).map(|i| current + i).collect(),
                    });
                }
                Err(err) => err,
            };
            let cancelled = matches!(
                err.as_service_error(),
                Some(TransactWriteItemsError::TransactionCanceledException(_))
                    | Some(TransactWriteItemsError::TransactionInProgressException(_))
            );
            if !cancelled {
                return Err(backend(
                    &format!("TransactWriteItems {}", self.table),
                    describe(&err),
                ));
            }
            // Which condition failed? Read the facts rather than trusting reason codes.
            let stored = self.stored_ids(events).await?;
            if let Some(result) = repeat_of(stream_id, events, &stored)? {
                return Ok(result);
            }
            let head = self.stream_version(stream_id).await?;
            if expected != ExpectedVersion::Any {
                check_expected(stream_id, expected, head)?;
            }
            // The expectation still holds: with `Any`, another append to this stream came
            // first; otherwise a concurrent transaction touched the same items. Try again
            // after a pause.
            let pause = rand::rng().random_range(2..=10 + 5 * u64::from(attempt.min(10)));
            tracing::debug!(
                stream_id,
                attempt,
                pause_ms = pause,
                "append lost a race on its stream's items; retrying"
            );
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        Err(EventStoreError::Backend(format!(
            "append to {stream_id}: the stream kept moving after {APPEND_ATTEMPTS} attempts (write contention on the stream)"
        )))
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        from_version: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, EventStoreError> {
        self.query_stream(stream_id, from_version, max).await
    }

    async fn read_all(&self, after: &Checkpoint, max: usize) -> Result<AllSlice, EventStoreError> {
        let mut start = decode_checkpoint(after)?;
        let mut next = after.clone();
        let mut events: Vec<RecordedEvent> = Vec::new();
        while events.len() < max {
            // `Limit` bounds the items examined (filtered or not), so a page never returns
            // more events than are still wanted and its LastEvaluatedKey is where to resume.
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .filter_expression("attribute_exists(#marker)")
                .expression_attribute_names("#marker", EVENT_MARKER_ATTRIBUTE)
                .limit(i32::try_from(max - events.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| backend(&format!("Scan {}", self.table), describe(&e)))?;
            for item in out.items.unwrap_or_default() {
                let event = decode_event(item)?;
                if !event.stream_id.starts_with(RESERVED_PREFIX) {
                    events.push(event);
                }
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => {
                    next = encode_checkpoint(&key)?;
                    start = Some(key);
                }
                _ => {
                    return Ok(AllSlice {
                        next: events
                            .last()
                            .map_or(next, |e| checkpoint_of(&e.stream_id, e.stream_version)),
                        events,
                        done: true,
                    });
                }
            }
        }
        Ok(AllSlice {
            events,
            next,
            done: false,
        })
    }

    async fn stream_version(&self, stream_id: &str) -> Result<u64, EventStoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("streamId = :s")
            .expression_attribute_values(":s", s(stream_id))
            .scan_index_forward(false)
            .limit(1)
            .consistent_read(true)
            .projection_expression("version")
            .send()
            .await
            .map_err(|e| backend(&format!("Query {}", self.table), describe(&e)))?;
        match out.items().first().and_then(|i| i.get("version")) {
            Some(v) => number(v).map_err(EventStoreError::Decode),
            None => Ok(0),
        }
    }
}

#[async_trait]
impl EventStore for DynamoEventStore {
    async fn append(
        &self,
        stream_id: &str,
        expected_version: u64,
        event: &StoredEvent,
    ) -> Result<Appended, PortError> {
        append_one(self, stream_id, expected_version, event).await
    }
}

fn checkpoint_of(stream_id: &str, version: u64) -> Checkpoint {
    Checkpoint(format!("{CHECKPOINT_PREFIX}{version}:{stream_id}"))
}

/// The checkpoint of a scan's `LastEvaluatedKey` (the table's key: `streamId`, `version`).
fn encode_checkpoint(key: &Item) -> Result<Checkpoint, EventStoreError> {
    let stream_id = key
        .get("streamId")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| EventStoreError::Decode("scan key without streamId".into()))?;
    let version = key
        .get("version")
        .ok_or_else(|| EventStoreError::Decode("scan key without version".into()))
        .and_then(|v| number(v).map_err(EventStoreError::Decode))?;
    Ok(checkpoint_of(stream_id, version))
}

/// The scan's `ExclusiveStartKey` for a checkpoint (`None` = from the start).
fn decode_checkpoint(checkpoint: &Checkpoint) -> Result<Option<Item>, EventStoreError> {
    if checkpoint.is_start() {
        return Ok(None);
    }
    let invalid = || EventStoreError::InvalidCheckpoint(checkpoint.as_str().to_string());
    let (version, stream_id) = checkpoint
        .as_str()
        .strip_prefix(CHECKPOINT_PREFIX)
        .and_then(|rest| rest.split_once(':'))
        .ok_or_else(invalid)?;
    let version: u64 = version.parse().map_err(|_| invalid())?;
    Ok(Some(Item::from([
        ("streamId".to_string(), s(stream_id)),
        ("version".to_string(), n(version)),
    ])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_round_trip_and_refuse_foreign_text() {
        for (stream, version) in [("alert-1", 3), ("a:b:c", 0), ("$event#x", 0)] {
            let checkpoint = checkpoint_of(stream, version);
            let key = decode_checkpoint(&checkpoint).unwrap().unwrap();
            assert_eq!(encode_checkpoint(&key).unwrap(), checkpoint);
        }
        assert_eq!(decode_checkpoint(&Checkpoint::start()).unwrap(), None);
        for bad in ["42", "v1:x:s", "v1:3", "v2:3:s"] {
            assert!(matches!(
                decode_checkpoint(&Checkpoint(bad.into())),
                Err(EventStoreError::InvalidCheckpoint(_))
            ));
        }
    }
}
