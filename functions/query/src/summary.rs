//! The JSON shapes of the query API (infra/openapi.yaml): `AlertSummary`, `Emergency`, and
//! the filter that keeps only the caller's patients' items in a list.

use application::access::permitted_patients;
use domain::access::{Action, Caller, Role};
use domain::dashboard::listing::{alert_status_text, emergency_status};
use domain::dashboard::{AlertView, EmergencyView, View};
use lambda_kit::http::HttpError;
use serde_json::{Value, json};

use crate::Deps;
use crate::paging::{Page, unavailable};

/// `AlertSummary`.
pub fn alert_summary(v: &AlertView) -> Value {
    let mut summary = json!({
        "alertId": v.alert_id,
        "patientId": v.patient_id,
        "village": v.village,
        "severity": v.severity,
        "ruleId": v.rule_id,
        "description": v.description,
        "status": alert_status_text(v.status()),
        "raisedAt": v.raised_at,
        "routedTo": v.routed_to,
        "acknowledgedBy": v.acknowledged_by,
        "escalationLevel": v.escalation_level,
        "resolvedAt": v.resolved_at,
    });
    if let (Some(late), Value::Object(fields)) = (v.late_by_seconds, &mut summary) {
        fields.insert("lateBySeconds".into(), json!(late));
    }
    summary
}

/// `Emergency`: the saga's status (`active`, `completed`, `escalated`), its stage (the
/// saga's state) and its steps.
pub fn emergency_summary(v: &EmergencyView) -> Value {
    let saga = &v.saga;
    let started = saga.started.as_ref();
    let ambulance = if saga.ambulance_cancelled {
        Some("cancelled")
    } else if saga.ambulance_dispatched {
        Some("dispatched")
    } else if saga.ambulance_requested || saga.ambulance_requested_on_site {
        Some("requested")
    } else {
        None
    };
    json!({
        "emergencyId": v.emergency_id,
        "patientId": started.map(|s| s.patient_id.clone()),
        "village": started.map(|s| s.village.clone()),
        "alertId": started.and_then(|s| s.reporter.strip_prefix("alert:").map(str::to_string)),
        "status": emergency_status(saga),
        "stage": saga.status,
        "workerId": saga.worker_id,
        "ambulance": ambulance,
        "startedAt": v.steps.first().map(|s| s.at),
        "updatedAt": v.updated_at,
        "steps": v.steps,
    })
}

/// The patient a view is about, if known.
pub fn patient_of(view: &View) -> Option<&str> {
    match view {
        View::Alert(v) => v.patient_id.as_deref(),
        View::Emergency(v) => v.saga.started.as_ref().map(|s| s.patient_id.as_str()),
    }
}

/// For each view, whether `caller` may see it (`action` on its patient). An operator
/// decides alone; others cost at most two directory batches per call.
pub async fn permitted(
    deps: &Deps<'_>,
    caller: &Caller,
    action: Action,
    views: &[View],
) -> Result<Vec<bool>, HttpError> {
    if caller.role == Role::Operator {
        return Ok(vec![true; views.len()]);
    }
    let ids: Vec<&str> = views.iter().filter_map(patient_of).collect();
    let allowed = permitted_patients(deps.access, caller, action, ids.iter().copied())
        .await
        .map_err(|e| unavailable("the directory", e))?;
    Ok(views
        .iter()
        .map(|v| patient_of(v).is_some_and(|p| allowed.contains(p)))
        .collect())
}

/// `{"items": [...], "nextCursor": ...}`.
pub fn list_body(page: &Page, item: impl Fn(&View) -> Option<Value>) -> Value {
    json!({
        "items": page.items.iter().filter_map(item).collect::<Vec<_>>(),
        "nextCursor": page.next_cursor,
    })
}
