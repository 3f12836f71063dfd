//! `detect`: readings stream (Kinesis) -> per-patient anomaly rules -> `AlertRaised`.
//!
//! For each batch: records are decoded in order; each patient's readings are evaluated
//! against the patient's stored state; every alert is appended to the event table (a
//! conditional write keyed on the deterministic alert id, so a redelivered batch never
//! raises an alert twice) and published to the alerts topic; the state is saved once per
//! patient with an optimistic version check.
//!
//! A record that does not decode (poison) can never succeed, so it is not retried: it is
//! sent, payload and all, to the dead-letter queue and the batch goes on. Other failures
//! (a DynamoDB or SNS error, a version conflict) are transient: they are reported
//! Kinesis-style, as the sequence number of the first record not fully processed. Lambda
//! checkpoints everything before it and retries from it; when its retries run out, the
//! event source mapping's on-failure destination receives the batch's coordinates.

use std::collections::BTreeMap;

use aws_lambda_events::event::kinesis::{KinesisEvent, KinesisEventRecord};
use aws_lambda_events::event::streams::KinesisEventResponse;
use chrono::{DateTime, Utc};
use shared::detection::{AlertCandidate, PatientState, Rule, evaluate};
use shared::envelope::{Envelope, Lineage, decode};
use shared::events::{AlertRaised, alert_stream};
use shared::ids::deterministic_id;
use shared::metrics;
use shared::ports::{
    AlertPublisher, Appended, DeadLetters, Directory, EventStore, PatientStateStore, PoisonRecord,
    PortError, StoredEvent,
};
use shared::reading::Reading;
use shared::routing::UNKNOWN_VILLAGE;

/// The function name recorded as the `source` of the events it emits.
pub const SOURCE: &str = "detect";

/// What `detect` needs, passed in by `main` (AWS) or by tests (in memory).
pub struct Deps<'a> {
    pub rules: &'a [Rule],
    pub state: &'a dyn PatientStateStore,
    pub events: &'a dyn EventStore,
    pub directory: &'a dyn Directory,
    pub publisher: &'a dyn AlertPublisher,
    pub dead_letters: &'a dyn DeadLetters,
}

/// One decoded record and where it sits in the batch.
struct Decoded {
    index: usize,
    envelope: Envelope<Reading>,
}

