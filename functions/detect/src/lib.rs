//! `detect`: readings stream (Kinesis) -> per-patient anomaly rules -> `AlertRaised`.
//!
//! For each batch: records are decoded in order; each patient's readings are applied to
//! the patient's stored state by the event-time engine (`domain::detection`), with the
//! rules of `rules.yaml` (or of the file named by `DETECT_RULES_PATH`). Late readings are
//! recorded as `ReadingLate` events; every alert is appended to the event table (a
//! conditional write keyed on the deterministic alert id, so a redelivered batch never
//! raises an alert twice) and published to the alerts topic; a condition that clears is
//! recorded as `AlertResolved`; the state is saved once per patient, only if it changed,
//! with an optimistic version check.
//!
//! A record that does not decode (poison) can never succeed, so it is not retried: it is
//! sent, payload and all, to the dead-letter queue and the batch goes on. Other failures
//! (a DynamoDB or SNS error, a version conflict) are transient: they are reported
//! Kinesis-style, as the sequence number of the first record not fully processed. Lambda
//! checkpoints everything before it and retries from it; when its retries run out, the
//! event source mapping's on-failure destination receives the batch's coordinates.

pub mod compact;
mod decode;
pub mod kinesis;
mod rules;
pub mod shard;
pub mod stream;
mod summary;
mod vitals;

pub use decode::{Decoded, PatientReadings, ReadingView, decode_record, group_by_patient};
pub use rules::{DEFAULT_RULES_YAML, RULES_PATH_ENV, RulesError, default_rules, load_rules};
pub use summary::{BatchSummary, PATIENT_CONCURRENCY};

use futures::StreamExt;

use application::idempotency::{Config, Idempotency, IdempotencyError};
use application::ports::{
    AlertPublisher, Appended, DeadLetters, Directory, EventStore, PatientStateStore, PoisonRecord,
    PortError, StoredEvent,
};
use aws_lambda_events::event::kinesis::{KinesisEvent, KinesisEventRecord};
use aws_lambda_events::event::streams::KinesisEventResponse;
use chrono::{DateTime, Utc};
use domain::detection::{
    AlertCandidate, Emit, Input, PatientState, ReadingInput, Resolution, RuleSet,
};
use domain::envelope::{Envelope, Lineage};
use domain::events::{AlertRaised, AlertResolved, alert_resolution_stream, alert_stream};
use domain::ids::deterministic_id;
use domain::routing::UNKNOWN_VILLAGE;
use lambda_kit::metrics;

/// The function name recorded as the `source` of the events it emits.
pub const SOURCE: &str = "detect";

/// What `detect` needs, passed in by `main` (AWS) or by tests (in memory).
#[derive(Clone, Copy)]
pub struct Deps<'a> {
    pub rules: &'a RuleSet,
    pub state: &'a dyn PatientStateStore,
    pub events: &'a dyn EventStore,
    pub directory: &'a dyn Directory,
    pub publisher: &'a dyn AlertPublisher,
    pub dead_letters: &'a dyn DeadLetters,
    /// Guards each alert's and resolution's SNS publish (see
    /// [`publish_idempotency_config`]).
    pub publish_guard: &'a Idempotency<'a>,
    /// A critical alert whose trigger reading is older than this when the alert is decided
    /// does not start the emergency saga by itself (`AlertRaised.autoDispatch`).
    pub auto_dispatch_max_age: chrono::Duration,
    /// Closed hours of recent vitals, and the village readings counts (docs/read-side.md).
    pub vitals: &'a dyn application::vitals::RecentVitals,
    pub village_stats: &'a dyn application::vitals::VillageStats,
}

/// The default auto-dispatch cut-off (`AUTO_DISPATCH_MAX_AGE_SECONDS`): 15 minutes.
pub const DEFAULT_AUTO_DISPATCH_MAX_AGE_SECONDS: u32 = 900;

/// Environment variable of the auto-dispatch cut-off, in seconds.
pub const AUTO_DISPATCH_MAX_AGE_ENV: &str = "AUTO_DISPATCH_MAX_AGE_SECONDS";

/// Idempotency of publishing: one publish per event id (an alert's `AlertRaised`, its
/// `AlertResolved`); a repeat must carry the same data.
pub fn publish_idempotency_config() -> Config {
    Config::new("detect-publish", "/eventId").validate("/data")
}

/// Handles one Kinesis batch and reports the first record that was not fully processed.
pub async fn handle(
    deps: &Deps<'_>,
    event: &KinesisEvent,
    now: DateTime<Utc>,
) -> KinesisEventResponse {
    handle_batch(deps, event, now).await.0
}

