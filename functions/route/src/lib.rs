//! `route`: alerts queue (SNS fan-out, raw delivery) -> the patient's health worker ->
//! `AlertRouted` (event table) + `NotificationRequested` (notify queue).
//!
//! Messages of a batch are routed concurrently. Each alert is guarded by the idempotency
//! utility (key: the alert event id; validated: its data), so a redelivered alert that was
//! already routed sends nothing again.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{DateTime, Utc};
use shared::batch::{BatchError, body, sqs_standard};
use shared::envelope::{Envelope, decode};
use shared::events::{AlertRaised, AlertRouted, alert_stream};
use shared::idempotency::{Config, Idempotency};
use shared::ids::deterministic_id;
use shared::metrics;
use shared::ports::{Appended, Directory, EventStore, NotificationQueue, StoredEvent};
use shared::routing::notification_for;
use tracing::Instrument;

/// The function name recorded as the `source` of the events it emits.
pub const SOURCE: &str = "route";

/// Messages of one batch routed at the same time.
pub const CONCURRENCY: usize = 4;

pub struct Deps<'a> {
    pub directory: &'a dyn Directory,
    pub events: &'a dyn EventStore,
    pub queue: &'a dyn NotificationQueue,
    /// Guards each alert's routing (see [`idempotency_config`]).
    pub idempotency: &'a Idempotency<'a>,
}

/// Idempotency of routing: one routing per alert event id; a repeat must carry the same
/// alert data.
pub fn idempotency_config() -> Config {
    Config::new(SOURCE, "/eventId").validate("/data")
}

/// Handles one SQS batch; failed messages are reported for redelivery.
pub async fn handle(
    deps: &Deps<'_>,
    event: &SqsEvent,
    now: DateTime<Utc>,
) -> Result<SqsBatchResponse, BatchError> {
    sqs_standard(&event.records, CONCURRENCY, |message| {
        route_one(deps, message, now)
    })
    .await
}

async fn route_one(
    deps: &Deps<'_>,
    message: &SqsMessage,
    now: DateTime<Utc>,
) -> Result<(), String> {
    let alert = decode::<AlertRaised>(body(message)).map_err(|e| e.to_string())?;
    // Instrumented (not entered): the span must follow the future across awaits.
    let span = tracing::info_span!("route", correlation_id = %alert.correlation_id, alert_id = %alert.data.alert_id);
    route_once(deps, &alert, now).instrument(span).await
}

/// Routes the alert unless an earlier delivery already did (idempotency guard).
async fn route_once(
    deps: &Deps<'_>,
    alert: &Envelope<AlertRaised>,
    now: DateTime<Utc>,
) -> Result<(), String> {
    let payload = serde_json::to_value(alert).map_err(|e| e.to_string())?;
    let outcome = deps
        .idempotency
        .run(&payload, now, || route_alert(deps, alert, now))
        .await
        .map_err(|e| e.to_string())?;
    if outcome.replayed() {
        metrics::count(metrics::DUPLICATES_SKIPPED, 1);
        tracing::info!("alert already routed; nothing sent again");
    }
    Ok(())
}

/// Routes one alert; returns the notification id it requested.
async fn route_alert(
    deps: &Deps<'_>,
    alert: &Envelope<AlertRaised>,
    now: DateTime<Utc>,
) -> Result<String, String> {
    let patient_id = &alert.data.patient_id;
    let entry = deps
        .directory
        .get(patient_id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("patient {patient_id} has no health worker in the directory"))?;
    let request = notification_for(&alert.data, &entry);

    let routed = Envelope::new(
        deterministic_id(&["AlertRouted", &alert.data.alert_id]),
        SOURCE,
        alert.child_lineage(),
        now,
        AlertRouted {
            alert_id: alert.data.alert_id.clone(),
            patient_id: patient_id.clone(),
            worker_id: entry.worker_id.clone(),
            notification_id: request.notification_id.clone(),
        },
    );
    let stored = StoredEvent::from_envelope(&routed).map_err(|e| e.to_string())?;
    let appended = deps
        .events
        .append(&alert_stream(&alert.data.alert_id), 1, &stored)
        .await
        .map_err(|e| e.to_string())?;

    // Sent on a duplicate too (an earlier attempt may have failed before sending);
    // notify is idempotent per notification id.
    let request = Envelope::new(
        deterministic_id(&["NotificationRequested", &request.notification_id]),
        SOURCE,
        routed.child_lineage(),
        now,
        request,
    );
    deps.queue.send(&request).await.map_err(|e| e.to_string())?;
    tracing::info!(worker_id = %entry.worker_id, ?appended, "alert routed");
    if appended == Appended::Duplicate {
        metrics::count(metrics::DUPLICATES_SKIPPED, 1);
    }
    // The alert's reading time (`detectedAt`) to now: how far behind alerting runs.
    metrics::milliseconds(
        metrics::END_TO_END_LAG_MS,
        (now - alert.data.detected_at).num_milliseconds() as f64,
    );
    Ok(request.data.notification_id)
}
