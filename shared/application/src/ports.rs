//! The small traits handlers depend on. AWS adapters live in the `aws-adapters` crate,
//! in-memory ones for tests in `testkit`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use domain::access::{DirectoryFacts, Lookup};
use domain::ack::{AckCode, AckTarget};
use domain::dashboard::View;
use domain::detection::PatientState;
use domain::envelope::Envelope;
use domain::escalation::{FamilyContact, VillageRoster, Worker};
use domain::events::{AlertRaised, AlertResolved, NotificationKind, NotificationRequested};
use domain::routing::DirectoryEntry;

/// Events as the store keeps them are domain data; re-exported here because every
/// event-store port speaks in them.
pub use domain::recorded::StoredEvent;

/// Why a port call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PortError {
    /// An optimistic-concurrency check failed: someone else wrote `key` first.
    #[error("version conflict on {key}: expected version {expected}, found {actual:?}")]
    Conflict {
        key: String,
        expected: u64,
        actual: Option<u64>,
    },
    /// The backing service failed or refused the call.
    #[error("{0}")]
    Backend(String),
    /// The service rejected the request itself as invalid (e.g. SNS `InvalidParameter` for
    /// a phone number): sending the same request again can never succeed.
    #[error("rejected: {0}")]
    Rejected(String),
}

impl PortError {
    pub fn backend(context: &str, err: impl std::fmt::Display) -> PortError {
        PortError::Backend(format!("{context}: {err}"))
    }
}

/// An event whose data does not serialise (see [`StoredEvent::from_envelope`]) cannot be
/// stored or sent.
impl From<serde_json::Error> for PortError {
    fn from(err: serde_json::Error) -> PortError {
        PortError::backend("serialising event data", err)
    }
}

/// One record for the readings stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRecord {
    pub partition_key: String,
    pub data: Vec<u8>,
}

/// Where `ingest` puts accepted readings (Kinesis).
#[async_trait]
pub trait ReadingSink: Send + Sync {
    /// Writes every record or fails; records the stream rejects are retried with backoff,
    /// never past `deadline` (the invocation's, less a reserve: `retry::put_all`).
    async fn put(
        &self,
        records: Vec<StreamRecord>,
        deadline: Option<DateTime<Utc>>,
    ) -> Result<(), PortError>;
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// The event was written as the new version.
    Written,
    /// The same event (same id) was already stored at that version: nothing written.
    Duplicate,
}

/// The append-only event store.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Appends `event` to `stream_id` as version `expected_version + 1`, only if the
    /// stream's last version is exactly `expected_version` (0 = no stream). Otherwise a
    /// [`PortError::Conflict`] carrying the current version; an event id that is already
    /// stored is [`Appended::Duplicate`] and writes nothing. The full event store
    /// (expected-version modes, batches, reads) is [`crate::event_store::EventStreams`].
    async fn append(
        &self,
        stream_id: &str,
        expected_version: u64,
        event: &StoredEvent,
    ) -> Result<Appended, PortError>;
}

/// A value with the version it was read at (0 = never written).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Versioned<T> {
    pub version: u64,
    pub value: T,
}

/// Per-patient detection state, with optimistic concurrency.
#[async_trait]
pub trait PatientStateStore: Send + Sync {
    async fn load(&self, patient_id: &str) -> Result<Versioned<PatientState>, PortError>;
    /// Stores `state` as version `expected_version + 1` if the stored version is still
    /// `expected_version`; otherwise [`PortError::Conflict`].
    async fn save(
        &self,
        patient_id: &str,
        expected_version: u64,
        state: &PatientState,
    ) -> Result<(), PortError>;
    /// Ids of patients whose state is due for the sweep (`state.due_at` at or before
    /// `now_ms`) in sweep shard `shard` (see [`domain::detection::due_shard`]), at most
    /// `limit`, most overdue first. Served by an index of due states, never a scan.
    async fn due(&self, shard: u32, now_ms: i64, limit: usize) -> Result<Vec<String>, PortError>;
    /// Whether this store writes the closed hours of recent vitals itself, when it writes
    /// the states that no longer hold them (the per-shard snapshot does, issue 15); if
    /// not, `detect` writes them before each save.
    fn defers_vitals(&self) -> bool {
        false
    }
}