/// [`handle`], also returning what the batch did.
pub async fn handle_batch(
    deps: &Deps<'_>,
    event: &KinesisEvent,
    now: DateTime<Utc>,
) -> (KinesisEventResponse, BatchSummary) {
    let records = &event.records;
    let mut first_failure: Option<usize> = None;
    let mut summary = BatchSummary {
        records: records.len(),
        ..BatchSummary::default()
    };

    // Decode in order. Poison records go to the dead-letter queue; if that fails too,
    // stop there (everything from it on is retried).
    let mut decoded = Vec::with_capacity(records.len());
    for (index, record) in records.iter().enumerate() {
        match decode_record(&record.kinesis.data.0) {
            Ok(envelope) => decoded.push(Decoded { index, envelope }),
            Err(err) => {
                summary.poison += 1;
                tracing::error!(
                    sequence_number = %record.kinesis.sequence_number,
                    partition_key = %record.kinesis.partition_key,
                    error = %err,
                    "undecodable record: sending it to the dead-letter queue"
                );
                if !send_poison(deps, record, &err.to_string()).await {
                    first_failure = Some(index);
                    break;
                }
            }
        }
    }

    // End-to-end lag of the batch: its oldest reading's event time to now.
    if let Some(oldest) = decoded.iter().map(|d| d.envelope.data.timestamp).min() {
        metrics::milliseconds(
            metrics::END_TO_END_LAG_MS,
            (now - oldest).num_milliseconds() as f64,
        );
    }

    // Group by patient, keeping batch order within each patient.
    let by_patient = group_by_patient(&decoded);

    // Patients are independent: their I/O runs concurrently (bounded); each patient's
    // readings stay in order within its own task.
    summary.patients = by_patient.len();
    let results: Vec<(usize, &str, BatchSummary, Result<(), PortError>)> =
        futures::stream::iter(by_patient.iter().map(|readings| async move {
            let mut own = BatchSummary::default();
            let result =
                process_patient(deps, readings.patient_id, &readings.inputs, now, &mut own).await;
            (readings.first_index, readings.patient_id, own, result)
        }))
        .buffer_unordered(PATIENT_CONCURRENCY)
        .collect()
        .await;
    for (index, patient_id, own, result) in results {
        summary.add(&own);
        if let Err(err) = result {
            summary.failed_patients += 1;
            tracing::error!(patient_id, error = %err, "patient's readings not processed; will be retried");
            first_failure = Some(first_failure.map_or(index, |f| f.min(index)));
        }
    }

    vitals::add_village_readings(deps, &summary).await;
    let mut response = KinesisEventResponse::default();
    if let Some(index) = first_failure {
        response.add_failure(sequence_number(&records[index]));
    }
    log_batch(&summary, &response);
    (response, summary)
}

/// Metrics and the `batch summary` log line of a handled batch.
pub(crate) fn log_batch(summary: &BatchSummary, response: &KinesisEventResponse) {
    metrics::count(metrics::DUPLICATES_SKIPPED, summary.duplicates);
    metrics::count(metrics::LATE_READINGS, summary.late);
    metrics::count(
        metrics::BATCH_ITEM_FAILURES,
        response.batch_item_failures.len(),
    );
    tracing::info!(
        records = summary.records,
        poison = summary.poison,
        patients = summary.patients,
        duplicates = summary.duplicates,
        late = summary.late,
        evaluated = summary.evaluated,
        pending = summary.pending,
        alerts_raised = summary.alerts_raised,
        alerts_resolved = summary.alerts_resolved,
        state_writes = summary.state_writes,
        event_writes = summary.event_writes,
        vitals_writes = summary.vitals_writes,
        failed_patients = summary.failed_patients,
        "batch summary"
    );
}

/// Sends an undecodable record to the dead-letter queue; false if that failed too (the
/// record is then reported as failed, and everything from it is retried).
pub(crate) async fn send_poison(
    deps: &Deps<'_>,
    record: &KinesisEventRecord,
    reason: &str,
) -> bool {
    match deps.dead_letters.send(&poison(record, reason)).await {
        Ok(()) => true,
        Err(send_err) => {
            tracing::error!(error = %send_err, "dead-letter queue unavailable: reporting the record as failed");
            false
        }
    }
}

