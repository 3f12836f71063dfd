//! The envelope every event on the wire and in the event store uses.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One event: metadata shared by every event type plus the typed payload in `data`.
///
/// `correlation_id` follows a reading from the HTTP request to the last notification;
/// `causation_id` is the id of the event (or request) that directly caused this one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<T> {
    pub event_id: String,
    pub event_type: String,
    /// Schema version of `data` for this `event_type`.
    pub version: u32,
    #[serde(deserialize_with = "crate::timestamp::deserialize")]
    pub timestamp: DateTime<Utc>,
    /// The function (or system) that emitted the event.
    pub source: String,
    pub correlation_id: String,
    pub causation_id: String,
    pub data: T,
}

/// An event payload type: names its `eventType` and current schema version.
///
/// Derive it: `#[derive(EventData)]` takes the type's name as the event type and version 1;
/// `#[event_data(event_type = "ReadingRecorded", version = 2)]` says otherwise. Every type
/// that implements it has a published contract (`tests/contracts.rs`).
pub trait EventData {
    const EVENT_TYPE: &'static str;
    const VERSION: u32;
}

/// `#[derive(EventData)]`, from the `domain-derive` crate.
pub use domain_derive::EventData;

/// Who emitted an event and why: carried from one envelope to the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lineage {
    pub correlation_id: String,
    pub causation_id: String,
}

impl<T: EventData> Envelope<T> {
    /// A new envelope for `data` with the given id, emitter and lineage.
    pub fn new(
        event_id: impl Into<String>,
        source: &str,
        lineage: Lineage,
        timestamp: DateTime<Utc>,
        data: T,
    ) -> Self {
        Envelope {
            event_id: event_id.into(),
            event_type: T::EVENT_TYPE.to_string(),
            version: T::VERSION,
            timestamp,
            source: source.to_string(),
            correlation_id: lineage.correlation_id,
            causation_id: lineage.causation_id,
            data,
        }
    }

    /// The lineage for an event caused by this one: same correlation, caused by this event.
    pub fn child_lineage(&self) -> Lineage {
        Lineage {
            correlation_id: self.correlation_id.clone(),
            causation_id: self.event_id.clone(),
        }
    }
}

/// An [`Envelope`] whose strings borrow from the message they were decoded from (they are
/// copied only when the JSON escapes a character): what a consumer that only reads the
/// envelope during one batch decodes, to save five allocations per message.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BorrowedEnvelope<'a, T> {
    #[serde(borrow)]
    pub event_id: Cow<'a, str>,
    #[serde(borrow)]
    pub event_type: Cow<'a, str>,
    pub version: u32,
    #[serde(deserialize_with = "crate::timestamp::deserialize")]
    pub timestamp: DateTime<Utc>,
    #[serde(borrow)]
    pub source: Cow<'a, str>,
    #[serde(borrow)]
    pub correlation_id: Cow<'a, str>,
    #[serde(borrow)]
    pub causation_id: Cow<'a, str>,
    pub data: T,
}

impl<T> From<Envelope<T>> for BorrowedEnvelope<'static, T> {
    fn from(e: Envelope<T>) -> Self {
        BorrowedEnvelope {
            event_id: Cow::Owned(e.event_id),
            event_type: Cow::Owned(e.event_type),
            version: e.version,
            timestamp: e.timestamp,
            source: Cow::Owned(e.source),
            correlation_id: Cow::Owned(e.correlation_id),
            causation_id: Cow::Owned(e.causation_id),
            data: e.data,
        }
    }
}

impl<'a, T> BorrowedEnvelope<'a, T> {
    /// The same envelope with `f` applied to its data.
    pub fn map_data<U>(self, f: impl FnOnce(T) -> U) -> BorrowedEnvelope<'a, U> {
        BorrowedEnvelope {
            event_id: self.event_id,
            event_type: self.event_type,
            version: self.version,
            timestamp: self.timestamp,
            source: self.source,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            data: f(self.data),
        }
    }

    /// The owned envelope: the same fields, copied.
    pub fn into_owned(self) -> Envelope<T> {
        Envelope {
            event_id: self.event_id.into_owned(),
            event_type: self.event_type.into_owned(),
            version: self.version,
            timestamp: self.timestamp,
            source: self.source.into_owned(),
            correlation_id: self.correlation_id.into_owned(),
            causation_id: self.causation_id.into_owned(),
            data: self.data,
        }
    }
}