/// The dashboard's read models ([`View`]), one item per view, with
/// optimistic concurrency: `version` counts the saves of a view.
#[async_trait]
pub trait ReadModels: Send + Sync {
    /// The view with this id and its version (0 and `None` when there is none).
    async fn load(&self, view_id: &str) -> Result<Versioned<Option<View>>, PortError>;
    /// Stores `view` as version `expected_version + 1` if the stored version is still
    /// `expected_version`; otherwise [`PortError::Conflict`].
    async fn save(&self, expected_version: u64, view: &View) -> Result<(), PortError>;
}

/// The patient -> health worker directory.
#[async_trait]
pub trait Directory: Send + Sync {
    async fn get(&self, patient_id: &str) -> Result<Option<DirectoryEntry>, PortError>;
}

/// The directory items that decide who may act on whose patients (patient entries, village
/// rosters, device bindings), read in as few requests as the store allows: one batch
/// (DynamoDB `BatchGetItem`, 100 keys a request) for a whole [`Lookup`], never one request
/// per item.
#[async_trait]
pub trait AccessDirectory: Send + Sync {
    /// The items of `lookup` that exist (an absent patient is not registered).
    async fn facts(&self, lookup: &Lookup) -> Result<DirectoryFacts, PortError>;
}

/// Publishes alert events for fan-out (SNS alerts topic): raised alerts, and resolutions
/// so the health worker hears that an alert cleared.
#[async_trait]
pub trait AlertPublisher: Send + Sync {
    async fn publish(&self, alert: &Envelope<AlertRaised>) -> Result<(), PortError>;
    async fn publish_resolved(&self, resolved: &Envelope<AlertResolved>) -> Result<(), PortError>;
}

/// Hands notification requests to `notify` (SQS).
#[async_trait]
pub trait NotificationQueue: Send + Sync {
    async fn send(&self, request: &Envelope<NotificationRequested>) -> Result<(), PortError>;
}

/// A notification row of the outbox table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub notification_id: String,
    pub alert_id: String,
    pub recipient_id: String,
    pub recipient_phone: String,
    pub message: String,
    pub channel: String,
    pub correlation_id: String,
    /// `alert` or `cleared` (stored as the row's `kind`).
    pub kind: NotificationKind,
}

/// What claiming a notification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First attempt: the row was created as pending; deliver it.
    New,
    /// An earlier attempt claimed it but did not finish: deliver it again.
    Pending,
    /// Already delivered: do nothing.
    AlreadySent,
}

/// The notifications outbox: one row per notification, the record of what was sent.
#[async_trait]
pub trait Outbox: Send + Sync {
    async fn claim(&self, entry: &OutboxEntry) -> Result<Claim, PortError>;
    async fn mark_sent(
        &self,
        notification_id: &str,
        provider_message_id: Option<&str>,
    ) -> Result<(), PortError>;
}

/// Delivers a text message to a phone.
#[async_trait]
pub trait MessageSender: Send + Sync {
    /// The channel name recorded with the notification.
    fn channel(&self) -> &'static str;
    /// Sends and returns the provider's message id, if it gives one.
    async fn send(&self, phone: &str, message: &str) -> Result<Option<String>, PortError>;
}

/// The `outbox` notification channel: the outbox row is the delivery (local runs and dry
/// runs); nothing leaves the system.
pub struct OutboxOnlySender;

#[async_trait]
impl MessageSender for OutboxOnlySender {
    fn channel(&self) -> &'static str {
        "outbox"
    }

    async fn send(&self, _phone: &str, _message: &str) -> Result<Option<String>, PortError> {
        Ok(None)
    }
}

/// A record that can never be processed (it does not decode), kept with its payload so
/// nothing is lost: an operator can fix and replay it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoisonRecord {
    /// Always `PoisonRecord`: tells these apart from Lambda's own on-failure records.
    pub kind: &'static str,
    /// The function that gave up on it.
    pub function: String,
    pub reason: String,
    pub event_source_arn: Option<String>,
    /// `shardId:sequenceNumber` for Kinesis, the message id for SQS.
    pub event_id: Option<String>,
    pub sequence_number: Option<String>,
    pub partition_key: Option<String>,
    /// The record's data, base64.
    pub data: String,
}