fn poison(record: &KinesisEventRecord, reason: &str) -> PoisonRecord {
    use base64::Engine;
    PoisonRecord {
        kind: "PoisonRecord",
        function: SOURCE.to_string(),
        reason: reason.to_string(),
        event_source_arn: record.event_source_arn.clone(),
        event_id: record.event_id.clone(),
        sequence_number: Some(record.kinesis.sequence_number.clone()),
        partition_key: Some(record.kinesis.partition_key.clone()),
        data: base64::engine::general_purpose::STANDARD.encode(&record.kinesis.data.0),
    }
}

fn sequence_number(record: &KinesisEventRecord) -> String {
    record.kinesis.sequence_number.clone()
}

/// How often a patient's batch is re-applied on fresh state after a version conflict (the
/// sweep or a retried invocation saved the patient's state meanwhile) before its records
/// are reported as failed.
pub const CONFLICT_ATTEMPTS: usize = 3;

/// Applies one patient's readings (none, for the sweep) and carries out what they decided.
///
/// The order of effects is facts first: the new state, with the decided alerts and
/// resolutions in its outbox, is saved (optimistic version check) before any event is
/// appended or published. A conflict therefore has done nothing yet, and is retried on
/// fresh state. Then each effect in the outbox is carried out (idempotent: conditional
/// append by deterministic event id, publish guarded by event id) and the outbox is
/// cleared with a second save. A crash between the two saves leaves the outbox saved: the
/// retried batch, or the sweep (the state is due at once), carries it out.
pub async fn process_patient<I: ReadingInput + Sync>(
    deps: &Deps<'_>,
    patient_id: &str,
    inputs: &[I],
    now: DateTime<Utc>,
    summary: &mut BatchSummary,
) -> Result<(), PortError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let stored = deps.state.load(patient_id).await?;
        let mut state: PatientState = stored.value;
        let outcome = deps.rules.apply_inputs(&mut state, patient_id, inputs, now);
        state.outbox.extend(outcome.emits());
        vitals::buffer(&mut state, inputs, &outcome.duplicates);
        let flushed = if deps.state.defers_vitals() {
            Vec::new()
        } else {
            vitals::flush(deps, patient_id, &mut state, now, summary).await?
        };
        let due = vitals::due(deps.rules.due_at(&state), &state);
        let changed = outcome.changed
            || due != state.due_at
            || !state.outbox.is_empty()
            || !flushed.is_empty();
        state.due_at = due;
        let mut version = stored.version;
        if changed {
            match deps.state.save(patient_id, version, &state).await {
                Ok(()) => {
                    version += 1;
                    summary.state_writes += 1;
                    lambda_kit::fault::crash_point("detect.after_save_state");
                    vitals::count(deps, patient_id, &flushed, summary).await;
                }
                Err(PortError::Conflict { .. }) if attempt < CONFLICT_ATTEMPTS => {
                    tracing::info!(
                        patient_id,
                        attempt,
                        "patient state changed meanwhile: applying again on fresh state"
                    );
                    continue;
                }
                Err(err) => return Err(err),
            }
        }
        summary.duplicates += outcome.duplicates.len();
        summary.evaluated += outcome.evaluated;
        summary.pending += outcome.pending;
        summary.late += outcome.late.len();
        summary.alerts_raised += outcome.alerts.len();
        summary.alerts_resolved += outcome.resolutions.len();
        if !outcome.duplicates.is_empty() {
            tracing::info!(
                patient_id,
                duplicates = outcome.duplicates.len(),
                "skipped redelivered readings"
            );
        }
        for late in &outcome.late {
            tracing::info!(
                correlation_id = %late.correlation_id,
                patient_id,
                event_id = %late.event_id,
                reading_time = %late.timestamp,
                frontier = %late.frontier,
                "late reading: beyond the allowed lateness, evaluated by backfill"
            );
        }
        if state.outbox.is_empty() {
            return Ok(());
        }
        for emit in &state.outbox {
            summary.event_writes += 1;
            let carried = match emit {
                Emit::Raise(candidate) => raise(deps, candidate, patient_id, now).await?,
                Emit::Resolve(resolution) => resolve(deps, resolution, patient_id, now).await?,
            };
            if carried == Carried::Held {
                // An earlier attempt claimed this publish and has not completed it: it may
                // have died after publishing (its claim expires at its deadline), or it is
                // still running. Retrying the batch now would only meet the claim again and
                // use up the stream's retries. The saved outbox keeps the effect (and the
                // state due), so the sweep carries it out, in order, once the claim is
                // resolved; the readings themselves are processed.
                tracing::info!(
                    patient_id,
                    "an effect of the outbox is held by another attempt; the sweep carries it out"
                );
                return Ok(());
            }
        }
        state.outbox.clear();
        state.due_at = vitals::due(deps.rules.due_at(&state), &state);
        match deps.state.save(patient_id, version, &state).await {
            Ok(()) => {
                summary.state_writes += 1;
                lambda_kit::fault::crash_point("detect.after_clear_outbox");
            }
            // Someone loaded the state with our outbox meanwhile: they carry it out again
            // (idempotently) and clear it.
            Err(PortError::Conflict { .. }) => {}
            Err(err) => tracing::warn!(
                patient_id,
                error = %err,
                "carried out the outbox but could not clear it: it will be carried out again"
            ),
        }
        return Ok(());
    }
}

