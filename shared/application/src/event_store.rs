//! The event store: append-only streams per aggregate (a patient, an alert, a saga) with
//! optimistic concurrency, idempotent appends, a read of every event (`read_all`, the
//! replay path for rebuilds) and upcasting of old event schema versions. No item or key is
//! written by every append: the live feed of all events is the events table's DynamoDB
//! stream (docs/event-store.md).
//!
//! This module holds the contract and the pure parts (expected-version modes, errors,
//! limits). Recorded events and upcasters are domain types, re-exported here. Adapters:
//! `aws_adapters::DynamoEventStore` (DynamoDB, one table; the design is in
//! `docs/event-store.md`) and `testkit::MemoryEventStore`.
//!
//! Every adapter also implements the older single-event [`crate::ports::EventStore`] port on
//! top of [`EventStreams::append`] with [`ExpectedVersion::Exact`].

use async_trait::async_trait;

use crate::ports::{Appended, EventReader, PortError};

pub use domain::recorded::{Checkpoint, RecordedEvent, StoredEvent};
pub use domain::upcast::{UpcastError, Upcaster, Upcasters};

/// The stream state an append expects (EventStoreDB's modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Append whatever the stream's current version is (still serialised per stream: the
    /// events get consecutive versions after the current last one).
    Any,
    /// The stream must not exist (have no events).
    NoStream,
    /// The stream's last version must be exactly this (`Exact(0)` is the same as `NoStream`).
    Exact(u64),
}

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendResult {
    /// [`Appended::Written`], or [`Appended::Duplicate`] when every event id of the append was
    /// already stored (nothing was written).
    pub outcome: Appended,
    /// The stream versions the events have (written now or earlier), in order.
    pub versions: Vec<u64>,
}

impl AppendResult {
    /// The stream's version after this append's events: what the next append expects.
    pub fn next_expected_version(&self) -> u64 {
        self.versions.last().copied().unwrap_or(0)
    }
}

/// One page of a read of the whole store.
#[derive(Debug, Clone, PartialEq)]
pub struct AllSlice {
    pub events: Vec<RecordedEvent>,
    /// Where the next read resumes (after the last item examined, or the checkpoint passed
    /// in when nothing was). Save it to resume later.
    pub next: Checkpoint,
    /// True when this pass has reached the end of the store: every event committed before
    /// the pass began has been returned (events committed during the pass may or may not
    /// be; the live feed carries them).
    pub done: bool,
}

/// Why an event store call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EventStoreError {
    /// The stream is not at the expected version.
    #[error(
        "wrong expected version on stream {stream_id}: expected {expected:?}, current version is {current}"
    )]
    Conflict {
        stream_id: String,
        expected: ExpectedVersion,
        /// The stream's current (last) version; 0 = no stream.
        current: u64,
    },
    /// Some but not all of the append's event ids were already stored, or stored in
    /// another stream: the append is neither new nor a repeat.
    #[error(
        "event {event_id} was already appended to stream {stored_stream} (version {stored_version}), and this append to {stream_id} is not an exact repeat"
    )]
    DuplicateMismatch {
        stream_id: String,
        event_id: String,
        stored_stream: String,
        stored_version: u64,
    },
    /// An event is bigger than one item may be.
    #[error(
        "event {event_id} is {size} bytes; the limit for one event is {limit} bytes (DynamoDB item limit): store large payloads elsewhere and append a reference"
    )]
    TooLarge {
        event_id: String,
        size: usize,
        limit: usize,
    },
    /// The append as a whole is too big for one transaction.
    #[error("{0}")]
    InvalidAppend(String),
    /// A `read_all` checkpoint this store did not give out.
    #[error("invalid read_all checkpoint {0:?}")]
    InvalidCheckpoint(String),
    /// A stored item does not decode.
    #[error("decoding a stored event: {0}")]
    Decode(String),
    /// The backing service failed or refused the call.
    #[error("{0}")]
    Backend(String),
}

/// The most events one append may carry (each event is 2 items of a transaction of at most
/// 100: the event and its dedupe item, plus a check of the stream's previous version).
pub const MAX_EVENTS_PER_APPEND: usize = 49;
/// The most bytes one event may have as stored (DynamoDB's item limit is 400 KB including
/// attribute names; the rest is kept for the key and position attributes).
pub const MAX_EVENT_BYTES: usize = 390 * 1024;
/// The most bytes one append may carry (DynamoDB's transaction limit is 4 MB).
pub const MAX_APPEND_BYTES: usize = 4_000_000;
/// How long a dedupe item keeps an appended event id recognisable (idempotent append),
/// by default.
pub const DEFAULT_DEDUPE_TTL_SECONDS: i64 = 7 * 24 * 3600;

