//! The emergency-dispatch saga: a pure state machine (no AWS types).
//!
//! The saga's history is a list of [`SagaEvent`]s in its own event-store stream
//! (`emergency-{emergencyId}`). [`SagaState::fold`] rebuilds the state from it, [`decide`]
//! says which event (if any) an input records, and [`outstanding`] says which step command
//! the state waits on. The coordinator (functions/emergency) only loads, decides, appends
//! with optimistic concurrency and sends what [`outstanding`] returns.
//!
//! Forward path: reserve a health worker -> (if no worker, or the alert type requires it)
//! dispatch an ambulance -> notify the family -> completed.
//! Compensation (after a failed or timed-out step): cancel the ambulance request, release the
//! worker (reverse order of acquisition), then escalate to the district hospital. A result
//! that arrives after a timeout (a worker reserved, an ambulance dispatched late) is recorded
//! and compensated too.

use serde::{Deserialize, Serialize};

use crate::envelope::EventData;
use crate::ids::deterministic_id;

/// Stream id of an emergency's saga events.
pub fn emergency_stream(emergency_id: &str) -> String {
    format!("emergency-{emergency_id}")
}

/// The emergency id of the saga a critical alert starts (one saga per alert).
pub fn emergency_id_for_alert(alert_id: &str) -> String {
    deterministic_id(&["emergency", alert_id])
}

/// The ambulance request id of an emergency (known before the request is made, so a timed-out
/// request can be cancelled).
pub fn ambulance_request_id(emergency_id: &str) -> String {
    deterministic_id(&["ambulance", emergency_id])
}

/// Alert types whose emergencies always get an ambulance, even with a worker assigned.
pub const AMBULANCE_ALERT_TYPES: [&str; 1] = ["hypoxemia"];

/// A step of the saga: forward steps and their compensations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Step {
    ReserveWorker,
    DispatchAmbulance,
    NotifyFamily,
    CancelAmbulance,
    ReleaseWorker,
    EscalateToHospital,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::ReserveWorker => "reserveWorker",
            Step::DispatchAmbulance => "dispatchAmbulance",
            Step::NotifyFamily => "notifyFamily",
            Step::CancelAmbulance => "cancelAmbulance",
            Step::ReleaseWorker => "releaseWorker",
            Step::EscalateToHospital => "escalateToHospital",
        }
    }
}

/// What started an emergency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmergencyStarted {
    pub emergency_id: String,
    pub patient_id: String,
    pub village: String,
    pub reason: String,
    /// Who raised it: a health worker id, or `alert:{alertId}`.
    pub reporter: String,
    pub ambulance_required: bool,
}

/// The events of a saga stream. `eventType` in the store is [`SagaEvent::event_type`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all_fields = "camelCase")]
pub enum SagaEvent {
    EmergencyStarted(EmergencyStarted),
    WorkerAssigned {
        worker_id: String,
    },
    WorkerUnavailable {
        reason: String,
    },
    AmbulanceDispatched {
        request_id: String,
    },
    AmbulanceDispatchFailed {
        request_id: String,
        reason: String,
    },
    /// `notification_id` is None when the patient has no family contact on file.
    FamilyNotified {
        notification_id: Option<String>,
    },
    StepTimedOut {
        step: Step,
    },
    AmbulanceCancelled {
        request_id: String,
    },
    WorkerReleased {
        worker_id: String,
    },
    EscalatedToHospital {
        notification_id: String,
    },
}

impl SagaEvent {
    /// The schema version of every saga event (`schemaVersion` of the stored event): each
    /// variant is published as `events/contracts/{event_type}.v{VERSION}.schema.json`.
    pub const VERSION: u32 = 1;

    /// The stored `eventType`: the variant's name, as the `type` tag of its data says.
    pub fn event_type(&self) -> &'static str {
        match self {
            SagaEvent::EmergencyStarted(_) => "EmergencyStarted",
            SagaEvent::WorkerAssigned { .. } => "WorkerAssigned",
            SagaEvent::WorkerUnavailable { .. } => "WorkerUnavailable",
            SagaEvent::AmbulanceDispatched { .. } => "AmbulanceDispatched",
            SagaEvent::AmbulanceDispatchFailed { .. } => "AmbulanceDispatchFailed",
            SagaEvent::FamilyNotified { .. } => "FamilyNotified",
            SagaEvent::StepTimedOut { .. } => "StepTimedOut",
            SagaEvent::AmbulanceCancelled { .. } => "AmbulanceCancelled",
            SagaEvent::WorkerReleased { .. } => "WorkerReleased",
            SagaEvent::EscalatedToHospital { .. } => "EscalatedToHospital",
        }
    }
}

/// Where a saga is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Status {
    NotStarted,
    ReservingWorker,
    DispatchingAmbulance,
    NotifyingFamily,
    Completed,
    Compensating,
    /// Terminal after compensation: every acquired resource released, the district hospital
    /// told.
    Escalated,
}

