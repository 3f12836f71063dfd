//! In-memory adapters of every port, for handler unit tests. They keep the semantics the
//! AWS adapters promise (conditional appends, optimistic versions, outbox claims).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use application::event_store::*;
use application::idempotency::{IdempotencyStore, Record as IdemRecord, Status as IdemStatus};
use application::ports::*;
use domain::dashboard::View;
use domain::detection::PatientState;
use domain::envelope::Envelope;
use domain::events::{AlertRaised, AlertResolved, NotificationRequested};
use domain::routing::DirectoryEntry;

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

/// Idempotency records by key; the same conditional semantics as the DynamoDB store.
#[derive(Default)]
pub struct MemoryIdempotencyStore {
    pub records: Mutex<HashMap<String, IdemRecord>>,
}

#[async_trait]
impl IdempotencyStore for MemoryIdempotencyStore {
    async fn put_in_progress(
        &self,
        record: &IdemRecord,
        now: DateTime<Utc>,
    ) -> Result<Option<IdemRecord>, PortError> {
        let mut records = lock(&self.records);
        if let Some(existing) = records.get(&record.key)
            && existing.status_at(now) != IdemStatus::Expired
        {
            return Ok(Some(existing.clone()));
        }
        records.insert(record.key.clone(), record.clone());
        Ok(None)
    }

    async fn complete(&self, key: &str, result: &str, expires_at: i64) -> Result<(), PortError> {
        let mut records = lock(&self.records);
        let record = records
            .get_mut(key)
            .ok_or_else(|| PortError::Backend(format!("no idempotency record {key}")))?;
        record.status = IdemStatus::Completed;
        record.result = Some(result.to_string());
        record.expires_at = expires_at;
        record.in_progress_expires_at = None;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), PortError> {
        lock(&self.records).remove(key);
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<IdemRecord>, PortError> {
        Ok(lock(&self.records).get(key).cloned())
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
        save_versioned(&mut lock(&self.states), patient_id, expected_version, state)?;
        *lock(&self.saves) += 1;
        Ok(())
    }

    async fn due(&self, shard: u32, now_ms: i64, limit: usize) -> Result<Vec<String>, PortError> {
        let mut due: Vec<(i64, String)> = lock(&self.states)
            .iter()
            .filter(|(id, _)| domain::detection::due_shard(id) == shard)
            .filter_map(|(id, s)| s.value.due_at.map(|at| (at, id.clone())))
            .filter(|(at, _)| *at <= now_ms)
            .collect();
        due.sort();
        Ok(due.into_iter().take(limit).map(|(_, id)| id).collect())
    }
}

/// Stores `value` under `key` as version `expected_version + 1` if the stored version is
/// still `expected_version` (0 = absent); otherwise a conflict.
fn save_versioned<T: Clone>(
    map: &mut HashMap<String, Versioned<T>>,
    key: &str,
    expected_version: u64,
    value: &T,
) -> Result<(), PortError> {
    let current = map.get(key).map(|s| s.version).unwrap_or(0);
    if current != expected_version {
        return Err(PortError::Conflict {
            key: key.to_string(),
            expected: expected_version,
            actual: Some(current),
        });
    }
    map.insert(
        key.to_string(),
        Versioned {
            version: expected_version + 1,
            value: value.clone(),
        },
    );
    Ok(())
}

/// Dashboard views in memory; counts saves.
#[derive(Default)]
pub struct MemoryReadModels {
    pub views: Mutex<HashMap<String, Versioned<View>>>,
    pub saves: Mutex<usize>,
}

impl MemoryReadModels {
    pub fn get(&self, view_id: &str) -> Option<View> {
        lock(&self.views).get(view_id).map(|v| v.value.clone())
    }
}

#[async_trait]
impl ReadModels for MemoryReadModels {
    async fn load(&self, view_id: &str) -> Result<Versioned<Option<View>>, PortError> {
        Ok(match lock(&self.views).get(view_id) {
            Some(v) => Versioned {
                version: v.version,
                value: Some(v.value.clone()),
            },
            None => Versioned::default(),
        })
    }

    async fn save(&self, expected_version: u64, view: &View) -> Result<(), PortError> {
        save_versioned(&mut lock(&self.views), &view.id(), expected_version, view)?;
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
    pub resolved: Mutex<Vec<Envelope<AlertResolved>>>,
}

#[async_trait]
impl AlertPublisher for MemoryPublisher {
    async fn publish(&self, alert: &Envelope<AlertRaised>) -> Result<(), PortError> {
        lock(&self.published).push(alert.clone());
        Ok(())
    }

