//! In-memory adapters of every port, for handler unit tests, one module per port as in
//! `aws_adapters`. They keep the semantics the AWS adapters promise (conditional appends,
//! optimistic versions, outbox claims).
//!
//! - `reading_sink`: `ReadingSink` (`MemorySink`).
//! - `event_store`: `EventStreams` and `EventStore` (`MemoryEventStore`, `MemoryEvents`).
//! - `idempotency_store`: `IdempotencyStore` (`MemoryIdempotencyStore`).
//! - `state_store`: `PatientStateStore` (`MemoryStateStore`).
//! - `shard_state`: `ShardStateStore` and `StreamReplay` (`MemoryShardStore`, `MemoryStream`).
//! - `read_models`: `ReadModels` (`MemoryReadModels`).
//! - `directory`: `Directory` and `AccessDirectory` (`MemoryDirectory`).
//! - `directory_writer`: `DirectoryWriter` (`MemoryDirectoryWriter`).
//! - `contacts`: `Contacts` (`MemoryContacts`).
//! - `outbox`: `Outbox` (`MemoryOutbox`, `OutboxRow`).
//! - `workers`: `Workers` (`MemoryWorkers`).
//! - `step_ledger`: `StepLedger` (`MemoryLedger`).
//! - `alert_publisher`: `AlertPublisher` (`MemoryPublisher`).
//! - `message_sender`: `MessageSender` (`MemorySender`).
//! - `notification_queue`: `NotificationQueue` (`MemoryQueue`).
//! - `dead_letters`: `DeadLetters` (`MemoryDeadLetters`).
//! - `parking`: `Parking` (`MemoryParking`).
//! - `message_bus`: `MessageBus` (`MemoryBus`).
//! - `ack_codes`: `AckCodes` (`MemoryAckCodes`).
//! - `vitals`: `RecentVitals` and `VillageStats` (`MemoryVitals`, `MemoryVillageStats`).

use std::collections::HashMap;
use std::sync::Mutex;

use application::ports::{PortError, Versioned};

mod ack_codes;
mod alert_publisher;
mod contacts;
mod dead_letters;
mod directory;
mod directory_writer;
mod event_store;
mod idempotency_store;
mod message_bus;
mod message_sender;
mod notification_queue;
mod outbox;
mod parking;
mod read_models;
mod reading_sink;
mod shard_state;
mod state_store;
mod step_ledger;
mod vitals;
mod workers;

pub use ack_codes::MemoryAckCodes;
pub use alert_publisher::MemoryPublisher;
pub use contacts::MemoryContacts;
pub use dead_letters::MemoryDeadLetters;
pub use directory::MemoryDirectory;
pub use directory_writer::MemoryDirectoryWriter;
pub use event_store::{MemoryEventStore, MemoryEvents};
pub use idempotency_store::MemoryIdempotencyStore;
pub use message_bus::MemoryBus;
pub use message_sender::MemorySender;
pub use notification_queue::MemoryQueue;
pub use outbox::{MemoryOutbox, OutboxRow};
pub use parking::MemoryParking;
pub use read_models::MemoryReadModels;
pub use reading_sink::MemorySink;
pub use shard_state::{MemoryShardStore, MemoryStream};
pub use state_store::MemoryStateStore;
pub use step_ledger::{LedgerRow, MemoryLedger};
pub use vitals::{MemoryVillageStats, MemoryVitals};
pub use workers::MemoryWorkers;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A test that panicked while holding the lock already failed; keep the data.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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