/// Why a message could not be decoded into the expected envelope.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("message is not valid JSON for an event envelope: {0}")]
    Json(#[from] serde_json::Error),
    #[error("expected eventType {expected}, got {actual}")]
    WrongType {
        expected: &'static str,
        actual: String,
    },
    #[error("eventType {event_type} version {actual} is newer than supported version {supported}")]
    UnsupportedVersion {
        event_type: &'static str,
        actual: u32,
        supported: u32,
    },
}

/// Decodes a JSON message into an envelope of `T`, checking its type and schema version.
///
/// A well-formed message is parsed once, header and data together, and its type and
/// version are checked afterwards. A message that does not parse as an envelope of `T` is
/// parsed again the careful way (header first, then the whole) so that the error says
/// what it always said: a wrong type or a newer version rather than a `data` mismatch.
pub fn decode<T>(bytes: &[u8]) -> Result<Envelope<T>, DecodeError>
where
    T: EventData + for<'de> Deserialize<'de>,
{
    // `from_str` skips the per-string UTF-8 checks of `from_slice`: the whole message is
    // checked once here (invalid UTF-8 takes the careful path, which reports it).
    if let Ok(text) = std::str::from_utf8(bytes)
        && let Ok(envelope) = serde_json::from_str::<Envelope<T>>(text)
    {
        check_header::<T>(&envelope.event_type, envelope.version)?;
        return Ok(envelope);
    }
    decode_carefully(bytes)
}

/// [`decode`] into a [`BorrowedEnvelope`]: the same checks, the same errors, the same
/// values, with the envelope's strings borrowed from `bytes`.
pub fn decode_borrowed<T>(bytes: &[u8]) -> Result<BorrowedEnvelope<'_, T>, DecodeError>
where
    T: EventData + for<'de> Deserialize<'de>,
{
    if let Ok(text) = std::str::from_utf8(bytes)
        && let Ok(envelope) = serde_json::from_str::<BorrowedEnvelope<'_, T>>(text)
    {
        check_header::<T>(&envelope.event_type, envelope.version)?;
        return Ok(envelope);
    }
    // Whatever the borrowed form did not take, the owned one decides (and explains).
    decode_carefully(bytes).map(BorrowedEnvelope::from)
}

/// The type and version check of [`decode`]: `T`'s event type, and no newer version.
pub fn check_header<T: EventData>(event_type: &str, version: u32) -> Result<(), DecodeError> {
    if event_type != T::EVENT_TYPE {
        return Err(DecodeError::WrongType {
            expected: T::EVENT_TYPE,
            actual: event_type.to_string(),
        });
    }
    if version > T::VERSION {
        return Err(DecodeError::UnsupportedVersion {
            event_type: T::EVENT_TYPE,
            actual: version,
            supported: T::VERSION,
        });
    }
    Ok(())
}

