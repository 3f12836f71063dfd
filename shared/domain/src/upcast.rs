//! Upcasters: turn an event stored under an old schema version into the current one on
//! read, one version step at a time. Stored events are never rewritten.

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::envelope::EventData;
use crate::recorded::RecordedEvent;

/// Turns the `data` of one event type from schema version `n` into version `n + 1`.
pub type Upcaster = Box<dyn Fn(Value) -> Result<Value, String> + Send + Sync>;

/// Why an event could not be read as the requested type.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UpcastError {
    #[error("event {event_id} has type {actual}, expected {expected}")]
    WrongType {
        event_id: String,
        expected: &'static str,
        actual: String,
    },
    #[error(
        "event {event_id} ({event_type}) is schema version {version} and no upcaster goes from it to version {target}"
    )]
    NoPath {
        event_id: String,
        event_type: String,
        version: u32,
        target: u32,
    },
    #[error("upcasting event {event_id} ({event_type}) from version {from}: {reason}")]
    Failed {
        event_id: String,
        event_type: String,
        from: u32,
        reason: String,
    },
    #[error("event {event_id} ({event_type} v{version}) does not decode: {reason}")]
    Decode {
        event_id: String,
        event_type: String,
        version: u32,
        reason: String,
    },
}

/// A registry of upcasters by (event type, from-version).
#[derive(Default)]
pub struct Upcasters {
    steps: HashMap<(String, u32), Upcaster>,
}

impl Upcasters {
    pub fn new() -> Self {
        Upcasters::default()
    }

    /// Registers the step from `from_version` to `from_version + 1` for `event_type`.
    pub fn register(
        mut self,
        event_type: &str,
        from_version: u32,
        step: impl Fn(Value) -> Result<Value, String> + Send + Sync + 'static,
    ) -> Self {
        self.steps
            .insert((event_type.to_string(), from_version), Box::new(step));
        self
    }

    /// Applies steps until the event reaches `target` (its `schema_version` is updated).
    pub fn upcast_to(
        &self,
        mut event: RecordedEvent,
        target: u32,
    ) -> Result<RecordedEvent, UpcastError> {
        while event.event.schema_version < target {
            let e = &event.event;
            let key = (e.event_type.clone(), e.schema_version);
            let Some(step) = self.steps.get(&key) else {
                return Err(UpcastError::NoPath {
                    event_id: e.event_id.clone(),
                    event_type: e.event_type.clone(),
                    version: e.schema_version,
                    target,
                });
            };
            let data = std::mem::take(&mut event.event.data);
            event.event.data = step(data).map_err(|reason| UpcastError::Failed {
                event_id: event.event.event_id.clone(),
                event_type: event.event.event_type.clone(),
                from: event.event.schema_version,
                reason,
            })?;
            event.event.schema_version += 1;
        }
        Ok(event)
    }

    /// Reads `event` as the current version of `T`, upcasting it first if it is older. A
    /// version newer than `T::VERSION` is refused (a reader deployed behind its writer).
    pub fn decode<T: EventData + DeserializeOwned>(
        &self,
        event: &RecordedEvent,
    ) -> Result<T, UpcastError> {
        let e = &event.event;
        if e.event_type != T::EVENT_TYPE {
            return Err(UpcastError::WrongType {
                event_id: e.event_id.clone(),
                expected: T::EVENT_TYPE,
                actual: e.event_type.clone(),
            });
        }
        if e.schema_version > T::VERSION {
            return Err(UpcastError::NoPath {
                event_id: e.event_id.clone(),
                event_type: e.event_type.clone(),
                version: e.schema_version,
                target: T::VERSION,
            });
        }
        let current = self.upcast_to(event.clone(), T::VERSION)?;
        serde_json::from_value(current.event.data).map_err(|err| UpcastError::Decode {
            event_id: e.event_id.clone(),
            event_type: e.event_type.clone(),
            version: T::VERSION,
            reason: err.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorded::StoredEvent;
    use chrono::Utc;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, PartialEq, EventData)]
    #[event_data(event_type = "TemperatureTaken", version = 3)]
    #[serde(rename_all = "camelCase")]
    struct Temperature {
        celsius: f64,
        site: String,
    }

    fn recorded(version: u32, data: Value) -> RecordedEvent {
        RecordedEvent {
            stream_id: "s".into(),
            stream_version: 1,
            event: StoredEvent {
                event_id: "e-1".into(),
                event_type: "TemperatureTaken".into(),
                schema_version: version,
                timestamp: Utc::now(),
                source: "t".into(),
                correlation_id: "c".into(),
                causation_id: "c".into(),
                data,
            },
        }
    }

    fn upcasters() -> Upcasters {
        Upcasters::new()
            // v1 -> v2: fahrenheit became celsius
            .register("TemperatureTaken", 1, |mut d| {
                let f = d["fahrenheit"].as_f64().ok_or("fahrenheit missing")?;
                d["celsius"] = json!((f - 32.0) * 5.0 / 9.0);
                Ok(d)
            })
            // v2 -> v3: site became required
            .register("TemperatureTaken", 2, |mut d| {
                d["site"] = json!("oral");
                Ok(d)
            })
    }

    #[test]
    fn chains_steps_up_to_the_current_version() {
        let v1 = recorded(1, json!({"fahrenheit": 212.0}));
        let t: Temperature = upcasters().decode(&v1).unwrap();
        assert_eq!(
            t,
            Temperature {
                celsius: 100.0,
                site: "oral".into()
            }
        );
    }

    #[test]
    fn missing_steps_newer_versions_and_bad_data_are_errors() {
        let none = Upcasters::new();
        let err = none
            .decode::<Temperature>(&recorded(1, json!({})))
            .unwrap_err();
        assert!(matches!(err, UpcastError::NoPath { version: 1, .. }));
        let err = upcasters()
            .decode::<Temperature>(&recorded(4, json!({})))
            .unwrap_err();
        assert!(matches!(err, UpcastError::NoPath { version: 4, .. }));
        let err = upcasters()
            .decode::<Temperature>(&recorded(1, json!({"celsius": 3})))
            .unwrap_err();
        assert!(matches!(err, UpcastError::Failed { from: 1, .. }), "{err}");
    }
}
