//! `route`: alerts queue (SNS fan-out, raw delivery) -> the patient's health worker ->
//! `AlertRouted` (event table) + `NotificationRequested` (notify queue).
//!
//! The queue carries two event types:
//! - `AlertRaised`: the alert is routed to the patient's health worker (an `alert`
//!   notification);
//! - `AlertResolved`: the same worker is told the alert cleared (a `cleared` notification,
//!   with its own notification id). It waits until the alert itself has been routed (the
//!   message fails and is redelivered), so a worker never hears "cleared" before the alert.
//!   A resolution for a patient with no directory entry is logged and dropped: the alert
//!   was never routed either, so there is nobody to tell.
//!
//! Info alerts go to the dashboard only. The subscription's filter policy keeps them off
//! this queue; one that arrives anyway is acknowledged and nothing is sent.
//!
//! Before an alert's notification is requested, the alert's acknowledgement code is
//! registered (`application::ack_codes`), and the SMS ends with "Reply ACK <code>": a code
//! exists before anyone can reply with it. Both SMS are in the worker's language (the
//! workers table's `language`; `domain::messages`).
//!
//! Messages of a batch are handled concurrently. Each message is guarded by the
//! idempotency utility (key: its event id; validated: its data), so a redelivered alert or
//! resolution that was already handled sends nothing again.

use application::ack_codes::assign_code;
use application::idempotency::{Config, GuardError, Idempotency};
use application::ports::{
    AckCodes, Appended, Directory, EventReader, EventStore, NotificationQueue, PortError,
    StoredEvent, Workers,
};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{DateTime, Utc};
use domain::ack::AckTarget;
use domain::envelope::{DecodeError, Envelope, EventData, decode};
use domain::escalation::DEFAULT_LANGUAGE;
use domain::events::{AlertRaised, AlertResolved, AlertRouted, Severity, alert_stream};
use domain::ids::deterministic_id;
use domain::routing::{DirectoryEntry, cleared_notification_for, notification_for};
use lambda_kit::batch::{BatchError, body, sqs_standard};
use lambda_kit::metrics;
use tracing::Instrument;

/// The function name recorded as the `source` of the events it emits.
pub const SOURCE: &str = "route";

/// Messages of one batch routed at the same time.
pub const CONCURRENCY: usize = 4;

pub struct Deps<'a> {
    pub directory: &'a dyn Directory,
    /// The workers table: the assigned worker's current name and phone (one `GetItem` per
    /// alert; the directory entry holds only the worker's id).
    pub workers: &'a dyn Workers,
    pub events: &'a dyn EventStore,
    /// Reads an alert's stream: a resolution waits until its alert was routed.
    pub reader: &'a dyn EventReader,
    pub queue: &'a dyn NotificationQueue,
    /// The register of acknowledgement codes: an alert's code is registered before its SMS
    /// is requested.
    pub ack_codes: &'a dyn AckCodes,
    /// Guards each alert's routing (see [`idempotency_config`]).
    pub idempotency: &'a Idempotency<'a>,
}