/// Stream ids starting with this are reserved for the store's own items.
pub const RESERVED_PREFIX: char = '$';

/// Checks an append before any I/O: stream id, event count, sizes, distinct ids.
/// Returns each event's stored size estimate.
pub fn validate_append(stream_id: &str, events: &[StoredEvent]) -> Result<(), EventStoreError> {
    if stream_id.is_empty() || stream_id.starts_with(RESERVED_PREFIX) {
        return Err(EventStoreError::InvalidAppend(format!(
            "invalid stream id {stream_id:?}: it must be non-empty and not start with '{RESERVED_PREFIX}'"
        )));
    }
    if events.is_empty() {
        return Err(EventStoreError::InvalidAppend(format!(
            "append to {stream_id} has no events"
        )));
    }
    if events.len() > MAX_EVENTS_PER_APPEND {
        return Err(EventStoreError::InvalidAppend(format!(
            "append to {stream_id} has {} events; at most {MAX_EVENTS_PER_APPEND} fit in one transaction",
            events.len()
        )));
    }
    let mut total = 0;
    for (i, event) in events.iter().enumerate() {
        if event.event_id.is_empty() {
            return Err(EventStoreError::InvalidAppend(format!(
                "event {i} of the append to {stream_id} has an empty eventId"
            )));
        }
        if events[..i].iter().any(|e| e.event_id == event.event_id) {
            return Err(EventStoreError::InvalidAppend(format!(
                "event id {} appears twice in one append to {stream_id}",
                event.event_id
            )));
        }
        let size = stored_size(event);
        if size > MAX_EVENT_BYTES {
            return Err(EventStoreError::TooLarge {
                event_id: event.event_id.clone(),
                size,
                limit: MAX_EVENT_BYTES,
            });
        }
        total += size;
    }
    if total > MAX_APPEND_BYTES {
        return Err(EventStoreError::InvalidAppend(format!(
            "append to {stream_id} is {total} bytes; one append may carry at most {MAX_APPEND_BYTES}"
        )));
    }
    Ok(())
}

/// An upper estimate of the bytes an event takes as an item: its JSON (names + values)
/// plus the key and position attributes.
pub fn stored_size(event: &StoredEvent) -> usize {
    serde_json::to_vec(event)
        .map(|v| v.len())
        .unwrap_or(usize::MAX)
        + 128
}

/// The event store contract. See the module docs and `docs/event-store.md`.
#[async_trait]
pub trait EventStreams: Send + Sync {
    /// Appends `events` to `stream_id` atomically, as the versions after the current last
    /// one, if the stream is at `expected`. Appending event ids that are all already stored
    /// (a repeat) writes nothing and returns [`Appended::Duplicate`] with their versions.
    async fn append(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: &[StoredEvent],
    ) -> Result<AppendResult, EventStoreError>;

