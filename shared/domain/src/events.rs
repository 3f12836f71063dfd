//! The domain events of the pipeline (the `data` of an [`Envelope`](crate::Envelope)).
//! JSON Schemas of these contracts live in `events/contracts/`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::envelope::EventData;
use crate::reading::{Reading, VitalType};

/// A reading was accepted by `ingest` (Kinesis record data).
pub type ReadingRecorded = Reading;

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// The readings that made a rule fire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    pub reading_event_id: String,
    #[serde(rename = "type")]
    pub vital: VitalType,
    pub value: f64,
    pub timestamp: DateTime<Utc>,
}

/// `detect` found an anomaly for a patient (stream `alert-{alertId}`, version 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, EventData)]
#[serde(rename_all = "camelCase")]
pub struct AlertRaised {
    /// Deterministic: patient, rule and the start of the episode.
    pub alert_id: String,
    pub patient_id: String,
    pub rule_id: String,
    pub alert_type: String,
    pub severity: Severity,
    pub village: String,
    pub description: String,
    pub evidence: Vec<Evidence>,
    /// Event time of the reading that completed the condition.
    pub detected_at: DateTime<Utc>,
    /// Set when the alert was raised after its reading time had passed the allowed
    /// lateness: a late upload, a kiosk that synced late, a backfill. How many seconds
    /// after `detectedAt` it was raised. Absent for alerts raised in time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_by_seconds: Option<f64>,
    /// Whether a critical alert may start the emergency-dispatch saga by itself. False
    /// when its readings are older than the auto-dispatch cut-off (docs/detection.md):
    /// the health worker is told and decides. Events stored before this field existed
    /// read as `true`.
    #[serde(default = "yes")]
    pub auto_dispatch: bool,
}

fn yes() -> bool {
    true
}

impl AlertRaised {
    /// The `dispatch` message attribute on the alerts topic: `auto` or `manual`.
    pub fn dispatch(&self) -> &'static str {
        if self.auto_dispatch { "auto" } else { "manual" }
    }
}

/// `detect` found that the condition of an alert no longer holds
/// (stream `alert-resolution-{alertId}`, version 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, EventData)]
#[serde(rename_all = "camelCase")]
pub struct AlertResolved {
    /// The alert this resolves.
    pub alert_id: String,
    pub patient_id: String,
    pub rule_id: String,
    pub alert_type: String,
    pub severity: Severity,
    /// Reading time at which the episode began.
    pub episode_start: DateTime<Utc>,
    /// Reading time of the reading that showed the condition no longer holds.
    pub resolved_at: DateTime<Utc>,
    /// Event id of that reading.
    pub reading_event_id: String,
}

/// A reading arrived after the patient's detection frontier had passed its time (beyond
/// the allowed lateness): it was not evaluated (stream `late-{readingEventId}`, version 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, EventData)]
#[serde(rename_all = "camelCase")]
pub struct ReadingLate {
    pub reading_event_id: String,
    pub patient_id: String,
    #[serde(rename = "type")]
    pub vital: VitalType,
    pub value: f64,
    /// The reading's own time.
    pub timestamp: DateTime<Utc>,
    /// Readings at or before this time were already final when it arrived.
    pub frontier: DateTime<Utc>,
    /// How far behind the frontier it was, in seconds.
    pub behind_seconds: f64,
}

/// `route` chose the health worker for an alert (stream `alert-{alertId}`, version 2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, EventData)]
#[serde(rename_all = "camelCase")]
pub struct AlertRouted {
    pub alert_id: String,
    pub patient_id: String,
    pub worker_id: String,
    pub notification_id: String,
}

/// What a notification is about.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// An alert (or its escalation, or an emergency message): something needs attention.
    /// Messages written before `kind` existed are alerts.
    #[default]
    Alert,
    /// The condition of an alert no longer holds (`AlertResolved`).
    Cleared,
}

impl NotificationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::Alert => "alert",
            NotificationKind::Cleared => "cleared",
        }
    }

    /// True for [`NotificationKind::Alert`] (serde: `alert` is left out of requests).
    pub fn is_alert(&self) -> bool {
        *self == NotificationKind::Alert
    }
}

/// `route` asks `notify` to deliver a message (notify queue message).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, EventData)]
#[serde(rename_all = "camelCase")]
pub struct NotificationRequested {
    /// Deterministic: alert, recipient, channel and, for a `cleared` notification, the
    /// kind (`shared::routing::notification_id`).
    pub notification_id: String,
    pub alert_id: String,
    pub patient_id: String,
    pub severity: Severity,
    pub recipient_id: String,
    pub recipient_phone: String,
    pub message: String,
    /// `alert` (absent) or `cleared`. An `alert` request is written without the field, so
    /// it is byte-for-byte what route sent before the field existed: a request redelivered
    /// across a deploy hashes the same for notify's idempotency check.
    #[serde(default, skip_serializing_if = "NotificationKind::is_alert")]
    pub kind: NotificationKind,
}

/// `notify` delivered a notification (stream `notification-{notificationId}`, version 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, EventData)]
#[serde(rename_all = "camelCase")]
pub struct NotificationSent {
    pub notification_id: String,
    pub alert_id: String,
    pub recipient_id: String,
    pub channel: String,
    /// The provider's message id (SNS) where there is one.
    pub provider_message_id: Option<String>,
    /// What the notification was about; events stored before the field existed are
    /// `alert`.
    #[serde(default)]
    pub kind: NotificationKind,
}

/// Stream id of an alert's events.
pub fn alert_stream(alert_id: &str) -> String {
    format!("alert-{alert_id}")
}

/// Stream id of an alert's resolution.
pub fn alert_resolution_stream(alert_id: &str) -> String {
    format!("alert-resolution-{alert_id}")
}

/// Stream id of a late reading's record.
pub fn late_reading_stream(reading_event_id: &str) -> String {
    format!("late-{reading_event_id}")
}

/// Stream id of a notification's events.
pub fn notification_stream(notification_id: &str) -> String {
    format!("notification-{notification_id}")
}
