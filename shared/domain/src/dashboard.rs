//! Read models of the dashboard, projected from the event store (pure, no AWS types).
//!
//! Two kinds of view, each one item of the dashboard table:
//!
//! - [`AlertView`] (`alert#{alertId}`): what happened to an alert. Its events come from
//!   several event-store streams: `alert-{id}` (raised, routed, acknowledged, escalated),
//!   `alert-resolution-{id}` (resolved) and `notification-{id}` (each notification sent,
//!   including the `cleared` one). Every alert has a view, info alerts too (they are only
//!   on the dashboard: nobody is notified of them); a late alert shows `lateBySeconds`.
//! - [`EmergencyView`] (`emergency#{id}`): where an emergency-dispatch saga is, folded with
//!   the saga's own state machine from its `emergency-{id}` stream.
//!
//! Every view remembers, per source stream, the last version it has applied. Applying is
//! therefore idempotent (a redelivered event is recognised and changes nothing), and a
//! projector that finds a gap (an event whose predecessors it has not applied) reads the
//! missing events from the store first ([`View::next_version`]). Alert fields are set by
//! each event independently and the status is derived from them, so the order in which the
//! streams of one alert arrive does not matter.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::envelope::EventData;
use crate::escalation::{AlertAcknowledged, AlertEscalated};
use crate::events::{
    AlertRaised, AlertResolved, AlertRouted, NotificationKind, NotificationSent, Severity,
};
use crate::recorded::RecordedEvent;
use crate::saga::{SagaEvent, SagaState};
use crate::upcast::{UpcastError, Upcasters};

pub mod listing;
pub use listing::EmergencyStep;

/// Prefix of the saga streams (`emergency-{id}`).
const EMERGENCY_STREAM_PREFIX: &str = "emergency-";
/// The board key of views that need attention (the sparse `board` index).
pub const OPEN_BOARD: &str = "open";

/// Where an alert is, derived from its view's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AlertStatus {
    /// Only later events seen so far (the raise is still on its way).
    Pending,
    Raised,
    Routed,
    Escalated,
    Acknowledged,
    Resolved,
}

/// The dashboard's view of one alert.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertView {
    pub alert_id: String,
    pub patient_id: Option<String>,
    pub village: Option<String>,
    pub rule_id: Option<String>,
    pub severity: Option<Severity>,
    pub description: Option<String>,
    /// Event time of the reading that raised it.
    pub raised_at: Option<DateTime<Utc>>,
    /// How many seconds after `raisedAt` a late alert was raised (late upload, backfill);
    /// absent for alerts raised in time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_by_seconds: Option<f64>,
    /// Whether a critical alert could start the emergency saga by itself (false: too late,
    /// the health worker decides). Set once the raise is seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_dispatch: Option<bool>,
    pub routed_to: Option<String>,
    /// Every notification sent about the alert (alert, escalations, cleared).
    pub notifications_sent: u32,
    /// Whether the health worker was told the alert cleared.
    #[serde(default)]
    pub cleared_notified: bool,
    pub escalation_level: usize,
    pub escalated_to: Option<String>,
    pub acknowledged_by: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// Time of the last event applied.
    pub updated_at: Option<DateTime<Utc>>,
    /// Last version applied per source stream.
    pub applied: BTreeMap<String, u64>,
}

impl AlertView {
    pub fn new(alert_id: &str) -> AlertView {
        AlertView {
            alert_id: alert_id.to_string(),
            ..AlertView::default()
        }
    }

    pub fn status(&self) -> AlertStatus {
        if self.resolved_at.is_some() {
            AlertStatus::Resolved
        } else if self.acknowledged_by.is_some() {
            AlertStatus::Acknowledged
        } else if self.escalation_level > 0 {
            AlertStatus::Escalated
        } else if self.routed_to.is_some() {
            AlertStatus::Routed
        } else if self.raised_at.is_some() {
            AlertStatus::Raised
        } else {
            AlertStatus::Pending
        }
    }

    fn apply(&mut self, event: &AlertEvent) {
        match event {
            AlertEvent::Raised(e) => {
                self.patient_id = Some(e.patient_id.clone());
                self.village = Some(e.village.clone());
                self.rule_id = Some(e.rule_id.clone());
                self.severity = Some(e.severity);
                self.description = Some(e.description.clone());
                self.raised_at = Some(e.detected_at);
                self.late_by_seconds = e.late_by_seconds;
                self.auto_dispatch = Some(e.auto_dispatch);
            }
            AlertEvent::Routed(e) => {
                self.patient_id.get_or_insert_with(|| e.patient_id.clone());
                self.routed_to = Some(e.worker_id.clone());
            }
            AlertEvent::NotificationSent(e) => {
                self.notifications_sent += 1;
                if e.kind == NotificationKind::Cleared {
                    self.cleared_notified = true;
                }
            }
            AlertEvent::Escalated(e) => {
                if e.level >= self.escalation_level {
                    self.escalation_level = e.level;
                    self.escalated_to = Some(e.recipient_id.clone());
                }
            }
            AlertEvent::Acknowledged(e) => {
                self.acknowledged_by = Some(e.acknowledged_by.clone());
            }
            AlertEvent::Resolved(e) => {
                self.patient_id.get_or_insert_with(|| e.patient_id.clone());
                self.resolved_at = Some(e.resolved_at);
            }
        }
    }
}

