//! [`EventStreams`] and [`EventStore`] on DynamoDB: the event store on one table
//! (`EventsTable`, keys `streamId` S / `version` N). Design, guarantees and limits:
//! `docs/event-store.md`.
//!
//! Items:
//! - an event: `streamId`, `version` (1, 2, ...), `position` (global, gapless), `allPk`
//!   (`"all"`, the partition key of the `all-position` GSI) and the [`StoredEvent`] fields;
//! - the position counter: `streamId = "$all"`, `version = 0`, `position` = last position;
//! - one dedupe item per event id: `streamId = "$event#<eventId>"`, `version = 0`,
//!   `eventStream`, `eventVersion`, `expiresAt` (TTL attribute).
//!
//! An append is one `TransactWriteItems`: the counter moves from the position read to
//! position + n (conditioned on still being there), the previous stream version is checked
//! to exist, and each event and its dedupe item are put with `attribute_not_exists`.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{ConditionCheck, Put, TransactWriteItem, Update};
use chrono::Utc;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, to_item};
use serde_json::Value;

use application::event_store::*;
use application::ports::{Appended, EventStore, PortError, StoredEvent};

use crate::attributes::{Item, describe, n, number, s};

/// Name of the GSI that orders events by global position.
pub const ALL_INDEX: &str = "all-position";
/// The single partition key value of that index.
const ALL_PK: &str = "all";
const COUNTER_STREAM: &str = "$all";
/// Attempts when only the global position moved under us (another stream's append won).
const POSITION_ATTEMPTS: u32 = 40;

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

    async fn current_position(&self) -> Result<u64, EventStoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("streamId", s(COUNTER_STREAM))
            .key("version", n(0))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("GetItem position counter", describe(&e)))?;
        out.item
            .as_ref()
            .and_then(|i| i.get("position"))
            .map(|p| number(p).map_err(EventStoreError::Decode))
            .transpose()
            .map(|p| p.unwrap_or(0))
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
        position: u64,
        events: &[StoredEvent],
    ) -> Result<Vec<TransactWriteItem>, EventStoreError> {
        let now = Utc::now().timestamp();
        let last = position + events.len() as u64;
        let mut counter = Update::builder()
            .table_name(&self.table)
            .key("streamId", s(COUNTER_STREAM))
            .key("version", n(0))
            .update_expression("SET #pos = :last")
            .expression_attribute_names("#pos", "position")
            .expression_attribute_values(":last", n(last));
        counter = if position == 0 {
            counter.condition_expression("attribute_not_exists(#pos)")
        } else {
            counter
                .condition_expression("#pos = :read")
                .expression_attribute_values(":read", n(position))
        };
        let mut items = vec![
            TransactWriteItem::builder()
                .update(counter.build().map_err(|e| backend("building Update", e))?)
                .build(),
        ];
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
                position: position + 1 + i as u64,
                all_pk: ALL_PK.to_string(),
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
    position: u64,
    all_pk: String,
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
/// `None` for the table's other items (the position counter and the dedupe items).
pub fn event_from_stream_image(
    image: serde_dynamo::Item,
) -> Result<Option<RecordedEvent>, EventStoreError> {
    let is_event =
        matches!(image.get("allPk"), Some(serde_dynamo::AttributeValue::S(pk)) if pk == ALL_PK);
    if !is_event {
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
        position: Position(row.position),
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
        for attempt in 0..POSITION_ATTEMPTS {
            let current = match expected {
                ExpectedVersion::Any => self.stream_version(stream_id).await?,
                ExpectedVersion::NoStream => 0,
                ExpectedVersion::Exact(v) => v,
            };
            let position = self.current_position().await?;
            let items = self.transaction(stream_id, current, position, events)?;
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
            // The stream was fine: another append took the next global position first (or
            // a concurrent transaction touched the same items). Try again after a pause.
            let pause = rand::rng().random_range(2..=10 + 5 * u64::from(attempt.min(10)));
            tracing::debug!(
                stream_id,
                attempt,
                pause_ms = pause,
                "append lost the race for the global position; retrying"
            );
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        Err(EventStoreError::Backend(format!(
            "append to {stream_id}: the global position kept moving after {POSITION_ATTEMPTS} attempts (write contention)"
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

    async fn read_all(&self, after: Position, max: usize) -> Result<AllSlice, EventStoreError> {
        let mut events: Vec<RecordedEvent> = Vec::new();
        let mut next = after;
        let mut start = None;
        'pages: while events.len() < max {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(ALL_INDEX)
                .key_condition_expression("allPk = :all AND #pos > :after")
                .expression_attribute_names("#pos", "position")
                .expression_attribute_values(":all", s(ALL_PK))
                .expression_attribute_values(":after", n(next.0))
                .limit(i32::try_from(max - events.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| backend(&format!("Query {} {ALL_INDEX}", self.table), describe(&e)))?;
            for item in out.items.unwrap_or_default() {
                let event = decode_event(item)?;
                // Positions are gapless. A missing one is an append that committed but is
                // not in the (eventually consistent) index yet: stop before it.
                if event.position.0 != next.0 + 1 {
                    break 'pages;
                }
                next = event.position;
                events.push(event);
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        Ok(AllSlice { events, next })
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
