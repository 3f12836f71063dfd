//! [`EventStreams`] and [`EventStore`] in memory.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use application::event_store::*;
use application::ports::{Appended, EventStore, PortError, StoredEvent};

use super::lock;

/// The event store in memory: streams keyed by stream id, then version (from 1), a global
/// log in position order, and the dedupe index of appended event ids. Same semantics as
/// `aws_adapters::DynamoEventStore` (dedupe entries do not expire here).
#[derive(Default)]
pub struct MemoryEventStore {
    pub inner: Mutex<MemoryEvents>,
}

#[derive(Default)]
pub struct MemoryEvents {
    pub streams: BTreeMap<String, BTreeMap<u64, StoredEvent>>,
    /// (stream, version) in global position order: position = index + 1.
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

    /// Every event in global position order.
    pub fn all(&self) -> Vec<StoredEvent> {
        let inner = lock(&self.inner);
        inner
            .log
            .iter()
            .filter_map(|(s, v)| inner.streams.get(s).and_then(|s| s.get(v)).cloned())
            .collect()
    }
}

fn recorded(inner: &MemoryEvents, position: usize) -> Option<RecordedEvent> {
    let (stream_id, version) = inner.log.get(position.checked_sub(1)?)?;
    let event = inner.streams.get(stream_id)?.get(version)?.clone();
    Some(RecordedEvent {
        stream_id: stream_id.clone(),
        stream_version: *version,
        position: Position(position as u64),
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
            .filter_map(|(version, _)| {
                let position = inner
                    .log
                    .iter()
                    .position(|(s, v)| s == stream_id && v == version)?;
                recorded(&inner, position + 1)
            })
            .collect())
    }

    async fn read_all(&self, after: Position, max: usize) -> Result<AllSlice, EventStoreError> {
        let inner = lock(&self.inner);
        let events: Vec<RecordedEvent> = (after.0 as usize + 1..=inner.log.len())
            .take(max)
            .filter_map(|p| recorded(&inner, p))
            .collect();
        let next = events.last().map_or(after, |e| e.position);
        Ok(AllSlice { events, next })
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