/// The dashboard's view of one emergency.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmergencyView {
    pub emergency_id: String,
    /// The saga folded from its stream; `saga.version` is the last version applied.
    pub saga: SagaState,
    pub updated_at: Option<DateTime<Utc>>,
    /// Every saga event applied, with its time (the query API's `steps`).
    #[serde(default)]
    pub steps: Vec<EmergencyStep>,
}

impl EmergencyView {
    pub fn new(emergency_id: &str) -> EmergencyView {
        EmergencyView {
            emergency_id: emergency_id.to_string(),
            ..EmergencyView::default()
        }
    }
}

/// One read model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum View {
    Alert(AlertView),
    Emergency(EmergencyView),
}

impl View {
    /// The key of the view in the dashboard table.
    pub fn id(&self) -> String {
        match self {
            View::Alert(v) => alert_view_id(&v.alert_id),
            View::Emergency(v) => emergency_view_id(&v.emergency_id),
        }
    }

    /// `Some(OPEN_BOARD)` while the view needs attention: an alert raised and not yet
    /// resolved, an emergency not yet finished. A pending alert view (no raise seen) is not
    /// on the board: its raise may still be on its way from another shard, or there is none
    /// (notifications of emergency sagas carry the emergency id as their `alertId`).
    pub fn board(&self) -> Option<&'static str> {
        let open = match self {
            View::Alert(v) => !matches!(v.status(), AlertStatus::Resolved | AlertStatus::Pending),
            View::Emergency(v) => !v.saga.is_terminal(),
        };
        open.then_some(OPEN_BOARD)
    }

    /// When the matter began (the board's sort key): alert raise time or emergency update.
    pub fn since(&self) -> Option<DateTime<Utc>> {
        match self {
            View::Alert(v) => v.raised_at.or(v.updated_at),
            View::Emergency(v) => v.updated_at,
        }
    }

    /// A short status word for listings.
    pub fn status_text(&self) -> String {
        let value = match self {
            View::Alert(v) => serde_json::to_value(v.status()),
            View::Emergency(v) => serde_json::to_value(v.saga.status),
        };
        value
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// The version of `stream_id` this view expects next (1 for a stream it has not seen).
    pub fn next_version(&self, stream_id: &str) -> u64 {
        match self {
            View::Alert(v) => v.applied.get(stream_id).copied().unwrap_or(0) + 1,
            View::Emergency(v) => v.saga.version + 1,
        }
    }
}

pub fn alert_view_id(alert_id: &str) -> String {
    format!("alert#{alert_id}")
}

pub fn emergency_view_id(emergency_id: &str) -> String {
    format!("emergency#{emergency_id}")
}

/// An event of an alert's life, as the alert view reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertEvent {
    Raised(AlertRaised),
    Routed(AlertRouted),
    NotificationSent(NotificationSent),
    Escalated(AlertEscalated),
    Acknowledged(AlertAcknowledged),
    Resolved(AlertResolved),
}

impl AlertEvent {
    fn alert_id(&self) -> &str {
        match self {
            AlertEvent::Raised(e) => &e.alert_id,
            AlertEvent::Routed(e) => &e.alert_id,
            AlertEvent::NotificationSent(e) => &e.alert_id,
            AlertEvent::Escalated(e) => &e.alert_id,
            AlertEvent::Acknowledged(e) => &e.alert_id,
            AlertEvent::Resolved(e) => &e.alert_id,
        }
    }
}

/// What a stored event means for the dashboard.
#[derive(Debug, Clone, PartialEq)]
pub enum Projection {
    Alert(AlertEvent),
    Emergency {
        emergency_id: String,
        event: SagaEvent,
    },
    /// Not shown on the dashboard (late readings, for example).
    Ignored,
}

impl Projection {
    /// The id of the view this event changes, if any.
    pub fn view_id(&self) -> Option<String> {
        match self {
            Projection::Alert(e) => Some(alert_view_id(e.alert_id())),
            Projection::Emergency { emergency_id, .. } => Some(emergency_view_id(emergency_id)),
            Projection::Ignored => None,
        }
    }

    /// A view the event can start from.
    pub fn empty_view(&self) -> Option<View> {
        match self {
            Projection::Alert(e) => Some(View::Alert(AlertView::new(e.alert_id()))),
            Projection::Emergency { emergency_id, .. } => {
                Some(View::Emergency(EmergencyView::new(emergency_id)))
            }
            Projection::Ignored => None,
        }
    }
}

/// Why a stored event could not be projected. Both are worth a retry: the projector may be
/// older than the writer (a newer schema version), and a malformed event is a bug to fix
/// before the read model can be trusted again.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProjectionError {
    #[error(transparent)]
    Upcast(#[from] UpcastError),
    #[error("event {event_id} ({event_type} v{version}) does not decode: {reason}")]
    Malformed {
        event_id: String,
        event_type: String,
        version: u32,
        reason: String,
    },
}