/// Handles one Kinesis batch and reports the first record that was not fully processed.
pub async fn handle(
    deps: &Deps<'_>,
    event: &KinesisEvent,
    now: DateTime<Utc>,
) -> KinesisEventResponse {
    let records = &event.records;
    let mut first_failure: Option<usize> = None;

    // Decode in order. Poison records go to the dead-letter queue; if that fails too,
    // stop there (everything from it on is retried).
    let mut decoded = Vec::with_capacity(records.len());
    for (index, record) in records.iter().enumerate() {
        match decode::<Reading>(&record.kinesis.data.0) {
            Ok(envelope) => decoded.push(Decoded { index, envelope }),
            Err(err) => {
                tracing::error!(
                    sequence_number = %record.kinesis.sequence_number,
                    partition_key = %record.kinesis.partition_key,
                    error = %err,
                    "undecodable record: sending it to the dead-letter queue"
                );
                if let Err(send_err) = deps
                    .dead_letters
                    .send(&poison(record, &err.to_string()))
                    .await
                {
                    tracing::error!(error = %send_err, "dead-letter queue unavailable: reporting the record as failed");
                    first_failure = Some(index);
                    break;
                }
            }
        }
    }

    // End-to-end lag of the batch: its oldest reading's event time to now.
    if let Some(oldest) = decoded.iter().map(|d| d.envelope.data.timestamp).min() {
        metrics::milliseconds(metrics::END_TO_END_LAG_MS, lag_ms(oldest, now));
    }

    // Group by patient, keeping batch order within each patient.
    let mut by_patient: BTreeMap<String, Vec<Decoded>> = BTreeMap::new();
    for d in decoded {
        by_patient
            .entry(d.envelope.data.patient_id.clone())
            .or_default()
            .push(d);
    }

    for (patient_id, readings) in &by_patient {
        if let Err(err) = process_patient(deps, patient_id, readings, now).await {
            let index = readings[0].index;
            tracing::error!(patient_id, error = %err, "patient's readings not processed; will be retried");
            first_failure = Some(first_failure.map_or(index, |f| f.min(index)));
        }
    }

    let mut response = KinesisEventResponse::default();
    if let Some(index) = first_failure {
        response.add_failure(sequence_number(&records[index]));
    }
    metrics::count(
        metrics::BATCH_ITEM_FAILURES,
        response.batch_item_failures.len(),
    );
    response
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

/// Milliseconds from `then` to `now` (negative for a clock ahead of ours).
fn lag_ms(then: DateTime<Utc>, now: DateTime<Utc>) -> f64 {
    (now - then).num_milliseconds() as f64
}

fn sequence_number(record: &KinesisEventRecord) -> String {
    record.kinesis.sequence_number.clone()
}

async fn process_patient(
    deps: &Deps<'_>,
    patient_id: &str,
    readings: &[Decoded],
    now: DateTime<Utc>,
) -> Result<(), PortError> {
    let stored = deps.state.load(patient_id).await?;
    let mut state: PatientState = stored.value;
    let input: Vec<(String, Reading)> = readings
        .iter()
        .map(|d| (d.envelope.event_id.clone(), d.envelope.data.clone()))
        .collect();
    let evaluation = evaluate(&mut state, deps.rules, &input);

    metrics::count(metrics::DUPLICATES_SKIPPED, evaluation.duplicates.len());
    metrics::count(metrics::LATE_READINGS, evaluation.late.len());
    if !evaluation.duplicates.is_empty() {
        tracing::info!(
            patient_id,
            duplicates = evaluation.duplicates.len(),
            "skipped redelivered readings"
        );
    }
    for event_id in &evaluation.late {
        tracing::warn!(
            patient_id,
            event_id,
            "late reading: older than the newest of its type, not evaluated"
        );
    }

    for candidate in &evaluation.alerts {
        let trigger = readings
            .iter()
            .find(|d| d.envelope.event_id == candidate.trigger_event_id)
            .map(|d| &d.envelope);
        let lineage = match trigger {
            Some(env) => env.child_lineage(),
            None => Lineage {
                correlation_id: candidate.alert_id.clone(),
                causation_id: candidate.trigger_event_id.clone(),
            },
        };
        raise(deps, candidate, patient_id, lineage, now).await?;
    }

    if evaluation.changed {
        deps.state.save(patient_id, stored.version, &state).await?;
    }
    Ok(())
}

async fn raise(
    deps: &Deps<'_>,
    candidate: &AlertCandidate,
    patient_id: &str,
    lineage: Lineage,
    now: DateTime<Utc>,
) -> Result<(), PortError> {
    let village = deps
        .directory
        .get(patient_id)
        .await?
        .map(|e| e.village)
        .unwrap_or_else(|| UNKNOWN_VILLAGE.to_string());
    let alert = AlertRaised {
        alert_id: candidate.alert_id.clone(),
        patient_id: patient_id.to_string(),
        rule_id: candidate.rule.id.clone(),
        alert_type: candidate.rule.alert_type.clone(),
        severity: candidate.rule.severity,
        village,
        description: candidate.rule.describe(),
        evidence: candidate.evidence.clone(),
        detected_at: candidate.detected_at,
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
    // Published on a duplicate too: an earlier attempt may have stored the alert and then
    // failed before publishing. Consumers are idempotent by alert id.
    deps.publisher.publish(&envelope).await?;
    match appended {
        Appended::Written => metrics::count_by(
            metrics::ALERTS_RAISED,
            1,
            &[
                ("Rule", &candidate.rule.id),
                ("Severity", candidate.rule.severity.as_str()),
            ],
        ),
        Appended::Duplicate => metrics::count(metrics::DUPLICATES_SKIPPED, 1),
    }
    tracing::info!(
        correlation_id = %envelope.correlation_id,
        alert_id = %candidate.alert_id,
        patient_id,
        rule_id = %candidate.rule.id,
        severity = candidate.rule.severity.as_str(),
        ?appended,
        "alert raised"
    );
    Ok(())
}
