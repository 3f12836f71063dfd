//! `GET /alerts/{id}`: the alert's summary and its whole timeline: every stored event of
//! the streams the alert's view has applied (`alert-{id}`, `alert-resolution-{id}`, each
//! `notification-{id}` of it), read from the event store, in time order.
//!
//! The view is read first (`GetItem`): an unknown alert is a 404, before any 403, as the
//! patient is known only from it. The caller must be allowed to read the patient's alerts.

use application::access;
use domain::access::{Action, Caller, Role};
use domain::dashboard::{AlertEvent, Projection, View, alert_view_id, classify};
use domain::recorded::RecordedEvent;
use lambda_kit::http::HttpError;
use serde_json::{Value, json};

use crate::paging::unavailable;
use crate::summary::alert_summary;
use crate::{Deps, Reply};

/// Events read per stream at most (an alert's streams hold a handful).
pub const MAX_EVENTS_PER_STREAM: usize = 200;

pub async fn get(deps: &Deps<'_>, caller: &Caller, alert_id: &str) -> Result<Reply, HttpError> {
    let view = deps
        .models
        .load(&alert_view_id(alert_id))
        .await
        .map_err(|e| unavailable("the dashboard", e))?
        .value;
    let Some(View::Alert(alert)) = view else {
        return Err(HttpError::not_found(format!("no alert {alert_id}")));
    };
    match (&alert.patient_id, caller.role) {
        (_, Role::Operator) => {}
        (Some(patient), _) => {
            match access::check(deps.access, caller, Action::ReadAlerts, [patient.as_str()]).await {
                Ok(Ok(())) => {}
                Ok(Err(denied)) => return Err(HttpError::forbidden(denied.reason)),
                Err(e) => return Err(unavailable("the directory", e)),
            }
        }
        (None, _) => {
            return Err(HttpError::forbidden(format!(
                "alert {alert_id}'s patient is not known yet; only operators may read it"
            )));
        }
    }
    let mut events: Vec<RecordedEvent> = Vec::new();
    for stream in alert.applied.keys() {
        let stored = deps
            .events
            .read_stream(stream, 1, MAX_EVENTS_PER_STREAM)
            .await
            .map_err(|e| HttpError::new(503, "Unavailable", format!("the event store: {e}")))?;
        events.extend(stored);
    }
    events.sort_by(|a, b| {
        (a.event.timestamp, &a.stream_id, a.stream_version).cmp(&(
            b.event.timestamp,
            &b.stream_id,
            b.stream_version,
        ))
    });
    let timeline: Vec<Value> = events
        .iter()
        .map(|e| {
            json!({
                "at": e.event.timestamp,
                "eventType": e.event.event_type,
                "stream": e.stream_id,
                "version": e.stream_version,
                "summary": summary(deps, e),
            })
        })
        .collect();
    Ok(Reply::live(json!({
        "alert": alert_summary(&alert),
        "timeline": timeline,
    })))
}

/// One line about what an event did (no diagnosis beyond the alert's description).
fn summary(deps: &Deps<'_>, event: &RecordedEvent) -> String {
    match classify(deps.upcasters, event) {
        Ok(Projection::Alert(e)) => match e {
            AlertEvent::Raised(e) => format!("{:?} alert raised: {}", e.severity, e.description),
            AlertEvent::Routed(e) => format!("routed to {}", e.worker_id),
            AlertEvent::NotificationSent(e) => {
                format!("{:?} notification sent to {}", e.kind, e.recipient_id)
            }
            AlertEvent::Escalated(e) => {
                format!("escalated to {} (level {})", e.recipient_id, e.level)
            }
            AlertEvent::Acknowledged(e) => format!("acknowledged by {}", e.acknowledged_by),
            AlertEvent::Resolved(_) => "resolved: the condition cleared".to_string(),
        },
        _ => event.event.event_type.clone(),
    }
}