/// Whether an effect of the outbox was carried out (now or by an earlier attempt), or is
/// held by another attempt's unexpired idempotency claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Carried {
    Done,
    Held,
}

/// Publishes once per event id (the publish guard); an unexpired in-progress claim of
/// another attempt is [`Carried::Held`], not an error.
async fn publish_once<T, F, Fut>(
    deps: &Deps<'_>,
    envelope: &Envelope<T>,
    now: DateTime<Utc>,
    publish: F,
) -> Result<Carried, PortError>
where
    T: serde::Serialize,
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<(), PortError>>,
{
    let payload = serde_json::to_value(envelope)?;
    match deps.publish_guard.run(&payload, now, publish).await {
        Ok(_) => Ok(Carried::Done),
        Err(IdempotencyError::AlreadyInProgress { key }) => {
            tracing::warn!(idempotency_key = %key, event_id = %envelope.event_id, "publish claimed by another attempt that has not completed it");
            Ok(Carried::Held)
        }
        Err(err) => Err(err.into_inner()),
    }
}

/// Records that an alert's condition no longer holds, and tells the alerts topic.
async fn resolve(
    deps: &Deps<'_>,
    resolution: &Resolution,
    patient_id: &str,
    now: DateTime<Utc>,
) -> Result<Carried, PortError> {
    let data = AlertResolved {
        alert_id: resolution.alert_id.clone(),
        patient_id: patient_id.to_string(),
        rule_id: resolution.rule.id.clone(),
        alert_type: resolution.rule.alert_type.clone(),
        severity: resolution.rule.severity,
        episode_start: resolution.episode_start,
        resolved_at: resolution.resolved_at,
        reading_event_id: resolution.trigger_event_id.clone(),
    };
    let event_id = deterministic_id(&["AlertResolved", &resolution.alert_id]);
    let lineage = Lineage {
        correlation_id: resolution.correlation_id.clone(),
        causation_id: resolution.trigger_event_id.clone(),
    };
    let envelope = Envelope::new(event_id, SOURCE, lineage, now, data);
    let appended = deps
        .events
        .append(
            &alert_resolution_stream(&resolution.alert_id),
            0,
            &StoredEvent::from_envelope(&envelope)?,
        )
        .await?;
    lambda_kit::fault::crash_point("detect.after_append_resolution");
    let carried = publish_once(deps, &envelope, now, || async {
        let published = deps.publisher.publish_resolved(&envelope).await;
        lambda_kit::fault::crash_point("detect.after_publish_resolution");
        published
    })
    .await?;
    lambda_kit::fault::crash_point("detect.after_guard_resolution");
    tracing::info!(
        correlation_id = %envelope.correlation_id,
        alert_id = %resolution.alert_id,
        patient_id,
        rule_id = %resolution.rule.id,
        ?appended,
        ?carried,
        "alert resolved"
    );
    Ok(carried)
}

/// The `AlertRaised` of a decided alert. Everything in it comes from the decision (stored
/// in the outbox), so carrying it out again gives the same data.
pub fn alert_raised(
    candidate: &AlertCandidate,
    patient_id: &str,
    village: String,
    auto_dispatch_max_age: chrono::Duration,
) -> AlertRaised {
    let age = candidate.decided_at - candidate.detected_at;
    AlertRaised {
        alert_id: candidate.alert_id.clone(),
        patient_id: patient_id.to_string(),
        rule_id: candidate.rule.id.clone(),
        alert_type: candidate.rule.alert_type.clone(),
        severity: candidate.rule.severity,
        village,
        description: candidate.rule.describe(),
        evidence: candidate.evidence.clone(),
        detected_at: candidate.detected_at,
        late_by_seconds: candidate.late_by_seconds,
        auto_dispatch: age <= auto_dispatch_max_age,
    }
}

