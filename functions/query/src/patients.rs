//! `GET /patients/{id}`: the patient's directory entry (name, village, assigned worker),
//! the latest value per metric, the open alerts (the dashboard's `patient-since` index,
//! never a scan) and the last 24 hours of readings (the recent vitals: the vitals table's
//! blocks and the open hours in detect's state).

use std::collections::BTreeMap;

use application::views::ViewIndex;
use chrono::{DateTime, Duration, Utc};
use domain::access::Caller;
use domain::dashboard::{AlertStatus, View};
use domain::reading::VitalType;
use domain::vitals::VitalSample;
use lambda_kit::http::HttpError;
use serde_json::{Value, json};

use crate::paging::{Listing, collect};
use crate::recent::{authorized_patient, reading_json, samples, state};
use crate::summary::alert_summary;
use crate::{Deps, Reply};

/// Open alerts shown at most (newest first).
pub const OPEN_ALERTS: usize = 25;
/// Readings of the last 24 hours served at most (5 metrics, one a minute each).
pub const READINGS_24H: usize = 5 * 24 * 60;

pub async fn get(
    deps: &Deps<'_>,
    caller: &Caller,
    patient_id: &str,
    now: DateTime<Utc>,
) -> Result<Reply, HttpError> {
    let Some(entry) = authorized_patient(deps, caller, patient_id).await? else {
        return Err(HttpError::not_found(format!("no patient {patient_id}")));
    };
    let listing = Listing {
        index: ViewIndex::Patient,
        partition: patient_id.to_string(),
    };
    let open = collect(
        deps.views,
        &listing,
        OPEN_ALERTS,
        None,
        async |views: &[View]| {
            Ok(views
                .iter()
                .map(|v| matches!(v, View::Alert(a) if a.status() != AlertStatus::Resolved))
                .collect())
        },
    )
    .await?;
    let to = now.timestamp_millis();
    let from = (now - Duration::hours(24)).timestamp_millis();
    let state = state(deps, patient_id).await?;
    let (readings, _) = samples(
        deps,
        patient_id,
        (from, to),
        None,
        None,
        READINGS_24H,
        &state,
    )
    .await?;
    Ok(Reply::live(json!({
        "patientId": entry.patient_id,
        "name": entry.patient_name,
        "village": entry.village,
        "worker": (!entry.worker_id.is_empty())
            .then(|| json!({"workerId": entry.worker_id, "name": entry.worker_name})),
        "latest": latest(&readings, &state),
        "openAlerts": open.items.iter().filter_map(|v| match v {
            View::Alert(a) => Some(alert_summary(a)),
            View::Emergency(_) => None,
        }).collect::<Vec<_>>(),
        "readings24h": readings.iter().map(reading_json).collect::<Vec<_>>(),
    })))
}

/// The newest value per metric: of the last 24 hours, or older ones detect still keeps
/// (its evaluated history and waiting readings).
fn latest(readings: &[VitalSample], state: &domain::detection::PatientState) -> Value {
    let mut newest: BTreeMap<&'static str, (i64, f64, VitalType)> = BTreeMap::new();
    let mut offer = |metric: VitalType, at: i64, value: f64| {
        let slot = newest.entry(metric.as_str()).or_insert((at, value, metric));
        if at >= slot.0 {
            *slot = (at, value, metric);
        }
    };
    for s in readings {
        offer(s.metric, s.at, s.value);
    }
    for (metric, history) in VitalType::ALL.iter().zip(&state.history) {
        // A compacted sample stands for several readings (a mean): only single ones.
        if let Some(sample) = history.iter().rev().find(|s| s.count == 1) {
            offer(*metric, sample.at, sample.value);
        }
    }
    for p in &state.pending {
        offer(p.metric, p.at, p.value);
    }
    newest
        .into_iter()
        .map(|(name, (at, value, metric))| {
            (
                name.to_string(),
                json!({
                    "value": value,
                    "unit": metric.unit(),
                    "at": DateTime::<Utc>::from_timestamp_millis(at),
                }),
            )
        })
        .collect::<serde_json::Map<String, Value>>()
        .into()
}