/// The state of one saga, folded from its events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SagaState {
    pub status: Status,
    /// Events applied so far (= the stream version).
    pub version: u64,
    /// The version at which the current forward step began (deadline checks carry it).
    pub step_version: u64,
    pub started: Option<EmergencyStarted>,
    pub worker_id: Option<String>,
    pub worker_released: bool,
    /// An ambulance was requested (dispatched, or its request timed out and may still land).
    pub ambulance_requested: bool,
    pub ambulance_dispatched: bool,
    pub ambulance_cancelled: bool,
    pub escalated: bool,
    pub failure: Option<String>,
}

impl Default for SagaState {
    fn default() -> Self {
        SagaState {
            status: Status::NotStarted,
            version: 0,
            step_version: 0,
            started: None,
            worker_id: None,
            worker_released: false,
            ambulance_requested: false,
            ambulance_dispatched: false,
            ambulance_cancelled: false,
            escalated: false,
            failure: None,
        }
    }
}

/// An input to the saga: a step's result, a deadline check, or the start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all_fields = "camelCase")]
pub enum SagaInput {
    Start(EmergencyStarted),
    /// A step reports its outcome (one of the step events).
    StepResult {
        event: SagaEvent,
    },
    /// The deadline of `step`, begun at saga version `step_version`, has passed.
    Deadline {
        step: Step,
        step_version: u64,
    },
}

/// A command for the step workers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, EventData)]
#[serde(rename_all = "camelCase")]
pub struct StepCommand {
    pub emergency_id: String,
    pub step: Step,
    pub patient_id: String,
    pub village: String,
    pub reason: String,
    /// ReleaseWorker: the worker to release.
    pub worker_id: Option<String>,
    /// DispatchAmbulance / CancelAmbulance: the request id.
    pub request_id: Option<String>,
}

/// A message for the coordinator (saga queue): one input of one saga.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, EventData)]
#[event_data(event_type = "SagaInput")]
#[serde(rename_all = "camelCase")]
pub struct SagaMessage {
    pub emergency_id: String,
    pub input: SagaInput,
}

impl StepCommand {
    /// Deterministic id: one command per (emergency, step).
    pub fn command_id(&self) -> String {
        deterministic_id(&["step", &self.emergency_id, self.step.as_str()])
    }
}

impl SagaState {
    pub fn fold<'a>(events: impl IntoIterator<Item = &'a SagaEvent>) -> SagaState {
        let mut state = SagaState::default();
        for event in events {
            state.apply(event);
        }
        state
    }

    /// The forward step the saga waits on, if any.
    pub fn current_step(&self) -> Option<Step> {
        match self.status {
            Status::ReservingWorker => Some(Step::ReserveWorker),
            Status::DispatchingAmbulance => Some(Step::DispatchAmbulance),
            Status::NotifyingFamily => Some(Step::NotifyFamily),
            _ => None,
        }
    }

    pub fn is_terminal(&self) -> bool {
        matches!(self.status, Status::Completed | Status::Escalated)
    }

    fn begin_step(&mut self, status: Status) {
        self.status = status;
        self.step_version = self.version;
    }

    fn compensate(&mut self, failure: String) {
        self.status = Status::Compensating;
        if self.failure.is_none() {
            self.failure = Some(failure);
        }
    }

    /// Compensation done: every acquired resource released and the hospital told.
    fn settle(&mut self) {
        let ambulance_done = !self.ambulance_requested || self.ambulance_cancelled;
        let worker_done = self.worker_id.is_none() || self.worker_released;
        if self.status == Status::Compensating && ambulance_done && worker_done && self.escalated {
            self.status = Status::Escalated;
        }
    }

    /// Applies an event already accepted by [`decide`] (total: anything else is ignored).
    pub fn apply(&mut self, event: &SagaEvent) {
        self.version += 1;
        match (self.status, event) {
            (Status::NotStarted, SagaEvent::EmergencyStarted(started)) => {
                self.started = Some(started.clone());
                self.begin_step(Status::ReservingWorker);
            }
            (Status::ReservingWorker, SagaEvent::WorkerAssigned { worker_id }) => {
                self.worker_id = Some(worker_id.clone());
                let ambulance = self.started.as_ref().is_some_and(|s| s.ambulance_required);
                if ambulance {
                    self.ambulance_requested = true;
                    self.begin_step(Status::DispatchingAmbulance);
                } else {
                    self.begin_step(Status::NotifyingFamily);
                }
            }
            (Status::ReservingWorker, SagaEvent::WorkerUnavailable { .. }) => {
                self.ambulance_requested = true;
                self.begin_step(Status::DispatchingAmbulance);
            }
            (Status::DispatchingAmbulance, SagaEvent::AmbulanceDispatched { .. }) => {
                self.ambulance_dispatched = true;
                self.begin_step(Status::NotifyingFamily);
            }
            (Status::DispatchingAmbulance, SagaEvent::AmbulanceDispatchFailed { reason, .. }) => {
                // A failed request needs no cancel.
                self.ambulance_requested = false;
                self.compensate(format!("ambulance dispatch failed: {reason}"));
            }
            (Status::NotifyingFamily, SagaEvent::FamilyNotified { .. }) => {
                self.status = Status::Completed;
            }
            (
                Status::ReservingWorker | Status::DispatchingAmbulance | Status::NotifyingFamily,
                SagaEvent::StepTimedOut { step },
            ) => self.compensate(format!("step {} timed out", step.as_str())),
            // Late results after a timeout: record what was acquired, so it is undone.
            (Status::Compensating | Status::Escalated, SagaEvent::WorkerAssigned { worker_id }) => {
                self.worker_id = Some(worker_id.clone());
                self.worker_released = false;
                self.status = Status::Compensating;
            }
            (Status::Compensating | Status::Escalated, SagaEvent::AmbulanceDispatched { .. }) => {
                self.ambulance_requested = true;
                self.ambulance_dispatched = true;
                if !self.ambulance_cancelled {
                    self.status = Status::Compensating;
                }
            }
            (Status::Compensating, SagaEvent::AmbulanceCancelled { .. }) => {
                self.ambulance_cancelled = true;
                self.settle();
            }
            (Status::Compensating, SagaEvent::WorkerReleased { .. }) => {
                self.worker_released = true;
                self.settle();
            }
            (Status::Compensating, SagaEvent::EscalatedToHospital { .. }) => {
                self.escalated = true;
                self.settle();
            }
            _ => {}
        }
    }
}

