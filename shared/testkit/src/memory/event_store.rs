//! [`EventStreams`] and [`EventStore`] in memory.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use application::event_store::*;
use application::ports::{Appended, EventStore, PortError, StoredEvent};

use super::lock;

/// The event store in memory: streams keyed by stream id, then version (from 1), a log in
/// commit order (what `read_all` walks; its checkpoint is an index in the log), and the
/// dedupe index of appended event ids. Same semantics as
/// `aws_adapters::DynamoEventStore` (dedupe entries do not expire here).
#[derive(Default)]
pub struct MemoryEventStore {
    pub inner: Mutex<MemoryEvents>,
}

#[derive(Default)]
pub struct MemoryEvents {
    pub streams: BTreeMap<String, BTreeMap<u64, StoredEvent>>,
    /// (stream, version) in commit order.
    pub log: Vec<(String, u64)>,
    /// event id -> (stream, version).
    pub dedupe: HashMap<String, (String, u64)>,
}

impl MemoryEventStore {
    pub fn stream(&self, stream_id: &str) -> Vec<StoredEvent> {
        lock(&self.inner)
            .streams
            .get(stream_id)
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every event in commit order.
    pub fn all(&self) -> Vec<StoredEvent> {
        let inner = lock(&self.inner);
        inner
            .log
            .iter()
            .filter_map(|(s, v)| inner.streams.get(s).and_then(|s| s.get(v)).cloned())
            .collect()
    }
}

fn recorded(inner: &MemoryEvents, stream_id: &str, version: u64) -> Option<RecordedEvent> {
    let event = inner.streams.get(stream_id)?.get(&version)?.clone();
    Some(RecordedEvent {
        stream_id: stream_id.to_string(),
        stream_version: version,
        event,
    })
}

#[async_trait]
impl EventStreams for MemoryEventStore {
    async fn append(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: &[StoredEvent],
    ) -> Result<AppendResult, EventStoreError> {
        validate_append(stream_id, events)?;
        let mut inner = lock(&self.inner);
        let stored: Vec<(String, String, u64)> = events
            .iter()
            .filter_map(|e| {
                inner
                    .dedupe
                    .get(&e.event_id)
                    .map(|(s, v)| (e.event_id.clone(), s.clone(), *v))
            })
            .collect();
        if let Some(result) = repeat_of(stream_id, events, &stored)? {
            return Ok(result);
        }
        let current = inner
            .streams
            .get(stream_id)
            .and_then(|s| s.keys().next_back().copied())
            .unwrap_or(0);
        check_expected(stream_id, expected, current)?;
        let mut versions = Vec::with_capacity(events.len());
        for (i, event) in events.iter().enumerate() {
            let version = current + 1 + i as u64;
            inner
                .streams
                .entry(stream_id.to_string())
                .or_default()
                .insert(version, event.clone());
            inner.log.push((stream_id.to_string(), version));
            inner
                .dedupe
                .insert(event.event_id.clone(), (stream_id.to_string(), version));
            versions.push(version);
        }
        Ok(AppendResult {
            outcome: Appended::Written,
            versions,
        })
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        from_version: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, EventStoreError> {
        let inner = lock(&self.inner);
        let Some(stream) = inner.streams.get(stream_id) else {
            return Ok(Vec::new());
        };
        Ok(stream
            .range(from_version.max(1)..)
            .take(max)
            .filter_map(|(version, _)| recorded(&inner, stream_id, *version))
            .collect())
    }

    async fn read_all(&self, after: &Checkpoint, max: usize) -> Result<AllSlice, EventStoreError> {
        let from: usize = if after.is_start() {
            0
        } else {
            after
                .as_str()
                .parse()
                .map_err(|_| EventStoreError::InvalidCheckpoint(after.as_str().to_string()))?
        };
        let inner = lock(&self.inner);
        let to = inner.log.len().min(from.saturating_add(max));
        let events: Vec<RecordedEvent> = inner
            .log
            .get(from.min(to)..to)
            .unwrap_or_default()
            .iter()
            .filter_map(|(s, v)| recorded(&inner, s, *v))
            .collect();
        Ok(AllSlice {
            events,
            next: Checkpoint(to.max(from).to_string()),
            done: to == inner.log.len(),
        })
    }

    async fn stream_version(&self, stream_id: &str) -> Result<u64, EventStoreError> {
        Ok(lock(&self.inner)
            .streams
            .get(stream_id)
            .and_then(|s| s.keys().next_back().copied())
            .unwrap_or(0))
    }
}

#[async_trait]
impl EventStore for MemoryEventStore {
    async fn append(
        &self,
        stream_id: &str,
        expected_version: u64,
        event: &StoredEvent,
    ) -> Result<Appended, PortError> {
        append_one(self, stream_id, expected_version, event).await
    }
}
