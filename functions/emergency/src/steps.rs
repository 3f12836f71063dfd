//! The step workers: each command does one side effect, idempotently, and replies to the
//! coordinator with the event that reports its outcome.
//!
//! A reservation is the one effect a late duplicate command could leak (a worker held by a
//! saga that has moved on), so the reserve step checks the saga first and again after it
//! reserved: if the saga no longer waits on that step, it reserves nobody, or releases the
//! worker it just took, and replies nothing.

use application::ack_codes::assign_code;
use application::ports::{Channel, DispatchOutcome, LedgerClaim};
use chrono::{DateTime, Utc};
use domain::ack::AckTarget;
use domain::envelope::{Envelope, decode};
use domain::events::{NotificationKind, NotificationRequested, Severity};
use domain::ids::deterministic_id;
use domain::messages::catalogue;
use domain::messages::texts::{emergency_hospital_text, emergency_worker_text, family_text};
use domain::saga::{SagaEvent, SagaInput, SagaMessage, SagaState, Status, Step, StepCommand};
use lambda_kit::fault::crash_point;

use tracing::Instrument;

use crate::{Deps, EmergencyError, HOSPITAL_RECIPIENT, SOURCE, coordinator};

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
            Step::ReserveWorker => match reserve_worker(deps, c).await? {
                Some(event) => event,
                None => return Ok(()),
            },
            Step::DispatchAmbulance => dispatch_ambulance(deps, c, now).await?,
            Step::NotifyWorker => notify_worker(deps, &command, now).await?,
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
        crash_point("steps.before_reply");
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

/// Whether the saga still waits on the reservation this command is for.
fn waits_on(state: &SagaState, c: &StepCommand) -> bool {
    state.status == Status::ReservingWorker && state.step_version == c.step_version
}

