//! In-memory adapters of every port, for handler unit tests. They keep the semantics the
//! AWS adapters promise (conditional appends, optimistic versions, outbox claims).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::detection::PatientState;
use crate::envelope::Envelope;
use crate::events::{AlertRaised, NotificationRequested};
use crate::ports::*;
use crate::routing::DirectoryEntry;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A test that panicked while holding the lock already failed; keep the data.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Records what was put; fails every call while `fail_with` is set.
#[derive(Default)]
pub struct MemorySink {
    pub records: Mutex<Vec<StreamRecord>>,
    pub fail_with: Mutex<Option<String>>,
}

#[async_trait]
impl ReadingSink for MemorySink {
    async fn put(&self, records: Vec<StreamRecord>) -> Result<(), PortError> {
        if let Some(problem) = lock(&self.fail_with).clone() {
            return Err(PortError::Backend(problem));
        }
        lock(&self.records).extend(records);
        Ok(())
    }
}

/// Streams of events keyed by stream id, then version (from 1).
#[derive(Default)]
pub struct MemoryEventStore {
    pub streams: Mutex<BTreeMap<String, BTreeMap<u64, StoredEvent>>>,
}

impl MemoryEventStore {
    pub fn stream(&self, stream_id: &str) -> Vec<StoredEvent> {
        lock(&self.streams)
            .get(stream_id)
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn all(&self) -> Vec<StoredEvent> {
        lock(&self.streams)
            .values()
            .flat_map(|s| s.values().cloned())
            .collect()
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
        let mut streams = lock(&self.streams);
        let stream = streams.entry(stream_id.to_string()).or_default();
        let version = expected_version + 1;
        match stream.get(&version) {
            Some(existing) if existing.event_id == event.event_id => Ok(Appended::Duplicate),
            Some(_) => Err(PortError::Conflict {
                key: stream_id.to_string(),
                expected: expected_version,
                actual: stream.keys().next_back().copied(),
            }),
            None => {
                stream.insert(version, event.clone());
                Ok(Appended::Written)
            }
        }
    }
}

#[derive(Default)]
pub struct MemoryStateStore {
    pub states: Mutex<HashMap<String, Versioned<PatientState>>>,
    pub saves: Mutex<usize>,
}

#[async_trait]
impl PatientStateStore for MemoryStateStore {
    async fn load(&self, patient_id: &str) -> Result<Versioned<PatientState>, PortError> {
        Ok(lock(&self.states)
            .get(patient_id)
            .cloned()
            .unwrap_or_default())
    }

    async fn save(
        &self,
        patient_id: &str,
        expected_version: u64,
        state: &PatientState,
    ) -> Result<(), PortError> {
        let mut states = lock(&self.states);
        let current = states.get(patient_id).map(|s| s.version).unwrap_or(0);
        if current != expected_version {
            return Err(PortError::Conflict {
                key: patient_id.to_string(),
                expected: expected_version,
                actual: Some(current),
            });
        }
        states.insert(
            patient_id.to_string(),
            Versioned {
                version: expected_version + 1,
                value: state.clone(),
            },
        );
        *lock(&self.saves) += 1;
        Ok(())
    }
}

#[derive(Default)]
pub struct MemoryDirectory {
    pub entries: Mutex<HashMap<String, DirectoryEntry>>,
}

impl MemoryDirectory {
    pub fn with(entries: impl IntoIterator<Item = DirectoryEntry>) -> Self {
        let dir = MemoryDirectory::default();
        lock(&dir.entries).extend(entries.into_iter().map(|e| (e.patient_id.clone(), e)));
        dir
    }
}

#[async_trait]
impl Directory for MemoryDirectory {
    async fn get(&self, patient_id: &str) -> Result<Option<DirectoryEntry>, PortError> {
        Ok(lock(&self.entries).get(patient_id).cloned())
    }
}

#[derive(Default)]
pub struct MemoryPublisher {
    pub published: Mutex<Vec<Envelope<AlertRaised>>>,
}

#[async_trait]
impl AlertPublisher for MemoryPublisher {
    async fn publish(&self, alert: &Envelope<AlertRaised>) -> Result<(), PortError> {
        lock(&self.published).push(alert.clone());
        Ok(())
    }
}

#[derive(Default)]
pub struct MemoryQueue {
    pub sent: Mutex<Vec<Envelope<NotificationRequested>>>,
}

#[async_trait]
impl NotificationQueue for MemoryQueue {
    async fn send(&self, request: &Envelope<NotificationRequested>) -> Result<(), PortError> {
        lock(&self.sent).push(request.clone());
        Ok(())
    }
}

/// One outbox row: the entry, its status (`pending` / `sent`) and provider message id.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    pub entry: OutboxEntry,
    pub status: &'static str,
    pub provider_message_id: Option<String>,
}

/// Outbox rows by notification id.
#[derive(Default)]
pub struct MemoryOutbox {
    pub rows: Mutex<BTreeMap<String, OutboxRow>>,
}

#[async_trait]
impl Outbox for MemoryOutbox {
    async fn claim(&self, entry: &OutboxEntry) -> Result<Claim, PortError> {
        let mut rows = lock(&self.rows);
        match rows.get(&entry.notification_id) {
            Some(row) if row.status == "sent" => Ok(Claim::AlreadySent),
            Some(_) => Ok(Claim::Pending),
            None => {
                rows.insert(
                    entry.notification_id.clone(),
                    OutboxRow {
                        entry: entry.clone(),
                        status: "pending",
                        provider_message_id: None,
                    },
                );
                Ok(Claim::New)
            }
        }
    }

    async fn mark_sent(
        &self,
        notification_id: &str,
        provider_message_id: Option<&str>,
    ) -> Result<(), PortError> {
        let mut rows = lock(&self.rows);
        let row = rows
            .get_mut(notification_id)
            .ok_or_else(|| PortError::Backend(format!("no outbox row {notification_id}")))?;
        row.status = "sent";
        row.provider_message_id = provider_message_id.map(str::to_string);
        Ok(())
    }
}

/// Records messages instead of sending them.
#[derive(Default)]
pub struct MemorySender {
    pub sent: Mutex<Vec<(String, String)>>,
}

#[async_trait]
impl MessageSender for MemorySender {
    fn channel(&self) -> &'static str {
        "memory"
    }

    async fn send(&self, phone: &str, message: &str) -> Result<Option<String>, PortError> {
        let mut sent = lock(&self.sent);
        sent.push((phone.to_string(), message.to_string()));
        Ok(Some(format!("msg-{}", sent.len())))
    }
}

/// Keeps poison records; fails every call while `fail_with` is set.
#[derive(Default)]
pub struct MemoryDeadLetters {
    pub records: Mutex<Vec<PoisonRecord>>,
    pub fail_with: Mutex<Option<String>>,
}

#[async_trait]
impl DeadLetters for MemoryDeadLetters {
    async fn send(&self, record: &PoisonRecord) -> Result<(), PortError> {
        if let Some(problem) = lock(&self.fail_with).clone() {
            return Err(PortError::Backend(problem));
        }
        lock(&self.records).push(record.clone());
        Ok(())
    }
}
