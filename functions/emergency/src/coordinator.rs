//! The saga coordinator: loads an emergency's stream, lets the pure state machine decide,
//! appends the event with optimistic concurrency and sends the step command it waits on
//! (with a deadline check for forward steps).

use application::ports::{Channel, StoredEvent};
use chrono::{DateTime, Utc};
use domain::envelope::{Envelope, Lineage, decode};
use domain::events::{AlertRaised, Severity};
use domain::ids::deterministic_id;
use domain::saga::*;

use tracing::Instrument;

use crate::{Deps, EmergencyError, SOURCE};

/// A critical alert (emergency queue) starts the saga of its emergency, unless it is marked
/// for manual dispatch (`autoDispatch: false`, a late critical alert).
pub async fn on_critical_alert(
    deps: &Deps<'_>,
    bytes: &[u8],
    now: DateTime<Utc>,
) -> Result<(), EmergencyError> {
    let alert = decode::<AlertRaised>(bytes)?;
    let a = &alert.data;
    if a.severity != Severity::Critical {
        tracing::warn!(alert_id = %a.alert_id, "non-critical alert on the emergency queue; ignored");
        return Ok(());
    }
    if !a.auto_dispatch {
        // Found in readings older than the auto-dispatch cut-off: the health worker was
        // told (route) and decides; an emergency is then raised with POST /emergencies.
        // The subscription's filter policy (dispatch = auto) keeps these off the queue.
        tracing::warn!(alert_id = %a.alert_id, late_by_seconds = ?a.late_by_seconds, "critical alert for manual dispatch on the emergency queue; no saga started");
        return Ok(());
    }
    let emergency_id = emergency_id_for_alert(&a.alert_id);
    let started = EmergencyStarted {
        emergency_id: emergency_id.clone(),
        patient_id: a.patient_id.clone(),
        village: a.village.clone(),
        reason: a.description.clone(),
        reporter: format!("alert:{}", a.alert_id),
        ambulance_required: AMBULANCE_ALERT_TYPES.contains(&a.alert_type.as_str()),
    };
    advance(
        deps,
        &emergency_id,
        &SagaInput::Start(started),
        &alert.event_id,
        &alert.correlation_id,
        now,
    )
    .await
    .map(|_| ())
}

/// A step result or a deadline check (saga queue).
pub async fn on_saga_message(
    deps: &Deps<'_>,
    bytes: &[u8],
    now: DateTime<Utc>,
) -> Result<(), EmergencyError> {
    let message = decode::<SagaMessage>(bytes)?;
    advance(
        deps,
        &message.data.emergency_id,
        &message.data.input,
        &message.event_id,
        &message.correlation_id,
        now,
    )
    .await
    .map(|_| ())
}

/// An emergency's stored events and the saga events they hold.
pub async fn load(
    deps: &Deps<'_>,
    emergency_id: &str,
) -> Result<(Vec<StoredEvent>, Vec<SagaEvent>), EmergencyError> {
    let stored = deps
        .reader
        .read_stream(&emergency_stream(emergency_id))
        .await?;
    let events = stored
        .iter()
        .map(|e| {
            serde_json::from_value::<SagaEvent>(e.data.clone()).map_err(|source| {
                EmergencyError::Unreadable {
                    what: format!("event {} of emergency {emergency_id}", e.event_id),
                    expected: "a saga event",
                    source,
                }
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((stored, events))
}

/// Applies one input (identified by `input_id`, the id of the message that carries it) to
/// a saga. Returns the state after it.
pub async fn advance(
    deps: &Deps<'_>,
    emergency_id: &str,
    input: &SagaInput,
    input_id: &str,
    correlation_id: &str,
    now: DateTime<Utc>,
) -> Result<SagaState, EmergencyError> {
    let span = tracing::info_span!("saga", %emergency_id, %correlation_id);
    // Instrumented (not entered): the span must follow the future across awaits.
    async {
    let (stored, events) = load(deps, emergency_id).await?;
    let mut state = SagaState::fold(&events);
    let Some(event) = decide(&state, input) else {
        // A repeat of the input that made the latest transition: the earlier attempt may
        // have stopped before sending the next command, so send it again (steps are
        // idempotent). Any other input that changes nothing is dropped.
        if stored.last().is_some_and(|e| e.causation_id == input_id) {
            tracing::info!(status = ?state.status, "repeated input; re-sending the outstanding command");
            let caused_by = stored
                .last()
                .map(|e| e.event_id.clone())
                .unwrap_or_default();
            issue(deps, &state, correlation_id, &caused_by, now).await?;
        } else {
            tracing::info!(status = ?state.status, "input changes nothing; dropped");
        }
        return Ok(state);
    };
    let record = StoredEvent {
        event_id: deterministic_id(&["saga", emergency_id, input_id]),
        event_type: event.event_type().to_string(),
        schema_version: SagaEvent::VERSION,
        timestamp: now,
        source: SOURCE.to_string(),
        correlation_id: correlation_id.to_string(),
        causation_id: input_id.to_string(),
        data: serde_json::to_value(&event)?,
    };
    // Conflict: another input advanced the saga first; fail so the message is retried on
    // the new state.
    let appended = deps
        .events
        .append(&emergency_stream(emergency_id), state.version, &record)
        .await?;
    state.apply(&event);
    tracing::info!(event_type = %record.event_type, status = ?state.status, ?appended, "saga advanced");
    issue(deps, &state, correlation_id, &record.event_id, now).await?;
    Ok(state)
    }
    .instrument(span)
    .await
}

/// Sends the command the saga waits on and, for a forward step, its deadline check.
async fn issue(
    deps: &Deps<'_>,
    state: &SagaState,
    correlation_id: &str,
    caused_by: &str,
    now: DateTime<Utc>,
) -> Result<(), EmergencyError> {
    let Some(command) = outstanding(state) else {
        return Ok(());
    };
    let lineage = Lineage {
        correlation_id: correlation_id.to_string(),
        causation_id: caused_by.to_string(),
    };
    let version = state.version.to_string();
    let envelope = Envelope::new(
        deterministic_id(&["command", &command.command_id(), &version]),
        SOURCE,
        lineage.clone(),
        now,
        command.clone(),
    );
    let body = serde_json::to_string(&envelope)?;
    deps.bus
        .send(Channel::Steps, &envelope.event_type, &body, 0)
        .await?;
    if state.current_step() == Some(command.step) {
        let step_version = state.step_version.to_string();
        let deadline = Envelope::new(
            deterministic_id(&[
                "deadline",
                &command.emergency_id,
                command.step.as_str(),
                &step_version,
            ]),
            SOURCE,
            lineage,
            now,
            SagaMessage {
                emergency_id: command.emergency_id.clone(),
                input: SagaInput::Deadline {
                    step: command.step,
                    step_version: state.step_version,
                },
            },
        );
        let body = serde_json::to_string(&deadline)?;
        deps.bus
            .send(
                Channel::Saga,
                &deadline.event_type,
                &body,
                deps.config.step_deadline_seconds,
            )
            .await?;
    }
    tracing::info!(step = command.step.as_str(), "step command sent");
    Ok(())
}
