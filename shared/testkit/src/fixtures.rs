//! Builders of the domain values several test suites need, with sensible defaults.
//!
//! Every fixture starts from one default (`alert_raised("p-1")`, `directory_entry(..)`) and
//! a test changes only what it is about, with the chainable methods of
//! [`AlertRaisedFixture`] and [`DirectoryEntryFixture`]:
//!
//! ```
//! use testkit::fixtures::{self, AlertRaisedFixture, DirectoryEntryFixture};
//! let alert = fixtures::alert_raised("p-1").in_village("Kisumu");
//! let entry = fixtures::directory_entry("p-1", "w-1", "+254700000001").named("Amina");
//! assert_eq!((alert.alert_id.as_str(), entry.village.as_str()), ("alert-p-1", "Bondo"));
//! ```

use chrono::{DateTime, TimeZone, Utc};
use domain::envelope::{Envelope, EventData, Lineage};
use domain::events::{AlertRaised, Severity};
use domain::routing::DirectoryEntry;

/// The village of every fixture unless a test says otherwise.
pub const VILLAGE: &str = "Bondo";

/// When fixture alerts were detected: 2026-11-24 08:00 UTC.
pub fn detected_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap()
}

/// A critical hypoxemia alert of `patient` (rule `spo2-low`) as detect raises it: id
/// `alert-{patient}`, village [`VILLAGE`], detected at [`detected_at`], in time (so it may
/// start the emergency saga by itself), no evidence.
pub fn alert_raised(patient: &str) -> AlertRaised {
    AlertRaised {
        alert_id: format!("alert-{patient}"),
        patient_id: patient.into(),
        rule_id: "spo2-low".into(),
        alert_type: "hypoxemia".into(),
        severity: Severity::Critical,
        village: VILLAGE.into(),
        description: "spo2 below 90 %".into(),
        evidence: vec![],
        detected_at: detected_at(),
        late_by_seconds: None,
        auto_dispatch: true,
    }
}

/// Changes one aspect of an [`alert_raised`] fixture.
pub trait AlertRaisedFixture: Sized {
    fn with_id(self, alert_id: &str) -> Self;
    fn in_village(self, village: &str) -> Self;
    fn with_severity(self, severity: Severity) -> Self;
    /// The rule that fired, the alert type it gives and the description of the alert.
    fn with_rule(self, rule_id: &str, alert_type: &str, description: &str) -> Self;
    /// Raised `seconds` after its reading time had passed the allowed lateness: the health
    /// worker decides, the alert does not start the saga by itself.
    fn raised_late(self, seconds: f64) -> Self;
}

impl AlertRaisedFixture for AlertRaised {
    fn with_id(mut self, alert_id: &str) -> Self {
        self.alert_id = alert_id.into();
        self
    }

    fn in_village(mut self, village: &str) -> Self {
        self.village = village.into();
        self
    }

    fn with_severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }

    fn with_rule(mut self, rule_id: &str, alert_type: &str, description: &str) -> Self {
        self.rule_id = rule_id.into();
        self.alert_type = alert_type.into();
        self.description = description.into();
        self
    }

    fn raised_late(mut self, seconds: f64) -> Self {
        self.late_by_seconds = Some(seconds);
        self.auto_dispatch = false;
        self
    }
}

/// `data` in the envelope detect emits it in: source `detect`, caused by the reading
/// `reading-1`, stamped now.
pub fn from_detect<T: EventData>(
    event_id: impl Into<String>,
    correlation_id: impl Into<String>,
    data: T,
) -> Envelope<T> {
    Envelope::new(
        event_id,
        "detect",
        Lineage {
            correlation_id: correlation_id.into(),
            causation_id: "reading-1".into(),
        },
        Utc::now(),
        data,
    )
}

/// An alert in its envelope from detect: event id `evt-{patientId}`, correlation `corr-1`.
pub fn alert_envelope(alert: AlertRaised) -> Envelope<AlertRaised> {
    from_detect(format!("evt-{}", alert.patient_id), "corr-1", alert)
}

/// A patient's directory entry: `Patient {patient_id}` of [`VILLAGE`], looked after by
/// `Worker {worker_id}` reachable at `worker_phone`.
pub fn directory_entry(patient_id: &str, worker_id: &str, worker_phone: &str) -> DirectoryEntry {
    DirectoryEntry {
        patient_id: patient_id.into(),
        patient_name: format!("Patient {patient_id}"),
        village: VILLAGE.into(),
        worker_id: worker_id.into(),
        worker_name: format!("Worker {worker_id}"),
        worker_phone: worker_phone.into(),
        device_ids: Vec::new(),
    }
}

/// Changes one aspect of a [`directory_entry`] fixture.
pub trait DirectoryEntryFixture: Sized {
    /// The patient's name.
    fn named(self, patient_name: &str) -> Self;
    fn in_village(self, village: &str) -> Self;
    /// The name of the patient's health worker.
    fn worker_named(self, worker_name: &str) -> Self;
}

impl DirectoryEntryFixture for DirectoryEntry {
    fn named(mut self, patient_name: &str) -> Self {
        self.patient_name = patient_name.into();
        self
    }

    fn in_village(mut self, village: &str) -> Self {
        self.village = village.into();
        self
    }

    fn worker_named(mut self, worker_name: &str) -> Self {
        self.worker_name = worker_name.into();
        self
    }
}

/// A stored event of type `Test` (schema version 1, stamped now) with id `id` and `data`:
/// what event store tests append.
pub fn stored_event(id: &str, data: serde_json::Value) -> domain::recorded::StoredEvent {
    domain::recorded::StoredEvent {
        event_id: id.into(),
        event_type: "Test".into(),
        schema_version: 1,
        timestamp: Utc::now(),
        source: "test".into(),
        correlation_id: "c".into(),
        causation_id: "c".into(),
        data,
    }
}

/// The readings stream's ARN in Kinesis event fixtures.
pub const READINGS_STREAM_ARN: &str = "arn:aws:kinesis:us-east-1:123456789012:stream/readings";

/// One record of a Kinesis Lambda event, as the event source mapping delivers it: `data`
/// base64-encoded, the event id `shard:sequence_number`.
pub fn kinesis_record(
    shard: &str,
    stream_arn: &str,
    partition_key: &str,
    sequence_number: &str,
    data: &[u8],
) -> serde_json::Value {
    use base64::Engine;
    serde_json::json!({
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": partition_key,
            "sequenceNumber": sequence_number,
            "data": base64::engine::general_purpose::STANDARD.encode(data),
            "approximateArrivalTimestamp": 1_764_000_000.0
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": format!("{shard}:{sequence_number}"),
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/test",
        "awsRegion": "us-east-1",
        "eventSourceARN": stream_arn
    })
}

/// A reading as `ingest` puts it on the stream: the JSON envelope (source `ingest`,
/// correlation id `corr-<patient>`, received at the reading's own time).
pub fn ingested_reading(
    device: &str,
    patient: &str,
    vital: domain::reading::VitalType,
    value: f64,
    at: DateTime<Utc>,
) -> Vec<u8> {
    let reading = domain::reading::Reading {
        patient_id: patient.into(),
        vital,
        value,
        unit: vital.unit().into(),
        timestamp: at,
        device_id: device.into(),
    };
    let lineage = Lineage {
        correlation_id: format!("corr-{patient}"),
        causation_id: "req".into(),
    };
    let envelope = Envelope::new(reading.event_id(), "ingest", lineage, at, reading);
    serde_json::to_vec(&envelope).unwrap_or_default()
}
