//! Events as the event store records them: the stored form of an [`Envelope`] (its data as
//! JSON, so that old schema versions can be read and upcast) and where it sits in its stream
//! and the checkpoint of a read of the whole store. Pure data: the store itself is `application::event_store`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::envelope::{Envelope, EventData};

/// An event as the event store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredEvent {
    pub event_id: String,
    pub event_type: String,
    pub schema_version: u32,
    pub timestamp: DateTime<Utc>,
    pub source: String,
    pub correlation_id: String,
    pub causation_id: String,
    pub data: Value,
}

impl StoredEvent {
    pub fn from_envelope<T: EventData + Serialize>(
        env: &Envelope<T>,
    ) -> Result<Self, serde_json::Error> {
        Ok(StoredEvent {
            event_id: env.event_id.clone(),
            event_type: env.event_type.clone(),
            schema_version: env.version,
            timestamp: env.timestamp,
            source: env.source.clone(),
            correlation_id: env.correlation_id.clone(),
            causation_id: env.causation_id.clone(),
            data: serde_json::to_value(&env.data)?,
        })
    }
}

/// Where a read of the whole store (`read_all`) stands: opaque to callers (each adapter
/// encodes its own), the empty string being the start. Save it anywhere and pass it back to
/// resume. It is not a global position: the store keeps no global counter
/// (docs/event-store.md, "No global position").
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Checkpoint(pub String);

impl Checkpoint {
    /// Before the first event.
    pub fn start() -> Checkpoint {
        Checkpoint(String::new())
    }

    pub fn is_start(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An event as read back: the stored event plus where it sits in its stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedEvent {
    pub stream_id: String,
    /// Version in its stream, from 1.
    pub stream_version: u64,
    pub event: StoredEvent,
}
