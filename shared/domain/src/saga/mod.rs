//! The emergency-dispatch saga: a pure state machine (no AWS types).
//!
//! The saga's history is a list of [`SagaEvent`]s in its own event-store stream
//! (`emergency-{emergencyId}`). [`SagaState::fold`] rebuilds the state from it, [`decide`]
//! says which event (if any) an input records, and [`outstanding`] says which step command
//! the state waits on. The coordinator (functions/emergency) only loads, decides, appends
//! with optimistic concurrency and sends what [`outstanding`] returns.
//!
//! Forward path: reserve a health worker -> (if no worker, or the alert type requires it)
//! dispatch an ambulance -> tell the assigned worker (SMS with an ACK code) -> tell the
//! family ("help is on the way") -> **on site**: the emergency stays open while the worker
//! is with the patient. From there the worker may request an ambulance
//! (`POST /emergencies/{id}/ambulance`: dispatch, then the family hears "ambulance on the
//! way"), and closes the emergency (`POST /emergencies/{id}/close`, or the open timeout
//! closes it): the worker is released, the family hears "completed", and the saga is done.
//! Without a worker (ambulance only) nobody is on site: the saga completes once the family
//! was told.
//!
//! Compensation (after a failed or timed-out step): cancel the ambulance request, release the
//! worker (reverse order of acquisition), escalate to the district hospital, then tell the
//! family the hospital has taken over. A result that arrives after a timeout (a worker
//! reserved, an ambulance dispatched late) is recorded and compensated too.
//!
//! The worker may acknowledge the emergency at any time before it ends (an SMS reply
//! "ACK <code>"): recorded once, it changes nothing else.

use serde::{Deserialize, Serialize};

use crate::ids::deterministic_id;

mod types;
pub use types::*;

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

/// The state of one saga, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SagaState {
    pub status: Status,
    /// Events applied so far (= the stream version).
    pub version: u64,
    /// The version at which the current forward step (or the open period) began: deadline
    /// checks and step commands carry it.
    pub step_version: u64,
    pub started: Option<EmergencyStarted>,
    pub worker_id: Option<String>,
    pub worker_released: bool,
    pub worker_notified: bool,
    pub acknowledged_by: Option<String>,
    /// An ambulance was requested (dispatched, or its request timed out and may still land).
    pub ambulance_requested: bool,
    /// The ambulance was asked for by the worker on site.
    pub ambulance_requested_on_site: bool,
    pub ambulance_dispatched: bool,
    pub ambulance_cancelled: bool,
    pub escalated: bool,
    /// The family message the saga waits on (the stage of the outstanding NotifyFamily).
    pub family_stage: Option<FamilyStage>,
    /// Family messages recorded, in order.
    pub family_told: Vec<FamilyStage>,
    pub closed: Option<CloseReason>,
    pub failure: Option<String>,
}