/// Header first (type, version), then the whole message: the error of a bad message.
fn decode_carefully<T>(bytes: &[u8]) -> Result<Envelope<T>, DecodeError>
where
    T: EventData + for<'de> Deserialize<'de>,
{
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Header {
        event_type: String,
        version: u32,
    }
    let header: Header = serde_json::from_slice(bytes)?;
    check_header::<T>(&header.event_type, header.version)?;
    Ok(serde_json::from_slice(bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::AlertRouted;

    fn routed() -> Envelope<AlertRouted> {
        Envelope::new(
            "e-1",
            "route",
            Lineage {
                correlation_id: "c-1".into(),
                causation_id: "a-1".into(),
            },
            Utc::now(),
            AlertRouted {
                alert_id: "a-1".into(),
                patient_id: "p-1".into(),
                worker_id: "w-1".into(),
                notification_id: "n-1".into(),
            },
        )
    }

    #[test]
    fn round_trips_with_camel_case_fields() {
        let env = routed();
        let json = serde_json::to_value(&env).unwrap();
        assert_eq!(json["eventType"], "AlertRouted");
        assert_eq!(json["correlationId"], "c-1");
        assert_eq!(json["data"]["alertId"], "a-1");
        let back: Envelope<AlertRouted> = decode(json.to_string().as_bytes()).unwrap();
        assert_eq!(back, env);
    }

    #[test]
    fn rejects_wrong_type_and_newer_version() {
        let mut json = serde_json::to_value(routed()).unwrap();
        json["eventType"] = "AlertRaised".into();
        let err = decode::<AlertRouted>(json.to_string().as_bytes()).unwrap_err();
        assert!(err.to_string().contains("expected eventType AlertRouted"));

        let mut json = serde_json::to_value(routed()).unwrap();
        json["version"] = 99.into();
        let err = decode::<AlertRouted>(json.to_string().as_bytes()).unwrap_err();
        assert!(err.to_string().contains("newer than supported"));
    }

    #[test]
    fn one_pass_decoding_gives_the_careful_results_and_errors() {
        let good = serde_json::to_value(routed()).unwrap();
        let variants: Vec<Vec<u8>> = [
            good.clone(),
            serde_json::json!({"eventType": "AlertRaised", "version": 1, "data": 5}),
            serde_json::json!({"eventType": "AlertRouted", "version": 2, "data": 5}),
            serde_json::json!({"eventType": "AlertRouted", "version": 1, "data": 5}),
            serde_json::json!({"eventType": "AlertRouted", "version": -1}),
            serde_json::json!({"version": 1}),
            serde_json::json!([]),
        ]
        .iter()
        .map(|v| v.to_string().into_bytes())
        .chain([
            b"not json".to_vec(),
            b"{\"eventType\": \"AlertRouted\xff\"}".to_vec(),
            good.to_string()
                .replace("\"source\":\"route\"", "\"source\":\"r\\u00f6ute\"")
                .into_bytes(),
            good.to_string().replace('Z', "+01:00").into_bytes(),
            good.to_string().replace('Z', "X").into_bytes(),
        ])
        .collect();
        for bytes in variants {
            let fast = decode::<AlertRouted>(&bytes).map_err(|e| e.to_string());
            let careful = decode_carefully::<AlertRouted>(&bytes).map_err(|e| e.to_string());
            assert_eq!(fast, careful, "{}", String::from_utf8_lossy(&bytes));
            let borrowed = decode_borrowed::<AlertRouted>(&bytes)
                .map(BorrowedEnvelope::into_owned)
                .map_err(|e| e.to_string());
            assert_eq!(borrowed, careful, "{}", String::from_utf8_lossy(&bytes));
        }
    }

    #[test]
    fn borrowed_decoding_borrows_unless_the_json_escapes() {
        let original = routed();
        let json = serde_json::to_string(&original).unwrap();
        let env = decode_borrowed::<AlertRouted>(json.as_bytes()).unwrap();
        assert!(matches!(env.event_id, Cow::Borrowed("e-1")));
        assert!(matches!(env.correlation_id, Cow::Borrowed("c-1")));
        assert_eq!(env.into_owned(), original);

        let escaped = json.replace("\"c-1\"", "\"c\\u002d1\"");
        let env = decode_borrowed::<AlertRouted>(escaped.as_bytes()).unwrap();
        assert!(matches!(env.correlation_id, Cow::Owned(ref c) if c == "c-1"));
    }

    #[test]
    fn child_lineage_keeps_correlation_and_points_at_parent() {
        let env = routed();
        let child = env.child_lineage();
        assert_eq!(child.correlation_id, "c-1");
        assert_eq!(child.causation_id, "e-1");
    }
}
