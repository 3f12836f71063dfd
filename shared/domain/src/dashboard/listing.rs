//! What the query API lists views by: the attributes of a view item that the dashboard
//! table's indexes key on ([`IndexKeys`]), and the steps an emergency view keeps for its
//! timeline ([`EmergencyStep`]).
//!
//! Indexes (all sorted by `since`, newest first when queried):
//!
//! - `kind-since` (`kind`): every alert, or every emergency;
//! - `kind-status-since` (`kindStatus` = `alert#routed`, `emergency#active`...);
//! - `village-since`, `patient-since`, `routed-since` (`village`, `patientId`, `routedTo`):
//!   alert views only;
//! - `inbox-since` (`inbox`, sparse): the worker an alert is routed to while it waits for
//!   them (routed or escalated: not yet acknowledged or resolved).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{AlertStatus, View};
use crate::saga::{SagaEvent, SagaState, Status};

/// The index attributes of one view item (absent ones are not written, so the indexes
/// stay sparse).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IndexKeys {
    pub kind: &'static str,
    pub kind_status: String,
    pub village: Option<String>,
    pub patient_id: Option<String>,
    pub routed_to: Option<String>,
    pub inbox: Option<String>,
}

/// The coarse status of an emergency in listings: `active`, `completed` or `escalated`.
pub fn emergency_status(saga: &SagaState) -> &'static str {
    match saga.status {
        Status::Completed => "completed",
        Status::Escalated => "escalated",
        _ => "active",
    }
}

/// The status word of an alert (`raised`, `routed`, ...).
pub fn alert_status_text(status: AlertStatus) -> &'static str {
    match status {
        AlertStatus::Pending => "pending",
        AlertStatus::Raised => "raised",
        AlertStatus::Routed => "routed",
        AlertStatus::Escalated => "escalated",
        AlertStatus::Acknowledged => "acknowledged",
        AlertStatus::Resolved => "resolved",
    }
}

/// The index attributes of `view`.
pub fn index_keys(view: &View) -> IndexKeys {
    match view {
        View::Alert(v) => {
            let status = v.status();
            let waiting = matches!(status, AlertStatus::Routed | AlertStatus::Escalated);
            IndexKeys {
                kind: "alert",
                kind_status: format!("alert#{}", alert_status_text(status)),
                village: v.village.clone(),
                patient_id: v.patient_id.clone(),
                routed_to: v.routed_to.clone(),
                inbox: v.routed_to.clone().filter(|_| waiting),
            }
        }
        View::Emergency(v) => IndexKeys {
            kind: "emergency",
            kind_status: format!("emergency#{}", emergency_status(&v.saga)),
            ..IndexKeys::default()
        },
    }
}

/// One step of an emergency, as its view records it (the saga event and when it was
/// stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmergencyStep {
    pub at: DateTime<Utc>,
    pub step: String,
    pub outcome: String,
}

impl EmergencyStep {
    pub fn of(event: &SagaEvent, at: DateTime<Utc>) -> EmergencyStep {
        EmergencyStep {
            at,
            step: event.event_type().to_string(),
            outcome: outcome(event),
        }
    }
}

/// A short, diagnosis-free description of what a saga event did.
fn outcome(event: &SagaEvent) -> String {
    match event {
        SagaEvent::EmergencyStarted(e) => format!("started by {}", e.reporter),
        SagaEvent::WorkerAssigned { worker_id } => format!("worker {worker_id} reserved"),
        SagaEvent::WorkerUnavailable { reason } => format!("no worker: {reason}"),
        SagaEvent::AmbulanceDispatched { request_id } => format!("ambulance {request_id}"),
        SagaEvent::AmbulanceDispatchFailed { reason, .. } => format!("ambulance failed: {reason}"),
        SagaEvent::WorkerNotified { .. } => "worker notified".into(),
        SagaEvent::FamilyNotified {
            notification_id,
            stage,
        } => match notification_id {
            Some(_) => format!("family told: {}", stage_text(stage)),
            None => "no family contact".into(),
        },
        SagaEvent::StepTimedOut { step } => format!("{step:?} timed out"),
        SagaEvent::AmbulanceCancelled { request_id } => format!("ambulance {request_id} cancelled"),
        SagaEvent::WorkerReleased { worker_id } => format!("worker {worker_id} released"),
        SagaEvent::EscalatedToHospital { .. } => "district hospital told".into(),
        SagaEvent::EmergencyAcknowledged { worker_id } => format!("acknowledged by {worker_id}"),
        SagaEvent::AmbulanceRequested { requested_by } => {
            format!("ambulance requested by {requested_by}")
        }
        SagaEvent::EmergencyClosed { closed_by, reason } => {
            format!("closed by {closed_by} ({reason:?})")
        }
    }
}

fn stage_text(stage: &impl Serialize) -> String {
    serde_json::to_value(stage)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dashboard::AlertView;

    #[test]
    fn an_alert_is_in_its_workers_inbox_until_acknowledged() {
        let mut alert = AlertView::new("a-1");
        alert.raised_at = Some(Utc::now());
        alert.village = Some("Bondo".into());
        alert.patient_id = Some("p-1".into());
        let keys = index_keys(&View::Alert(alert.clone()));
        assert_eq!(keys.kind_status, "alert#raised");
        assert_eq!(keys.inbox, None);
        alert.routed_to = Some("w-1".into());
        let keys = index_keys(&View::Alert(alert.clone()));
        assert_eq!(keys.inbox.as_deref(), Some("w-1"));
        assert_eq!(keys.village.as_deref(), Some("Bondo"));
        alert.escalation_level = 1;
        assert_eq!(
            index_keys(&View::Alert(alert.clone())).inbox.as_deref(),
            Some("w-1")
        );
        alert.acknowledged_by = Some("w-1".into());
        let keys = index_keys(&View::Alert(alert));
        assert_eq!(keys.inbox, None);
        assert_eq!(keys.routed_to.as_deref(), Some("w-1"));
        assert_eq!(keys.kind_status, "alert#acknowledged");
    }

    #[test]
    fn emergencies_are_active_until_completed_or_escalated() {
        let mut view = crate::dashboard::EmergencyView::new("e-1");
        assert_eq!(
            index_keys(&View::Emergency(view.clone())).kind_status,
            "emergency#active"
        );
        view.saga.status = Status::Completed;
        let keys = index_keys(&View::Emergency(view));
        assert_eq!(keys.kind_status, "emergency#completed");
        assert_eq!(
            (keys.kind, keys.inbox, keys.village),
            ("emergency", None, None)
        );
    }
}