impl SagaState {
    pub fn fold<'a>(events: impl IntoIterator<Item = &'a SagaEvent>) -> SagaState {
        let mut state = SagaState::default();
        for event in events {
            state.apply(event);
        }
        state
    }

    /// The forward step the saga waits on, if any (forward steps have deadlines).
    pub fn current_step(&self) -> Option<Step> {
        match self.status {
            Status::ReservingWorker => Some(Step::ReserveWorker),
            Status::DispatchingAmbulance => Some(Step::DispatchAmbulance),
            Status::NotifyingWorker => Some(Step::NotifyWorker),
            Status::NotifyingFamily => Some(Step::NotifyFamily),
            _ => None,
        }
    }

    pub fn is_terminal(&self) -> bool {
        matches!(self.status, Status::Completed | Status::Escalated)
    }

    /// Whether the worker this saga reserved is still held.
    pub fn holds_worker(&self) -> bool {
        self.worker_id.is_some() && !self.worker_released
    }

    fn begin_step(&mut self, status: Status) {
        self.status = status;
        self.step_version = self.version;
    }

    fn tell_family(&mut self, stage: FamilyStage) {
        self.family_stage = Some(stage);
        self.begin_step(Status::NotifyingFamily);
    }

    /// After the ambulance (if any) is on its way: the worker hears first, then the family.
    fn help_on_the_way(&mut self) {
        if self.worker_id.is_some() && !self.worker_notified {
            self.begin_step(Status::NotifyingWorker);
        } else if self.ambulance_requested_on_site {
            self.tell_family(FamilyStage::Ambulance);
        } else {
            self.tell_family(FamilyStage::Dispatched);
        }
    }

    fn compensate(&mut self, failure: String) {
        self.status = Status::Compensating;
        self.family_stage = None;
        if self.failure.is_none() {
            self.failure = Some(failure);
        }
    }

    /// Compensation done: every acquired resource released, the hospital and the family told.
    fn settle(&mut self) {
        let ambulance_done = !self.ambulance_requested || self.ambulance_cancelled;
        let family_done = self.family_told.contains(&FamilyStage::Hospital);
        if self.status == Status::Compensating
            && ambulance_done
            && !self.holds_worker()
            && self.escalated
            && family_done
        {
            self.status = Status::Escalated;
        }
    }

    /// Closing done: the worker released and the family told.
    fn finish(&mut self) {
        if self.status == Status::Closing
            && !self.holds_worker()
            && self.family_told.contains(&FamilyStage::Completed)
        {
            self.status = Status::Completed;
        }
    }

    /// Applies an event already accepted by [`decide`] (total: anything else is ignored).
    pub fn apply(&mut self, event: &SagaEvent) {
        use SagaEvent as E;
        use Status as S;
        self.version += 1;
        match (self.status, event) {
            (S::NotStarted, E::EmergencyStarted(started)) => {
                self.started = Some(started.clone());
                self.begin_step(S::ReservingWorker);
            }
            (S::ReservingWorker, E::WorkerAssigned { worker_id }) => {
                self.worker_id = Some(worker_id.clone());
                if self.started.as_ref().is_some_and(|s| s.ambulance_required) {
                    self.ambulance_requested = true;
                    self.begin_step(S::DispatchingAmbulance);
                } else {
                    self.help_on_the_way();
                }
            }
            (S::ReservingWorker, E::WorkerUnavailable { .. }) => {
                self.ambulance_requested = true;
                self.begin_step(S::DispatchingAmbulance);
            }
            (S::DispatchingAmbulance, E::AmbulanceDispatched { .. }) => {
                self.ambulance_dispatched = true;
                self.help_on_the_way();
            }
            (S::DispatchingAmbulance, E::AmbulanceDispatchFailed { reason, .. }) => {
                // A failed request needs no cancel.
                self.ambulance_requested = false;
                self.compensate(format!("ambulance dispatch failed: {reason}"));
            }
            (S::NotifyingWorker, E::WorkerNotified { .. }) => {
                self.worker_notified = true;
                self.help_on_the_way();
            }
            (S::NotifyingFamily, E::FamilyNotified { stage, .. }) => {
                self.family_told.push(*stage);
                self.family_stage = None;
                if self.worker_id.is_some() {
                    self.begin_step(S::OnSite);
                } else {
                    // Nobody on site to close it: the ambulance crew takes over.
                    self.status = S::Completed;
                }
            }
            (S::OnSite, E::AmbulanceRequested { .. }) => {
                self.ambulance_requested = true;
                self.ambulance_requested_on_site = true;
                self.begin_step(S::DispatchingAmbulance);
            }
            (S::OnSite, E::EmergencyClosed { reason, .. }) => {
                self.closed = Some(*reason);
                self.status = S::Closing;
                self.family_stage = Some(FamilyStage::Completed);
            }
            (S::Closing, E::WorkerReleased { .. }) => {
                self.worker_released = true;
                self.finish();
            }
            (S::Closing, E::FamilyNotified { stage, .. }) => {
                self.family_told.push(*stage);
                self.family_stage = None;
                self.finish();
            }
            (
                S::ReservingWorker
                | S::DispatchingAmbulance
                | S::NotifyingWorker
                | S::NotifyingFamily,
                E::StepTimedOut { step },
            ) => self.compensate(format!("step {} timed out", step.as_str())),
            (_, E::EmergencyAcknowledged { worker_id }) => {
                self.acknowledged_by = Some(worker_id.clone());
            }
            // Late results after a timeout: record what was acquired, so it is undone.
            (S::Compensating | S::Escalated, E::WorkerAssigned { worker_id }) => {
                self.worker_id = Some(worker_id.clone());
                self.worker_released = false;
                self.status = S::Compensating;
            }
            (S::Compensating | S::Escalated, E::AmbulanceDispatched { .. }) => {
                self.ambulance_requested = true;
                self.ambulance_dispatched = true;
                if !self.ambulance_cancelled {
                    self.status = S::Compensating;
                }
            }
            (S::Compensating, E::AmbulanceCancelled { .. }) => {
                self.ambulance_cancelled = true;
                self.settle();
            }
            (S::Compensating, E::WorkerReleased { .. }) => {
                self.worker_released = true;
                self.settle();
            }
            (S::Compensating, E::EscalatedToHospital { .. }) => {
                self.escalated = true;
                self.family_stage = Some(FamilyStage::Hospital);
                self.settle();
            }
            (S::Compensating, E::FamilyNotified { stage, .. }) => {
                self.family_told.push(*stage);
                self.family_stage = None;
                self.settle();
            }
            _ => {}
        }
    }
}