/// Candidates: the patient's assigned worker, then the village roster. A worker this
/// emergency already holds (an earlier attempt) is kept, so a repeat never reserves a second
/// one. The reservation itself is a conditional write: a worker is never held by two
/// emergencies. `None`: the saga has moved on; nothing reserved, nothing to reply.
async fn reserve_worker(
    deps: &Deps<'_>,
    c: &StepCommand,
) -> Result<Option<SagaEvent>, EmergencyError> {
    let (_, events) = coordinator::load(deps, &c.emergency_id).await?;
    if !waits_on(&SagaState::fold(&events), c) {
        tracing::info!("the saga no longer waits on this reservation; nobody reserved");
        return Ok(None);
    }
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
    let mut held = None;
    for id in &candidates {
        let worker = deps.workers.get(id).await?;
        if worker.is_some_and(|w| w.reserved_by.as_deref() == Some(c.emergency_id.as_str())) {
            held = Some(id.clone());
            break;
        }
    }
    if held.is_none() {
        for id in &candidates {
            if deps.workers.reserve(id, &c.emergency_id).await? {
                held = Some(id.clone());
                break;
            }
        }
    }
    let Some(worker_id) = held else {
        return Ok(Some(SagaEvent::WorkerUnavailable {
            reason: format!(
                "none of {} health worker(s) of {} is free",
                candidates.len(),
                c.village
            ),
        }));
    };
    crash_point("steps.after_reserve");
    // The saga may have timed the step out while we reserved: then nobody will release this
    // worker but us.
    let (_, events) = coordinator::load(deps, &c.emergency_id).await?;
    let state = SagaState::fold(&events);
    if !waits_on(&state, c) && state.worker_id.as_deref() != Some(worker_id.as_str()) {
        deps.workers.release(&worker_id, &c.emergency_id).await?;
        tracing::info!(%worker_id, "the saga moved on during the reservation; worker released");
        return Ok(None);
    }
    Ok(Some(SagaEvent::WorkerAssigned { worker_id }))
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
            crash_point("steps.after_claim");
            // The provider is idempotent by request id (a retry after a crash right after
            // this call dispatches nothing new).
            let outcome = deps
                .ambulance
                .dispatch(request_id, &c.patient_id, &c.village)
                .await?;
            crash_point("steps.after_dispatch");
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
    // One notification per (emergency, recipient, stage): each family stage is its own.
    let stage = match (c.step, c.stage) {
        (Step::NotifyFamily, Some(stage)) => stage.as_str(),
        _ => c.step.as_str(),
    };
    let notification_id =
        deterministic_id(&["notification", &c.emergency_id, &recipient_id, stage]);
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

/// Tells the assigned worker: patient, village, reason, and how to acknowledge.
async fn notify_worker(
    deps: &Deps<'_>,
    command: &Envelope<StepCommand>,
    now: DateTime<Utc>,
) -> Result<SagaEvent, EmergencyError> {
    let c = &command.data;
    let worker_id = required(&c.worker_id, "workerId")?;
    let worker = deps.workers.get(worker_id).await?.ok_or_else(|| {
        EmergencyError::NotFound(format!("worker {worker_id} is not in the workers table"))
    })?;
    // The patient's name; the id only for a patient nobody registered (nothing else
    // names them).
    let patient = match deps.directory.get(&c.patient_id).await? {
        Some(entry) => entry.patient_name,
        None => c.patient_id.clone(),
    };
    // The code exists before the worker can reply to it (registering it again is a no-op).
    let code = assign_code(deps.ack_codes, &AckTarget::emergency(&c.emergency_id)).await?;
    // In the worker's language (domain::messages).
    let message = emergency_worker_text(
        catalogue(&worker.language),
        &patient,
        &c.village,
        &c.reason,
        &c.emergency_id,
        code.as_str(),
    );
    let notification_id =
        request_notification(deps, command, worker.worker_id, worker.phone, message, now).await?;
    Ok(SagaEvent::WorkerNotified { notification_id })
}

async fn notify_family(
    deps: &Deps<'_>,
    command: &Envelope<StepCommand>,
    now: DateTime<Utc>,
) -> Result<SagaEvent, EmergencyError> {
    let c = &command.data;
    let stage = c.stage.unwrap_or_default();
    let Some(family) = deps.contacts.family(&c.patient_id).await? else {
        tracing::warn!(patient_id = %c.patient_id, "no family contact on file; nobody to notify");
        return Ok(SagaEvent::FamilyNotified {
            notification_id: None,
            stage,
        });
    };
    // In the family's language (domain::messages).
    let message = family_text(
        catalogue(&family.language),
        &family.name,
        stage,
        &c.emergency_id,
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
        stage,
    })
}

async fn escalate_to_hospital(
    deps: &Deps<'_>,
    command: &Envelope<StepCommand>,
    now: DateTime<Utc>,
) -> Result<SagaEvent, EmergencyError> {
    let c = &command.data;
    // In the hospital desk's language (HOSPITAL_LANGUAGE; domain::messages).
    let message = emergency_hospital_text(
        catalogue(&deps.config.hospital_language),
        &c.patient_id,
        &c.village,
        &c.reason,
        &c.emergency_id,
    );
    let notification_id = request_notification(
        deps,
        command,
        HOSPITAL_RECIPIENT.to_string(),
        deps.config.hospital_phone.clone(),
        message,
        now,
    )
    .await?;
    Ok(SagaEvent::EscalatedToHospital { notification_id })
}

#[cfg(test)]
mod message_tests {
    use super::*;

    // Every text in every language: domain::messages (tests.rs). The English one, as
    // workers have read it since before translations:
    #[test]
    fn the_worker_reads_the_patient_village_reason_reference_and_reply() {
        assert_eq!(
            emergency_worker_text(
                catalogue("en"),
                "Amina",
                "Kibera",
                "collapsed at home",
                "0123456789abcdef",
                "4K7Q2M"
            ),
            "[EMERGENCY] Amina, Kibera: collapsed at home. You are assigned; go now. Ref 01234567. Reply ACK 4K7Q2M"
        );
    }
}