    async fn publish_resolved(&self, resolved: &Envelope<AlertResolved>) -> Result<(), PortError> {
        lock(&self.resolved).push(resolved.clone());
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

// ------------------------------------------------------------------------ issue 6

use domain::escalation::{FamilyContact, VillageRoster, Worker};

/// Messages sent per channel: `(event type, body, delay seconds)`.
#[derive(Default)]
pub struct MemoryBus {
    pub sent: Mutex<Vec<(Channel, String, String, u32)>>,
}

impl MemoryBus {
    /// Takes every message sent so far to `channel` (body, delay).
    pub fn take(&self, channel: Channel) -> Vec<(String, u32)> {
        let mut sent = lock(&self.sent);
        let (taken, kept): (Vec<_>, Vec<_>) = sent.drain(..).partition(|m| m.0 == channel);
        *sent = kept;
        taken.into_iter().map(|m| (m.2, m.3)).collect()
    }
}

#[async_trait]
impl MessageBus for MemoryBus {
    async fn send(
        &self,
        channel: Channel,
        event_type: &str,
        body: &str,
        delay_seconds: u32,
    ) -> Result<(), PortError> {
        lock(&self.sent).push((
            channel,
            event_type.to_string(),
            body.to_string(),
            delay_seconds,
        ));
        Ok(())
    }
}

/// Workers by id; reservations behave like the conditional update of the DynamoDB adapter.
#[derive(Default)]
pub struct MemoryWorkers {
    pub workers: Mutex<BTreeMap<String, Worker>>,
    /// Successful reserve calls that changed a reservation.
    pub reservations: Mutex<usize>,
}

impl MemoryWorkers {
    pub fn with(workers: impl IntoIterator<Item = Worker>) -> Self {
        let store = MemoryWorkers::default();
        lock(&store.workers).extend(workers.into_iter().map(|w| (w.worker_id.clone(), w)));
        store
    }

    pub fn reserved_by(&self, worker_id: &str) -> Option<String> {
        lock(&self.workers)
            .get(worker_id)
            .and_then(|w| w.reserved_by.clone())
    }
}

#[async_trait]
impl Workers for MemoryWorkers {
    async fn get(&self, worker_id: &str) -> Result<Option<Worker>, PortError> {
        Ok(lock(&self.workers).get(worker_id).cloned())
    }

    async fn reserve(&self, worker_id: &str, emergency_id: &str) -> Result<bool, PortError> {
        let mut workers = lock(&self.workers);
        let Some(worker) = workers.get_mut(worker_id) else {
            return Ok(false);
        };
        match worker.reserved_by.as_deref() {
            Some(holder) => Ok(holder == emergency_id && worker.available),
            None if worker.available => {
                worker.reserved_by = Some(emergency_id.to_string());
                *lock(&self.reservations) += 1;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn release(&self, worker_id: &str, emergency_id: &str) -> Result<(), PortError> {
        let mut workers = lock(&self.workers);
        if let Some(worker) = workers.get_mut(worker_id)
            && worker.reserved_by.as_deref() == Some(emergency_id)
        {
            worker.reserved_by = None;
        }
        Ok(())
    }
}

#[derive(Default)]
pub struct MemoryContacts {
    pub rosters: Mutex<HashMap<String, VillageRoster>>,
    pub families: Mutex<HashMap<String, FamilyContact>>,
}

#[async_trait]
impl Contacts for MemoryContacts {
    async fn roster(&self, village: &str) -> Result<Option<VillageRoster>, PortError> {
        Ok(lock(&self.rosters).get(village).cloned())
    }

    async fn family(&self, patient_id: &str) -> Result<Option<FamilyContact>, PortError> {
        Ok(lock(&self.families).get(patient_id).cloned())
    }
}

/// Step claims and outcomes by key.
#[derive(Default)]
pub struct MemoryLedger {
    pub rows: Mutex<BTreeMap<String, Option<serde_json::Value>>>,
}

#[async_trait]
impl StepLedger for MemoryLedger {
    async fn claim(&self, key: &str) -> Result<LedgerClaim, PortError> {
        let mut rows = lock(&self.rows);
        match rows.get(key) {
            Some(Some(outcome)) => Ok(LedgerClaim::Done(outcome.clone())),
            Some(None) => Ok(LedgerClaim::InProgress),
            None => {
                rows.insert(key.to_string(), None);
                Ok(LedgerClaim::New)
            }
        }
    }

    async fn complete(&self, key: &str, outcome: &serde_json::Value) -> Result<(), PortError> {
        lock(&self.rows).insert(key.to_string(), Some(outcome.clone()));
        Ok(())
    }
}