/// Why a message was not routed (it is reported as a batch item failure and redelivered).
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("patient {0} has no health worker in the directory")]
    NoHealthWorker(String),
    #[error("alert {0} is not routed yet; the resolution waits for it")]
    NotRoutedYet(String),
    #[error(transparent)]
    Port(#[from] PortError),
    #[error("encoding the message: {0}")]
    Encode(#[from] serde_json::Error),
    #[error(transparent)]
    Idempotency(#[from] GuardError),
}

/// Idempotency of routing: one routing per alert (or resolution) event id; a repeat must
/// carry the same data.
pub fn idempotency_config() -> Config {
    Config::new(SOURCE, "/eventId").validate("/data")
}

/// Routes one batch of alerts and resolutions, [`CONCURRENCY`] at a time; failed messages
/// are reported for redelivery.
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
) -> Result<(), RouteError> {
    let bytes = body(message);
    match decode::<AlertRaised>(bytes) {
        Ok(alert) => {
            // Instrumented (not entered): the span must follow the future across awaits.
            let span = tracing::info_span!("route", correlation_id = %alert.correlation_id, alert_id = %alert.data.alert_id);
            async {
                if alert.data.severity == Severity::Info {
                    tracing::info!("info alert: dashboard only; nothing routed");
                    return Ok(());
                }
                // A redelivered alert was routed already: nothing is sent again.
                let outcome = deps
                    .idempotency
                    .once(&alert, now, || route_alert(deps, &alert, now))
                    .await?;
                lambda_kit::fault::crash_point("route.after_guard_alert");
                metrics::count_if(metrics::DUPLICATES_SKIPPED, outcome.replayed());
                Ok(())
            }
            .instrument(span)
            .await
        }
        Err(DecodeError::WrongType { actual, .. }) if actual == AlertResolved::EVENT_TYPE => {
            let resolved = decode::<AlertResolved>(bytes)?;
            let span = tracing::info_span!("clear", correlation_id = %resolved.correlation_id, alert_id = %resolved.data.alert_id);
            async {
                if resolved.data.severity == Severity::Info {
                    tracing::info!("info alert resolved: dashboard only; nothing sent");
                    return Ok(());
                }
                // A redelivered resolution was handled already: nothing is sent again.
                let outcome = deps
                    .idempotency
                    .once(&resolved, now, || clear_alert(deps, &resolved, now))
                    .await?;
                lambda_kit::fault::crash_point("route.after_guard_clear");
                metrics::count_if(metrics::DUPLICATES_SKIPPED, outcome.replayed());
                Ok(())
            }
            .instrument(span)
            .await
        }
        Err(e) => Err(e.into()),
    }
}

/// The patient's directory entry with the assigned worker's current name and phone from
/// the workers table (issue 14: the onboarding API edits workers there, and entries written
/// by it hold no copy), and the language the worker reads (the workers table's; English
/// for a worker known only from a legacy entry's copy). An entry written before keeps its copy, used only when the worker is
/// not in the workers table; an entry with neither has no reachable health worker. The
/// heartbeat's canary patient is never stored and goes to the canary recipient
/// (`domain::canary`).
async fn directory_entry(
    deps: &Deps<'_>,
    patient_id: &str,
) -> Result<Option<(DirectoryEntry, String)>, RouteError> {
    if domain::canary::is_canary_patient(patient_id) {
        return Ok(Some((
            domain::canary::canary_entry(),
            DEFAULT_LANGUAGE.to_string(),
        )));
    }
    let Some(entry) = deps.directory.get(patient_id).await? else {
        return Ok(None);
    };
    match deps.workers.get(&entry.worker_id).await? {
        Some(worker) => Ok(Some((
            entry.with_worker_contact(&worker.name, &worker.phone),
            worker.language,
        ))),
        None if !entry.worker_phone.is_empty() => {
            tracing::warn!(worker_id = %entry.worker_id, "worker not in the workers table; using the directory entry's copy of their phone");
            Ok(Some((entry, DEFAULT_LANGUAGE.to_string())))
        }
        None => {
            tracing::warn!(worker_id = %entry.worker_id, "the assigned worker is in neither the workers table nor the entry");
            Ok(None)
        }
    }
}

/// Routes one alert; returns the notification id it requested.
async fn route_alert(
    deps: &Deps<'_>,
    alert: &Envelope<AlertRaised>,
    now: DateTime<Utc>,
) -> Result<String, RouteError> {
    let patient_id = &alert.data.patient_id;
    let (entry, language) = directory_entry(deps, patient_id)
        .await?
        .ok_or_else(|| RouteError::NoHealthWorker(patient_id.clone()))?;
    // The code first: the SMS carries it, and a reply must find it registered.
    let code = assign_code(deps.ack_codes, &AckTarget::alert(&alert.data.alert_id)).await?;
    // In the worker's language (domain::messages).
    let request = notification_for(&alert.data, &entry, &language, &code);

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
    let stored = StoredEvent::from_envelope(&routed)?;
    let appended = deps
        .events
        .append(&alert_stream(&alert.data.alert_id), 1, &stored)
        .await?;
    lambda_kit::fault::crash_point("route.after_append");

    // Sent on a duplicate too (an earlier attempt may have failed before sending);
    // notify is idempotent per notification id.
    let request = Envelope::new(
        deterministic_id(&["NotificationRequested", &request.notification_id]),
        SOURCE,
        routed.child_lineage(),
        now,
        request,
    );
    deps.queue.send(&request).await?;
    lambda_kit::fault::crash_point("route.after_send");
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

/// Requests the `cleared` notification of a resolved alert; returns its id, or `None` when
/// the patient has no health worker in the directory (dropped).
async fn clear_alert(
    deps: &Deps<'_>,
    resolved: &Envelope<AlertResolved>,
    now: DateTime<Utc>,
) -> Result<Option<String>, RouteError> {
    let r = &resolved.data;
    let Some((entry, language)) = directory_entry(deps, &r.patient_id).await? else {
        // Its alert failed routing for the same reason (and is in RouteDLQ): nobody was
        // told about it, so nobody is told it cleared. Retrying would not change that.
        tracing::warn!(patient_id = %r.patient_id, "patient has no health worker in the directory; resolution dropped");
        return Ok(None);
    };
    let stream = deps.reader.read_stream(&alert_stream(&r.alert_id)).await?;
    if !stream
        .iter()
        .any(|e| e.event_type == AlertRouted::EVENT_TYPE)
    {
        // The alert and its resolution travel as separate messages; the alert's routing
        // may still be under way (or retrying). Fail, so this is redelivered after it.
        return Err(RouteError::NotRoutedYet(r.alert_id.clone()));
    }
    let request = cleared_notification_for(r, &entry, &language);
    let request = Envelope::new(
        deterministic_id(&["NotificationRequested", &request.notification_id]),
        SOURCE,
        resolved.child_lineage(),
        now,
        request,
    );
    deps.queue.send(&request).await?;
    lambda_kit::fault::crash_point("route.after_send_cleared");
    tracing::info!(worker_id = %entry.worker_id, notification_id = %request.data.notification_id, "cleared notification requested");
    Ok(Some(request.data.notification_id))
}
