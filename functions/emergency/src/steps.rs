//! The step workers: each command does one side effect, idempotently, and replies to the
//! coordinator with the event that reports its outcome.

use application::ports::{Channel, DispatchOutcome, LedgerClaim};
use chrono::{DateTime, Utc};
use domain::envelope::{Envelope, decode};
use domain::events::{NotificationKind, NotificationRequested, Severity};
use domain::ids::deterministic_id;
use domain::saga::{SagaEvent, SagaInput, SagaMessage, Step, StepCommand};

use tracing::Instrument;

use crate::{Deps, EmergencyError, SOURCE};

pub async fn on_command(
    deps: &Deps<'_>,
    bytes: &[u8],
    now: DateTime<Utc>,
) -> Result<(), EmergencyError> {
    let command = decode::<StepCommand>(bytes)?;
    let c = &command.data;
    let span = tracing::info_span!("step", emergency_id = %c.emergency_id, step = c.step.as_str(), correlation_id = %command.correlation_id);
    // Instrumented (not entered): the span must follow the future across awaits.
    async {
        let event = match c.step {
            Step::ReserveWorker => reserve_worker(deps, c).await?,
            Step::DispatchAmbulance => dispatch_ambulance(deps, c, now).await?,
            Step::NotifyFamily => notify_family(deps, &command, now).await?,
            Step::CancelAmbulance => {
                let request_id = required(&c.request_id, "requestId")?;
                deps.ambulance.cancel(request_id).await?;
                SagaEvent::AmbulanceCancelled {
                    request_id: request_id.to_string(),
                }
            }
            Step::ReleaseWorker => {
                let worker_id = required(&c.worker_id, "workerId")?;
                deps.workers.release(worker_id, &c.emergency_id).await?;
                SagaEvent::WorkerReleased {
                    worker_id: worker_id.to_string(),
                }
            }
            Step::EscalateToHospital => escalate_to_hospital(deps, &command, now).await?,
        };
        tracing::info!(result = event.event_type(), "step done");
        let reply = Envelope::new(
            deterministic_id(&["result", &command.event_id, event.event_type()]),
            SOURCE,
            command.child_lineage(),
            now,
            SagaMessage {
                emergency_id: c.emergency_id.clone(),
                input: SagaInput::StepResult { event },
            },
        );
        let body = serde_json::to_string(&reply)?;
        deps.bus
            .send(Channel::Saga, &reply.event_type, &body, 0)
            .await?;
        Ok(())
    }
    .instrument(span)
    .await
}

fn required<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, EmergencyError> {
    value
        .as_deref()
        .ok_or_else(|| EmergencyError::Invalid(format!("step command without {name}")))
}

/// Candidates: the patient's assigned worker, then the village roster. A worker this
/// emergency already holds (an earlier attempt) is kept, so a repeat never reserves a second
/// one. The reservation itself is a conditional write: a worker is never held by two
/// emergencies.
async fn reserve_worker(deps: &Deps<'_>, c: &StepCommand) -> Result<SagaEvent, EmergencyError> {
    let mut candidates = Vec::new();
    if let Some(entry) = deps.directory.get(&c.patient_id).await? {
        candidates.push(entry.worker_id);
    }
    if let Some(roster) = deps.contacts.roster(&c.village).await? {
        for id in roster.worker_ids {
            if !candidates.contains(&id) {
                candidates.push(id);
            }
        }
    }
    for id in &candidates {
        let worker = deps.workers.get(id).await?;
        if worker.is_some_and(|w| w.reserved_by.as_deref() == Some(c.emergency_id.as_str())) {
            return Ok(SagaEvent::WorkerAssigned {
                worker_id: id.clone(),
            });
        }
    }
    for id in &candidates {
        if deps.workers.reserve(id, &c.emergency_id).await? {
            return Ok(SagaEvent::WorkerAssigned {
                worker_id: id.clone(),
            });
        }
    }
    Ok(SagaEvent::WorkerUnavailable {
        reason: format!(
            "none of {} health worker(s) of {} is free",
            candidates.len(),
            c.village
        ),
    })
}