/// A queue message set aside unprocessed because it can never be processed (a permanent
/// error), with why. The body is kept as it was received, so it can be fixed and sent again.
#[derive(Debug, Clone, PartialEq)]
pub struct ParkedMessage {
    /// The message body, unchanged.
    pub body: String,
    /// The message's own string attributes (e.g. `eventType`, `correlationId`), kept.
    pub attributes: Vec<(String, String)>,
    /// The FIFO message group it came from, if any: parked messages keep their group's order.
    pub group_id: Option<String>,
    /// The SQS message id it had (also what deduplicates a repeated park).
    pub original_message_id: String,
    /// The function that parked it.
    pub function: String,
    /// A short stable code for the kind of error (e.g. `decode`, `invalid-phone`).
    pub error_code: String,
    /// The error, as text.
    pub reason: String,
    pub parked_at: DateTime<Utc>,
}

/// Where permanently failing messages are parked (the notify DLQ, with the reason in
/// message attributes: `aws_adapters::SqsParking`).
#[async_trait]
pub trait Parking: Send + Sync {
    async fn park(&self, message: &ParkedMessage) -> Result<(), PortError>;
}

/// Where poison records go (an SQS dead-letter queue).
#[async_trait]
pub trait DeadLetters: Send + Sync {
    async fn send(&self, record: &PoisonRecord) -> Result<(), PortError>;
}

// ------------------------------------------------------------------------ issue 6
// Reading streams, emergency saga messaging, workers, ambulance provider, step ledger.

/// Reads a whole stream of the event store, in version order (what the saga and
/// acknowledgements need). Every [`EventStreams`](crate::event_store::EventStreams) store
/// is one (the blanket impl is in [`crate::event_store`]).
#[async_trait]
pub trait EventReader: Send + Sync {
    async fn read_stream(&self, stream_id: &str) -> Result<Vec<StoredEvent>, PortError>;
}

/// The queues of the emergency saga and of alert escalation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// Inputs of the saga coordinator: step results and deadline checks.
    Saga,
    /// Commands for the step workers.
    Steps,
    /// Acknowledgement deadline checks of routed alerts.
    Escalation,
    /// Long saga timers (an emergency's open timeout), re-delayed until due.
    Timers,
}

/// Sends a JSON message (an envelope) to one of the [`Channel`]s, visible after
/// `delay_seconds` (SQS `DelaySeconds`, at most 900).
#[async_trait]
pub trait MessageBus: Send + Sync {
    async fn send(
        &self,
        channel: Channel,
        event_type: &str,
        body: &str,
        delay_seconds: u32,
    ) -> Result<(), PortError>;
}

/// Health workers and supervisors (workers table): contact, availability, reservation.
#[async_trait]
pub trait Workers: Send + Sync {
    async fn get(&self, worker_id: &str) -> Result<Option<Worker>, PortError>;
    /// Reserves an available worker for an emergency with a conditional write. `true` when
    /// the worker is now (or already was) reserved by this emergency, `false` when the worker
    /// does not exist, is unavailable or is reserved by another emergency.
    async fn reserve(&self, worker_id: &str, emergency_id: &str) -> Result<bool, PortError>;
    /// Releases the reservation if this emergency holds it; otherwise does nothing.
    async fn release(&self, worker_id: &str, emergency_id: &str) -> Result<(), PortError>;
}

/// Village rosters and family contacts (directory table, prefixed keys).
#[async_trait]
pub trait Contacts: Send + Sync {
    async fn roster(&self, village: &str) -> Result<Option<VillageRoster>, PortError>;
    async fn family(&self, patient_id: &str) -> Result<Option<FamilyContact>, PortError>;
}

/// What an ambulance provider answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "outcome", rename_all = "camelCase")]
pub enum DispatchOutcome {
    Dispatched,
    Failed { reason: String },
}

/// An ambulance dispatch provider.
#[async_trait]
pub trait AmbulanceProvider: Send + Sync {
    async fn dispatch(
        &self,
        request_id: &str,
        patient_id: &str,
        village: &str,
    ) -> Result<DispatchOutcome, PortError>;
    async fn cancel(&self, request_id: &str) -> Result<(), PortError>;
}