/// The event `input` records in a saga in `state`, or `None` when it changes nothing (a
/// duplicate, a stale deadline, a result the saga no longer waits for).
pub fn decide(state: &SagaState, input: &SagaInput) -> Option<SagaEvent> {
    match input {
        SagaInput::Start(started) => (state.status == Status::NotStarted)
            .then(|| SagaEvent::EmergencyStarted(started.clone())),
        SagaInput::Deadline { step, step_version } => (state.current_step() == Some(*step)
            && state.step_version == *step_version)
            .then_some(SagaEvent::StepTimedOut { step: *step }),
        SagaInput::StepResult { event } => accepts(state, event).then(|| event.clone()),
    }
}

fn accepts(state: &SagaState, event: &SagaEvent) -> bool {
    use SagaEvent as E;
    use Status as S;
    match (state.status, event) {
        (S::ReservingWorker, E::WorkerAssigned { .. } | E::WorkerUnavailable { .. }) => true,
        (S::DispatchingAmbulance, E::AmbulanceDispatched { .. })
        | (S::DispatchingAmbulance, E::AmbulanceDispatchFailed { .. }) => true,
        (S::NotifyingFamily, E::FamilyNotified { .. }) => true,
        // A worker reserved after the reservation step timed out must be released.
        (S::Compensating | S::Escalated, E::WorkerAssigned { worker_id }) => {
            state.worker_id.as_deref() != Some(worker_id)
        }
        (S::Compensating | S::Escalated, E::AmbulanceDispatched { .. }) => {
            !state.ambulance_dispatched && !state.ambulance_cancelled
        }
        (S::Compensating, E::AmbulanceCancelled { .. }) => {
            state.ambulance_requested && !state.ambulance_cancelled
        }
        (S::Compensating, E::WorkerReleased { worker_id }) => {
            state.worker_id.as_deref() == Some(worker_id) && !state.worker_released
        }
        (S::Compensating, E::EscalatedToHospital { .. }) => !state.escalated,
        _ => false,
    }
}

/// The step command the saga waits on in `state` (none when terminal). Compensations run
/// one at a time in reverse order of acquisition: ambulance, worker, then the hospital.
pub fn outstanding(state: &SagaState) -> Option<StepCommand> {
    let started = state.started.as_ref()?;
    let step = match state.status {
        Status::NotStarted | Status::Completed | Status::Escalated => return None,
        Status::ReservingWorker => Step::ReserveWorker,
        Status::DispatchingAmbulance => Step::DispatchAmbulance,
        Status::NotifyingFamily => Step::NotifyFamily,
        Status::Compensating => {
            if state.ambulance_requested && !state.ambulance_cancelled {
                Step::CancelAmbulance
            } else if state.worker_id.is_some() && !state.worker_released {
                Step::ReleaseWorker
            } else if !state.escalated {
                Step::EscalateToHospital
            } else {
                return None;
            }
        }
    };
    let request_id = matches!(step, Step::DispatchAmbulance | Step::CancelAmbulance)
        .then(|| ambulance_request_id(&started.emergency_id));
    let worker_id = (step == Step::ReleaseWorker)
        .then(|| state.worker_id.clone())
        .flatten();
    Some(StepCommand {
        emergency_id: started.emergency_id.clone(),
        step,
        patient_id: started.patient_id.clone(),
        village: started.village.clone(),
        reason: started.reason.clone(),
        worker_id,
        request_id,
    })
}

#[cfg(test)]
mod tests;