async fn raise(
    deps: &Deps<'_>,
    candidate: &AlertCandidate,
    patient_id: &str,
    now: DateTime<Utc>,
) -> Result<Carried, PortError> {
    let village = deps
        .directory
        .get(patient_id)
        .await?
        .map(|e| e.village)
        .unwrap_or_else(|| UNKNOWN_VILLAGE.to_string());
    let alert = alert_raised(candidate, patient_id, village, deps.auto_dispatch_max_age);
    let lineage = Lineage {
        correlation_id: candidate.correlation_id.clone(),
        causation_id: candidate.trigger_event_id.clone(),
    };
    let event_id = deterministic_id(&["AlertRaised", &alert.alert_id]);
    let envelope = Envelope::new(event_id, SOURCE, lineage, now, alert);
    let appended = deps
        .events
        .append(
            &alert_stream(&candidate.alert_id),
            0,
            &StoredEvent::from_envelope(&envelope)?,
        )
        .await?;
    lambda_kit::fault::crash_point("detect.after_append_alert");
    // Published on a duplicate append too (an earlier attempt may have stored the alert
    // and then failed before publishing), but once per alert: the idempotency guard
    // returns without publishing when an earlier publish completed.
    let carried = publish_once(deps, &envelope, now, || async {
        let published = deps.publisher.publish(&envelope).await;
        lambda_kit::fault::crash_point("detect.after_publish_alert");
        published
    })
    .await?;
    lambda_kit::fault::crash_point("detect.after_guard_alert");
    match appended {
        Appended::Written => {
            metrics::count_by(
                metrics::ALERTS_RAISED,
                1,
                &[
                    ("Rule", &candidate.rule.id),
                    ("Severity", candidate.rule.severity.as_str()),
                ],
            );
            if envelope.data.late_by_seconds.is_some() {
                metrics::count(metrics::LATE_ALERTS, 1);
            }
        }
        Appended::Duplicate => metrics::count(metrics::DUPLICATES_SKIPPED, 1),
    }
    tracing::info!(
        correlation_id = %envelope.correlation_id,
        alert_id = %candidate.alert_id,
        patient_id,
        rule_id = %candidate.rule.id,
        severity = candidate.rule.severity.as_str(),
        late_by_seconds = envelope.data.late_by_seconds,
        auto_dispatch = envelope.data.auto_dispatch,
        ?appended,
        ?carried,
        "alert raised"
    );
    Ok(carried)
}

/// The most due patients one sweep takes from each shard of the due index.
pub const SWEEP_PAGE: usize = 200;

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepSummary {
    /// Due patients found in the index.
    pub due: usize,
    /// Patients whose processing failed (they stay due, the next sweep retries them).
    pub failed: usize,
    pub batch: BatchSummary,
}

/// The scheduled sweep: evaluates every patient whose state is due at `now` (pending
/// readings past the allowed lateness, a `missing` deadline, an outbox not carried out),
/// through the same path as a batch of readings, with no readings. Patients are found in
/// the sparse due index, never by a scan. A patient that fails stays due for the next
/// sweep; the sweep itself fails only if the index cannot be read.
pub async fn sweep(deps: &Deps<'_>, now: DateTime<Utc>) -> Result<SweepSummary, PortError> {
    let mut summary = SweepSummary::default();
    let now_ms = now.timestamp_millis();
    let none: &[Input<'_>] = &[];
    for shard in 0..domain::detection::DUE_SHARDS {
        let due = deps.state.due(shard, now_ms, SWEEP_PAGE).await?;
        summary.due += due.len();
        let results: Vec<(String, BatchSummary, Result<(), PortError>)> =
            futures::stream::iter(due.into_iter().map(|patient_id| async move {
                let mut own = BatchSummary::default();
                let result = process_patient(deps, &patient_id, none, now, &mut own).await;
                (patient_id, own, result)
            }))
            .buffer_unordered(PATIENT_CONCURRENCY)
            .collect()
            .await;
        for (patient_id, own, result) in results {
            summary.batch.add(&own);
            if let Err(err) = result {
                summary.failed += 1;
                tracing::error!(patient_id, error = %err, "sweep: patient not processed; stays due");
            }
        }
    }
    summary.batch.patients = summary.due;
    vitals::add_village_readings(deps, &summary.batch).await;
    metrics::count(metrics::SWEPT_PATIENTS, summary.due);
    tracing::info!(
        due = summary.due,
        failed = summary.failed,
        evaluated = summary.batch.evaluated,
        alerts_raised = summary.batch.alerts_raised,
        alerts_resolved = summary.batch.alerts_resolved,
        state_writes = summary.batch.state_writes,
        "sweep summary"
    );
    Ok(summary)
}