fn decode<T: EventData + serde::de::DeserializeOwned>(
    upcasters: &Upcasters,
    event: &RecordedEvent,
) -> Result<T, ProjectionError> {
    Ok(upcasters.decode::<T>(event)?)
}

/// Reads a stored event as what it means for the dashboard.
pub fn classify(
    upcasters: &Upcasters,
    event: &RecordedEvent,
) -> Result<Projection, ProjectionError> {
    let alert = |e: AlertEvent| Ok(Projection::Alert(e));
    match event.event.event_type.as_str() {
        AlertRaised::EVENT_TYPE => alert(AlertEvent::Raised(decode(upcasters, event)?)),
        AlertRouted::EVENT_TYPE => alert(AlertEvent::Routed(decode(upcasters, event)?)),
        NotificationSent::EVENT_TYPE => {
            alert(AlertEvent::NotificationSent(decode(upcasters, event)?))
        }
        AlertEscalated::EVENT_TYPE => alert(AlertEvent::Escalated(decode(upcasters, event)?)),
        AlertAcknowledged::EVENT_TYPE => alert(AlertEvent::Acknowledged(decode(upcasters, event)?)),
        AlertResolved::EVENT_TYPE => alert(AlertEvent::Resolved(decode(upcasters, event)?)),
        _ => match event.stream_id.strip_prefix(EMERGENCY_STREAM_PREFIX) {
            Some(emergency_id) => saga_event(event, emergency_id),
            None => Ok(Projection::Ignored),
        },
    }
}

fn saga_event(event: &RecordedEvent, emergency_id: &str) -> Result<Projection, ProjectionError> {
    let e = &event.event;
    if e.schema_version > SagaEvent::VERSION {
        return Err(UpcastError::NoPath {
            event_id: e.event_id.clone(),
            event_type: e.event_type.clone(),
            version: e.schema_version,
            target: SagaEvent::VERSION,
        }
        .into());
    }
    let saga: SagaEvent =
        serde_json::from_value(e.data.clone()).map_err(|err| ProjectionError::Malformed {
            event_id: e.event_id.clone(),
            event_type: e.event_type.clone(),
            version: e.schema_version,
            reason: err.to_string(),
        })?;
    Ok(Projection::Emergency {
        emergency_id: emergency_id.to_string(),
        event: saga,
    })
}

/// What applying one event did to a view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The view changed.
    Changed,
    /// The view had already applied this version of the stream: nothing changed.
    AlreadyApplied,
    /// Earlier versions of the stream are missing: read them first.
    Gap { expected: u64 },
}

/// Applies `projection` (version `version` of `stream_id`, stored at `at`) to `view`.
pub fn apply(
    view: &mut View,
    stream_id: &str,
    version: u64,
    at: DateTime<Utc>,
    projection: &Projection,
) -> Applied {
    let expected = view.next_version(stream_id);
    if version < expected {
        return Applied::AlreadyApplied;
    }
    if version > expected {
        return Applied::Gap { expected };
    }
    match view {
        View::Alert(v) => {
            if let Projection::Alert(event) = projection
                && event.alert_id() == v.alert_id
            {
                v.apply(event);
            }
            // Recorded even for an event the view does not show, so the stream's next
            // version is not taken for a gap.
            v.applied.insert(stream_id.to_string(), version);
            v.updated_at = Some(v.updated_at.map_or(at, |u| u.max(at)));
        }
        View::Emergency(v) => {
            // The saga stream holds only saga events; applying counts the version.
            if let Projection::Emergency { event, .. } = projection {
                v.saga.apply(event);
                v.steps.push(EmergencyStep::of(event, at));
            } else {
                v.saga.version += 1;
            }
            v.updated_at = Some(v.updated_at.map_or(at, |u| u.max(at)));
        }
    }
    Applied::Changed
}

/// Counts for the dashboard's summary line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub open_alerts: usize,
    /// Alert views whose raise has not been seen (see [`View::board`]).
    pub pending_alerts: usize,
    pub resolved_alerts: usize,
    pub active_emergencies: usize,
    pub emergencies_by_status: BTreeMap<String, usize>,
}

/// Summarises views (e.g. a scan of the dashboard table).
pub fn summarise<'a>(views: impl IntoIterator<Item = &'a View>) -> Summary {
    let mut summary = Summary::default();
    for view in views {
        match view {
            View::Alert(v) => match v.status() {
                AlertStatus::Resolved => summary.resolved_alerts += 1,
                AlertStatus::Pending => summary.pending_alerts += 1,
                _ => summary.open_alerts += 1,
            },
            View::Emergency(v) => {
                if !v.saga.is_terminal() {
                    summary.active_emergencies += 1;
                }
                *summary
                    .emergencies_by_status
                    .entry(view.status_text())
                    .or_default() += 1;
            }
        }
    }
    summary
}

#[cfg(test)]
mod tests;
