//! The saga coordinator: loads an emergency's stream, lets the pure state machine decide,
//! appends the event with optimistic concurrency and sends the step command it waits on
//! (with a deadline check for forward steps, and the open timeout of an emergency on site).
//!
//! Effect ordering: the fact first (the appended saga event), then its effects (the
//! command, the deadline). An input that finds the latest fact was caused by itself re-sends
//! the effects, since the earlier attempt may have died between the fact and them; commands
//! and deadlines are idempotent downstream.

use application::ports::{Channel, StoredEvent};
use chrono::{DateTime, Utc};
use domain::envelope::{Envelope, Lineage, decode};
use domain::events::{AlertRaised, Severity};
use domain::ids::deterministic_id;
use domain::saga::*;
use lambda_kit::fault::crash_point;

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
        request_hash: None,
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
    if let SagaInput::CloseDue {
        due_at,
        step_version,
    } = &message.data.input
        && *due_at > now
    {
        // SQS delays a message at most 15 minutes: an open timeout comes back until due,
        // unless the emergency has moved on (closed, or an ambulance requested since).
        let (_, events) = load(deps, &message.data.emergency_id).await?;
        let state = SagaState::fold(&events);
        if state.status != Status::OnSite || state.step_version != *step_version {
            tracing::info!(status = ?state.status, "open timeout of an earlier period; dropped");
            return Ok(());
        }
        return delay_again(deps, &message, *due_at, now).await;
    }
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

/// What applying an input did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advanced {
    /// The state after the input.
    pub state: SagaState,
    /// Whether the input recorded an event, or repeated the one that recorded the latest
    /// (so its effects were re-sent); false when it changed nothing.
    pub applied: bool,
}

/// Applies one input (identified by `input_id`, the id of the message that carries it) to
/// a saga.
pub async fn advance(
    deps: &Deps<'_>,
    emergency_id: &str,
    input: &SagaInput,
    input_id: &str,
    correlation_id: &str,
    now: DateTime<Utc>,
) -> Result<Advanced, EmergencyError> {
    let span = tracing::info_span!("saga", %emergency_id, %correlation_id);
    // Instrumented (not entered): the span must follow the future across awaits.
    async {
    let (stored, events) = load(deps, emergency_id).await?;
    let mut state = SagaState::fold(&events);
    let Some(event) = decide(&state, input) else {
        // A repeat of the input that made the latest transition: the earlier attempt may
        // have stopped before sending the next command, so send it again (steps are
        // idempotent). Any other input that changes nothing is dropped. Acknowledgements
        // have no effects: the latest fact is the one before them.
        let latest = stored
            .iter()
            .rev()
            .find(|e| e.event_type != "EmergencyAcknowledged");
        if let Some(latest) = latest.filter(|e| e.causation_id == input_id) {
            tracing::info!(status = ?state.status, "repeated input; re-sending the outstanding command");
            let caused_by = latest.event_id.clone();
            issue(deps, &state, correlation_id, &caused_by, now).await?;
            return Ok(Advanced { state, applied: true });
        }
        tracing::info!(status = ?state.status, "input changes nothing; dropped");
        return Ok(Advanced { state, applied: false });
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
    crash_point("coordinator.after_append");
    state.apply(&event);
    tracing::info!(event_type = %record.event_type, status = ?state.status, ?appended, "saga advanced");
    if !matches!(event, SagaEvent::EmergencyAcknowledged { .. }) {
        // An acknowledgement changes nothing the steps wait on: nothing to send.
        issue(deps, &state, correlation_id, &record.event_id, now).await?;
    }
    Ok(Advanced { state, applied: true })
    }
    .instrument(span)
    .await
}

/// Sends the command the saga waits on and, for a forward step, its deadline check; for an
/// emergency on site, its open timeout.
async fn issue(
    deps: &Deps<'_>,
    state: &SagaState,
    correlation_id: &str,
    caused_by: &str,
    now: DateTime<Utc>,
) -> Result<(), EmergencyError> {
    let lineage = Lineage {
        correlation_id: correlation_id.to_string(),
        causation_id: caused_by.to_string(),
    };
    if state.status == Status::OnSite {
        return open_timeout(deps, state, lineage, now).await;
    }
    let Some(command) = outstanding(state) else {
        return Ok(());
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
    crash_point("coordinator.after_command");
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

/// The open timeout of an emergency on site (sent when it goes on site; a later change of
/// the saga makes it stale).
async fn open_timeout(
    deps: &Deps<'_>,
    state: &SagaState,
    lineage: Lineage,
    now: DateTime<Utc>,
) -> Result<(), EmergencyError> {
    let Some(started) = &state.started else {
        return Ok(());
    };
    let timeout = deps.config.open_timeout_seconds;
    let due_at = now + chrono::Duration::seconds(i64::from(timeout));
    let message = Envelope::new(
        deterministic_id(&[
            "close-due",
            &started.emergency_id,
            &state.step_version.to_string(),
        ]),
        SOURCE,
        lineage,
        now,
        SagaMessage {
            emergency_id: started.emergency_id.clone(),
            input: SagaInput::CloseDue {
                step_version: state.step_version,
                due_at,
            },
        },
    );
    let body = serde_json::to_string(&message)?;
    deps.bus
        .send(
            Channel::Timers,
            &message.event_type,
            &body,
            timeout.min(MAX_SQS_DELAY_SECONDS),
        )
        .await?;
    tracing::info!(%due_at, "on site; open timeout set");
    Ok(())
}

/// SQS's longest message delay.
pub const MAX_SQS_DELAY_SECONDS: u32 = 900;

/// Sends an early open-timeout message back to the queue until it is due.
async fn delay_again(
    deps: &Deps<'_>,
    message: &Envelope<SagaMessage>,
    due_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), EmergencyError> {
    let remaining = (due_at - now).num_seconds().max(1);
    let delay = u32::try_from(remaining)
        .unwrap_or(MAX_SQS_DELAY_SECONDS)
        .min(MAX_SQS_DELAY_SECONDS);
    let body = serde_json::to_string(message)?;
    deps.bus
        .send(Channel::Timers, &message.event_type, &body, delay)
        .await?;
    tracing::info!(%due_at, delay, "open timeout not due yet; delayed again");
    Ok(())
}

/// The worker acknowledged an emergency (an SMS reply): recorded once; `input_id` is the
/// id of the message that carried the reply.
pub async fn acknowledge_emergency(
    deps: &Deps<'_>,
    emergency_id: &str,
    worker_id: &str,
    input_id: &str,
    correlation_id: &str,
    now: DateTime<Utc>,
) -> Result<Advanced, EmergencyError> {
    let input = SagaInput::Acknowledge {
        worker_id: worker_id.to_string(),
    };
    advance(deps, emergency_id, &input, input_id, correlation_id, now).await
}