/// What claiming a step execution found.
#[derive(Debug, Clone, PartialEq)]
pub enum LedgerClaim {
    /// First attempt, or the claim of an earlier attempt expired (it crashed or timed out):
    /// execute the step, then [`StepLedger::complete`] it.
    New,
    /// Another attempt claimed it, has not finished, and its claim has not expired yet.
    InProgress,
    /// Done earlier, with this recorded outcome: reply with it, do not execute again.
    Done(Value),
}

/// How long a step-ledger claim holds by default: at least the steps function's timeout
/// (30 s), so an attempt still running is never taken over, and less than the steps queue's
/// visibility timeout (180 s), so the first redelivery after a crash takes the claim over.
pub const LEDGER_CLAIM_TIMEOUT_SECONDS: i64 = 60;

/// Records step executions that must happen once (e.g. an ambulance request).
///
/// A claim expires, as Powertools' idempotency in-progress records do: it is written with
/// an in-progress expiry (`now` + the adapter's claim timeout, [`LEDGER_CLAIM_TIMEOUT_SECONDS`]
/// unless configured). Until then a repeat is [`LedgerClaim::InProgress`]; after it, the
/// attempt that claimed it must have ended without completing (a crash between claim and
/// complete), and the next claim takes it over with a conditional write, so only one
/// re-claimer wins ([`crate::idempotency::in_progress_expired`] is the rule).
#[async_trait]
pub trait StepLedger: Send + Sync {
    /// Claims the execution of `key` at `now` (the invocation's clock).
    async fn claim(&self, key: &str, now: DateTime<Utc>) -> Result<LedgerClaim, PortError>;
    async fn complete(&self, key: &str, outcome: &Value) -> Result<(), PortError>;
}

// ------------------------------------------------------------------------ issue 12
// Acknowledgement by SMS reply.

/// What registering an acknowledgement code found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registered {
    /// The code now points to the target.
    New,
    /// It already pointed to this target (a repeat): nothing changed.
    Existing,
    /// It points to another target and keeps doing so: this target needs another code.
    Taken,
}

/// The register of acknowledgement codes (code -> what it acknowledges), so a reply such
/// as "ACK 4K7Q2M" can be resolved. A code never points to two targets.
#[async_trait]
pub trait AckCodes: Send + Sync {
    /// Points `code` to `target` unless it points elsewhere already (a conditional write).
    async fn register(&self, code: &AckCode, target: &AckTarget) -> Result<Registered, PortError>;
    /// What `code` acknowledges, if it was registered.
    async fn resolve(&self, code: &AckCode) -> Result<Option<AckTarget>, PortError>;
}

// ------------------------------------------------------------------------ issue 14
// The onboarding API's writes.

/// One write of the onboarding API to the directory or workers table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectoryWrite {
    /// A patient's directory entry (replaced whole).
    Patient(DirectoryEntry),
    /// A patient's family contact (`family#{patientId}`).
    Family(FamilyContact),
    /// Deletes the family contact of this patient, if any.
    RemoveFamily(String),
    /// A device binding (`device#{clientId}`).
    Device {
        client_id: String,
        binding: domain::access::DeviceBinding,
    },
    /// Deletes the binding of this client id, if any.
    RemoveDevice(String),
    /// A village roster, written only if the stored roster is still `previous` (`None`:
    /// none stored); otherwise the whole write fails with [`PortError::Conflict`].
    Roster {
        roster: VillageRoster,
        previous: Option<VillageRoster>,
    },
    /// A worker's fields (name, phone, village, availability, language); a reservation held
    /// by an emergency is kept.
    Worker(Worker),
}

/// The most writes one [`DirectoryWriter::write_all`] takes (DynamoDB's
/// `TransactWriteItems` limit).
pub const MAX_DIRECTORY_WRITES: usize = 100;

/// Writes the directory and workers tables for the onboarding API.
#[async_trait]
pub trait DirectoryWriter: Send + Sync {
    /// Writes every one of `writes` or none (one `TransactWriteItems`, at most
    /// [`MAX_DIRECTORY_WRITES`], each item at most once). A roster whose condition fails is
    /// a [`PortError::Conflict`] (someone changed it since it was read: read and try again).
    async fn write_all(&self, writes: &[DirectoryWrite]) -> Result<(), PortError>;
}