/// Claims the request in the ledger so the provider is called once per request id; a
/// repeat replies with the recorded outcome.
async fn dispatch_ambulance(
    deps: &Deps<'_>,
    c: &StepCommand,
    now: DateTime<Utc>,
) -> Result<SagaEvent, EmergencyError> {
    let request_id = required(&c.request_id, "requestId")?;
    let key = format!("dispatch#{request_id}");
    let outcome = match deps.ledger.claim(&key, now).await? {
        LedgerClaim::Done(value) => {
            serde_json::from_value::<DispatchOutcome>(value).map_err(|source| {
                EmergencyError::Unreadable {
                    what: format!("ledger outcome of {key}"),
                    expected: "a dispatch outcome",
                    source,
                }
            })?
        }
        LedgerClaim::InProgress => {
            return Err(EmergencyError::Busy(format!(
                "{key} is in progress in another attempt; retry later"
            )));
        }
        LedgerClaim::New => {
            let outcome = deps
                .ambulance
                .dispatch(request_id, &c.patient_id, &c.village)
                .await?;
            let value = serde_json::to_value(&outcome)?;
            deps.ledger.complete(&key, &value).await?;
            outcome
        }
    };
    Ok(match outcome {
        DispatchOutcome::Dispatched => SagaEvent::AmbulanceDispatched {
            request_id: request_id.to_string(),
        },
        DispatchOutcome::Failed { reason } => SagaEvent::AmbulanceDispatchFailed {
            request_id: request_id.to_string(),
            reason,
        },
    })
}

/// Hands a notification to the notify function (idempotent by notification id there).
async fn request_notification(
    deps: &Deps<'_>,
    command: &Envelope<StepCommand>,
    recipient_id: String,
    recipient_phone: String,
    message: String,
    now: DateTime<Utc>,
) -> Result<String, EmergencyError> {
    let c = &command.data;
    let notification_id = deterministic_id(&["notification", &c.emergency_id, &recipient_id]);
    let request = Envelope::new(
        deterministic_id(&["NotificationRequested", &notification_id]),
        SOURCE,
        command.child_lineage(),
        now,
        NotificationRequested {
            notification_id: notification_id.clone(),
            // The outbox's alertId column holds the emergency id for saga notifications.
            alert_id: c.emergency_id.clone(),
            patient_id: c.patient_id.clone(),
            severity: Severity::Critical,
            recipient_id,
            recipient_phone,
            message,
            kind: NotificationKind::Alert,
        },
    );
    deps.notifications.send(&request).await?;
    Ok(notification_id)
}

async fn notify_family(
    deps: &Deps<'_>,
    command: &Envelope<StepCommand>,
    now: DateTime<Utc>,
) -> Result<SagaEvent, EmergencyError> {
    let c = &command.data;
    let Some(family) = deps.contacts.family(&c.patient_id).await? else {
        tracing::warn!(patient_id = %c.patient_id, "no family contact on file; nobody to notify");
        return Ok(SagaEvent::FamilyNotified {
            notification_id: None,
        });
    };
    let message = format!(
        "[EMERGENCY] {}: help is on the way for {} ({}). Ref {}.",
        family.name,
        c.patient_id,
        c.reason,
        c.emergency_id.get(..8).unwrap_or(&c.emergency_id)
    );
    let notification_id = request_notification(
        deps,
        command,
        format!("family:{}", c.patient_id),
        family.phone,
        message,
        now,
    )
    .await?;
    Ok(SagaEvent::FamilyNotified {
        notification_id: Some(notification_id),
    })
}

async fn escalate_to_hospital(
    deps: &Deps<'_>,
    command: &Envelope<StepCommand>,
    now: DateTime<Utc>,
) -> Result<SagaEvent, EmergencyError> {
    let c = &command.data;
    let message = format!(
        "[EMERGENCY ESCALATION] patient {} in {}: {}. Local dispatch failed; please take over. Ref {}.",
        c.patient_id,
        c.village,
        c.reason,
        c.emergency_id.get(..8).unwrap_or(&c.emergency_id)
    );
    let notification_id = request_notification(
        deps,
        command,
        "district-hospital".to_string(),
        deps.config.hospital_phone.clone(),
        message,
        now,
    )
    .await?;
    Ok(SagaEvent::EscalatedToHospital { notification_id })
}