/// The event `input` records in a saga in `state`, or `None` when it changes nothing (a
/// duplicate, a stale deadline, a result the saga no longer waits for, a request the saga
/// cannot take in its status).
pub fn decide(state: &SagaState, input: &SagaInput) -> Option<SagaEvent> {
    match input {
        SagaInput::Start(started) => (state.status == Status::NotStarted)
            .then(|| SagaEvent::EmergencyStarted(started.clone())),
        SagaInput::Deadline { step, step_version } => (state.current_step() == Some(*step)
            && state.step_version == *step_version)
            .then_some(SagaEvent::StepTimedOut { step: *step }),
        SagaInput::CloseDue { step_version, .. } => (state.status == Status::OnSite
            && state.step_version == *step_version)
            .then(|| SagaEvent::EmergencyClosed {
                closed_by: "timeout".to_string(),
                reason: CloseReason::TimedOut,
            }),
        SagaInput::Close { closed_by } => {
            (state.status == Status::OnSite).then(|| SagaEvent::EmergencyClosed {
                closed_by: closed_by.clone(),
                reason: CloseReason::Closed,
            })
        }
        SagaInput::RequestAmbulance { requested_by } => (state.status == Status::OnSite
            && !state.ambulance_requested
            && !state.ambulance_dispatched)
            .then(|| SagaEvent::AmbulanceRequested {
                requested_by: requested_by.clone(),
            }),
        SagaInput::Acknowledge { worker_id } => {
            (state.started.is_some() && !state.is_terminal() && state.acknowledged_by.is_none())
                .then(|| SagaEvent::EmergencyAcknowledged {
                    worker_id: worker_id.clone(),
                })
        }
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
        (S::NotifyingWorker, E::WorkerNotified { .. }) => true,
        (S::NotifyingFamily | S::Closing | S::Compensating, E::FamilyNotified { stage, .. }) => {
            state.family_stage == Some(*stage)
        }
        (S::Closing, E::WorkerReleased { worker_id }) => {
            state.worker_id.as_deref() == Some(worker_id) && !state.worker_released
        }
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

/// The step command the saga waits on in `state` (none when terminal or on site).
/// Compensations run one at a time in reverse order of acquisition: ambulance, worker, then
/// the hospital and the family. Closing releases the worker, then tells the family.
pub fn outstanding(state: &SagaState) -> Option<StepCommand> {
    let started = state.started.as_ref()?;
    let step = match state.status {
        Status::NotStarted | Status::Completed | Status::Escalated | Status::OnSite => {
            return None;
        }
        Status::ReservingWorker => Step::ReserveWorker,
        Status::DispatchingAmbulance => Step::DispatchAmbulance,
        Status::NotifyingWorker => Step::NotifyWorker,
        Status::NotifyingFamily => Step::NotifyFamily,
        Status::Closing => {
            if state.holds_worker() {
                Step::ReleaseWorker
            } else if state.family_stage.is_some() {
                Step::NotifyFamily
            } else {
                return None;
            }
        }
        Status::Compensating => {
            if state.ambulance_requested && !state.ambulance_cancelled {
                Step::CancelAmbulance
            } else if state.holds_worker() {
                Step::ReleaseWorker
            } else if !state.escalated {
                Step::EscalateToHospital
            } else if state.family_stage.is_some() {
                Step::NotifyFamily
            } else {
                return None;
            }
        }
    };
    let request_id = matches!(step, Step::DispatchAmbulance | Step::CancelAmbulance)
        .then(|| ambulance_request_id(&started.emergency_id));
    let worker_id = matches!(step, Step::ReleaseWorker | Step::NotifyWorker)
        .then(|| state.worker_id.clone())
        .flatten();
    let stage = (step == Step::NotifyFamily)
        .then_some(state.family_stage)
        .flatten();
    Some(StepCommand {
        emergency_id: started.emergency_id.clone(),
        step,
        patient_id: started.patient_id.clone(),
        village: started.village.clone(),
        reason: started.reason.clone(),
        worker_id,
        request_id,
        stage,
        step_version: state.step_version,
    })
}

#[cfg(test)]
mod tests;