    /// Events of one stream with version >= `from_version`, in version order, at most
    /// `max` of them.
    async fn read_stream(
        &self,
        stream_id: &str,
        from_version: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, EventStoreError>;

    /// Events of every stream after the checkpoint `after`, at most `max` (fewer only at the
    /// end of the pass: then `done`). A pass from [`Checkpoint::start`] to `done` returns
    /// every event committed before it began, once, each stream's events in version order;
    /// no order across streams. Resuming from a saved `next` continues the same pass. This
    /// is the replay path (rebuilds); the live feed of new events is the events table's
    /// stream (docs/event-store.md).
    async fn read_all(&self, after: &Checkpoint, max: usize) -> Result<AllSlice, EventStoreError>;

    /// The stream's current (last) version; 0 = no stream.
    async fn stream_version(&self, stream_id: &str) -> Result<u64, EventStoreError>;
}

/// Maps the single-event port onto [`EventStreams::append`] with `Exact(expected_version)`.
pub async fn append_one(
    store: &dyn EventStreams,
    stream_id: &str,
    expected_version: u64,
    event: &StoredEvent,
) -> Result<Appended, PortError> {
    match store
        .append(
            stream_id,
            ExpectedVersion::Exact(expected_version),
            std::slice::from_ref(event),
        )
        .await
    {
        Ok(result) => Ok(result.outcome),
        Err(EventStoreError::Conflict { current, .. }) => Err(PortError::Conflict {
            key: stream_id.to_string(),
            expected: expected_version,
            actual: Some(current),
        }),
        Err(other) => Err(PortError::Backend(other.to_string())),
    }
}

/// The version the first event of an append gets, if the stream is at `current`, or the
/// conflict if `expected` does not allow it.
pub fn check_expected(
    stream_id: &str,
    expected: ExpectedVersion,
    current: u64,
) -> Result<(), EventStoreError> {
    let ok = match expected {
        ExpectedVersion::Any => true,
        ExpectedVersion::NoStream => current == 0,
        ExpectedVersion::Exact(v) => current == v,
    };
    if ok {
        Ok(())
    } else {
        Err(EventStoreError::Conflict {
            stream_id: stream_id.to_string(),
            expected,
            current,
        })
    }
}

/// `Some(result)` if every event id is already stored in this stream (a repeat of an
/// earlier append); an error if only some are, or in another stream; `None` if none are.
pub fn repeat_of(
    stream_id: &str,
    events: &[StoredEvent],
    stored: &[(String, String, u64)],
) -> Result<Option<AppendResult>, EventStoreError> {
    if stored.is_empty() {
        return Ok(None);
    }
    let mismatch = stored.iter().find(|(_, stream, _)| stream != stream_id);
    if let Some((event_id, stored_stream, stored_version)) =
        mismatch.or_else(|| (stored.len() != events.len()).then(|| &stored[0]))
    {
        return Err(EventStoreError::DuplicateMismatch {
            stream_id: stream_id.to_string(),
            event_id: event_id.clone(),
            stored_stream: stored_stream.clone(),
            stored_version: *stored_version,
        });
    }
    Ok(Some(AppendResult {
        outcome: Appended::Duplicate,
        versions: stored.iter().map(|(_, _, v)| *v).collect(),
    }))
}

/// Every event store reads whole streams for the [`EventReader`] port, page by page.
#[async_trait]
impl<T: EventStreams + Send + Sync> EventReader for T {
    async fn read_stream(&self, stream_id: &str) -> Result<Vec<StoredEvent>, PortError> {
        const PAGE: usize = 100;
        let mut events = Vec::new();
        let mut from_version = 1;
        loop {
            let page = EventStreams::read_stream(self, stream_id, from_version, PAGE)
                .await
                .map_err(|e| PortError::Backend(e.to_string()))?;
            let full = page.len() == PAGE;
            for recorded in page {
                from_version = recorded.stream_version + 1;
                events.push(recorded.event);
            }
            if !full {
                return Ok(events);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use testkit::fixtures::stored_event as event;

    #[test]
    fn expected_version_modes() {
        assert!(check_expected("s", ExpectedVersion::Any, 7).is_ok());
        assert!(check_expected("s", ExpectedVersion::NoStream, 0).is_ok());
        assert!(check_expected("s", ExpectedVersion::Exact(0), 0).is_ok());
        assert!(check_expected("s", ExpectedVersion::Exact(3), 3).is_ok());
        let err = check_expected("s", ExpectedVersion::NoStream, 2).unwrap_err();
        assert_eq!(
            err,
            EventStoreError::Conflict {
                stream_id: "s".into(),
                expected: ExpectedVersion::NoStream,
                current: 2
            }
        );
        assert!(check_expected("s", ExpectedVersion::Exact(2), 3).is_err());
    }

    #[test]
    fn an_oversized_event_is_refused_with_a_clear_error() {
        let big = "x".repeat(MAX_EVENT_BYTES);
        let err = validate_append("s", &[event("e-1", json!({ "blob": big }))]).unwrap_err();
        match &err {
            EventStoreError::TooLarge { event_id, size, .. } => {
                assert_eq!(event_id, "e-1");
                assert!(*size > MAX_EVENT_BYTES);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        assert!(err.to_string().contains("limit for one event"));
    }

    #[test]
    fn invalid_appends_are_refused() {
        assert!(validate_append("s", &[]).is_err());
        assert!(validate_append("$all", &[event("e", json!({}))]).is_err());
        let dup = [event("e", json!({})), event("e", json!({}))];
        assert!(validate_append("s", &dup).is_err());
        let many: Vec<_> = (0..=MAX_EVENTS_PER_APPEND)
            .map(|i| event(&format!("e-{i}"), json!({})))
            .collect();
        assert!(validate_append("s", &many).is_err());
        assert!(validate_append("s", &many[..MAX_EVENTS_PER_APPEND]).is_ok());
    }
}
