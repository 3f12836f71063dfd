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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SagaMessage {
    pub emergency_id: String,
    pub input: SagaInput,
}

impl EventData for SagaMessage {
    const EVENT_TYPE: &'static str = "SagaInput";
    const VERSION: u32 = 1;
}

impl EventData for StepCommand {
    const EVENT_TYPE: &'static str = "StepCommand";
    const VERSION: u32 = 1;
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
mod tests {
    use super::*;

    fn started(ambulance_required: bool) -> EmergencyStarted {
        EmergencyStarted {
            emergency_id: "e-1".into(),
            patient_id: "p-1".into(),
            village: "Bondo".into(),
            reason: "collapsed".into(),
            reporter: "w-1".into(),
            ambulance_required,
        }
    }

    fn assigned() -> SagaEvent {
        SagaEvent::WorkerAssigned {
            worker_id: "w-1".into(),
        }
    }
    fn unavailable() -> SagaEvent {
        SagaEvent::WorkerUnavailable {
            reason: "none free".into(),
        }
    }
    fn dispatched() -> SagaEvent {
        SagaEvent::AmbulanceDispatched {
            request_id: ambulance_request_id("e-1"),
        }
    }
    fn dispatch_failed() -> SagaEvent {
        SagaEvent::AmbulanceDispatchFailed {
            request_id: ambulance_request_id("e-1"),
            reason: "no vehicle".into(),
        }
    }
    fn notified() -> SagaEvent {
        SagaEvent::FamilyNotified {
            notification_id: Some("n-1".into()),
        }
    }
    fn cancelled() -> SagaEvent {
        SagaEvent::AmbulanceCancelled {
            request_id: ambulance_request_id("e-1"),
        }
    }
    fn released() -> SagaEvent {
        SagaEvent::WorkerReleased {
            worker_id: "w-1".into(),
        }
    }
    fn escalated() -> SagaEvent {
        SagaEvent::EscalatedToHospital {
            notification_id: "n-h".into(),
        }
    }
    fn timed_out(step: Step) -> SagaEvent {
        SagaEvent::StepTimedOut { step }
    }

    /// Runs inputs through decide + apply like the coordinator; returns the final state and
    /// the commands issued after each recorded event.
    fn run(inputs: &[SagaInput]) -> (SagaState, Vec<Step>) {
        let mut state = SagaState::default();
        let mut steps = Vec::new();
        for input in inputs {
            if let Some(event) = decide(&state, input) {
                state.apply(&event);
                if let Some(cmd) = outstanding(&state) {
                    steps.push(cmd.step);
                }
            }
        }
        (state, steps)
    }

    fn result(event: SagaEvent) -> SagaInput {
        SagaInput::StepResult { event }
    }

    #[test]
    fn happy_path_assigns_a_worker_and_notifies_the_family() {
        let (state, steps) = run(&[
            SagaInput::Start(started(false)),
            result(assigned()),
            result(notified()),
        ]);
        assert_eq!(state.status, Status::Completed);
        assert_eq!(steps, [Step::ReserveWorker, Step::NotifyFamily]);
        assert_eq!(state.worker_id.as_deref(), Some("w-1"));
        assert_eq!(outstanding(&state), None);
    }

    #[test]
    fn no_worker_dispatches_an_ambulance() {
        let (state, steps) = run(&[
            SagaInput::Start(started(false)),
            result(unavailable()),
            result(dispatched()),
            result(notified()),
        ]);
        assert_eq!(state.status, Status::Completed);
        assert_eq!(
            steps,
            [
                Step::ReserveWorker,
                Step::DispatchAmbulance,
                Step::NotifyFamily
            ]
        );
    }

    #[test]
    fn alert_type_requiring_an_ambulance_dispatches_one_after_the_worker() {
        let (state, steps) = run(&[
            SagaInput::Start(started(true)),
            result(assigned()),
            result(dispatched()),
            result(notified()),
        ]);
        assert_eq!(state.status, Status::Completed);
        assert_eq!(
            steps,
            [
                Step::ReserveWorker,
                Step::DispatchAmbulance,
                Step::NotifyFamily
            ]
        );
    }

    #[test]
    fn failed_dispatch_releases_the_worker_then_escalates() {
        let (state, steps) = run(&[
            SagaInput::Start(started(true)),
            result(assigned()),
            result(dispatch_failed()),
            result(released()),
            result(escalated()),
        ]);
        assert_eq!(state.status, Status::Escalated);
        // A failed request needs no cancel: release, then escalate.
        assert_eq!(
            steps,
            [
                Step::ReserveWorker,
                Step::DispatchAmbulance,
                Step::ReleaseWorker,
                Step::EscalateToHospital
            ]
        );
        assert_eq!(
            state.failure.as_deref(),
            Some("ambulance dispatch failed: no vehicle")
        );
    }

    #[test]
    fn timed_out_dispatch_cancels_the_request_then_releases_then_escalates() {
        let (state, steps) = run(&[
            SagaInput::Start(started(true)),
            result(assigned()),
            SagaInput::Deadline {
                step: Step::DispatchAmbulance,
                step_version: 2,
            },
            result(cancelled()),
            result(released()),
            result(escalated()),
        ]);
        assert_eq!(state.status, Status::Escalated);
        assert_eq!(
            steps,
            [
                Step::ReserveWorker,
                Step::DispatchAmbulance,
                Step::CancelAmbulance,
                Step::ReleaseWorker,
                Step::EscalateToHospital
            ]
        );
    }

    #[test]
    fn a_deadline_of_a_finished_or_earlier_step_is_ignored() {
        let (state, _) = run(&[SagaInput::Start(started(false)), result(assigned())]);
        assert_eq!(state.status, Status::NotifyingFamily);
        for (step, version) in [
            (Step::ReserveWorker, 1),
            (Step::NotifyFamily, 1),
            (Step::NotifyFamily, 3),
        ] {
            let input = SagaInput::Deadline {
                step,
                step_version: version,
            };
            assert_eq!(decide(&state, &input), None, "{step:?} @ {version}");
        }
        let input = SagaInput::Deadline {
            step: Step::NotifyFamily,
            step_version: 2,
        };
        assert_eq!(decide(&state, &input), Some(timed_out(Step::NotifyFamily)));
    }

    #[test]
    fn a_worker_reserved_after_its_timeout_is_released() {
        let (state, steps) = run(&[
            SagaInput::Start(started(false)),
            SagaInput::Deadline {
                step: Step::ReserveWorker,
                step_version: 1,
            },
            result(escalated()),
            result(assigned()),
            result(released()),
        ]);
        assert_eq!(state.status, Status::Escalated);
        assert_eq!(
            steps,
            [
                Step::ReserveWorker,
                Step::EscalateToHospital,
                Step::ReleaseWorker
            ]
        );
        assert!(state.worker_released);
    }

    #[test]
    fn every_input_delivered_twice_records_each_event_once() {
        let inputs = [
            SagaInput::Start(started(true)),
            result(assigned()),
            result(dispatch_failed()),
            result(released()),
            result(escalated()),
        ];
        let doubled: Vec<SagaInput> = inputs.iter().flat_map(|i| [i.clone(), i.clone()]).collect();
        let (once, steps_once) = run(&inputs);
        let (twice, steps_twice) = run(&doubled);
        assert_eq!(once, twice);
        assert_eq!(steps_once, steps_twice);
        assert_eq!(twice.version, 5);
    }

    fn state_in(status: Status) -> SagaState {
        let prefix: Vec<SagaInput> = match status {
            Status::NotStarted => vec![],
            Status::ReservingWorker => vec![SagaInput::Start(started(true))],
            Status::DispatchingAmbulance => {
                vec![SagaInput::Start(started(true)), result(assigned())]
            }
            Status::NotifyingFamily => vec![
                SagaInput::Start(started(true)),
                result(assigned()),
                result(dispatched()),
            ],
            Status::Completed => vec![
                SagaInput::Start(started(true)),
                result(assigned()),
                result(dispatched()),
                result(notified()),
            ],
            // Dispatch timed out with a worker held: cancel, release and escalate pending.
            Status::Compensating => vec![
                SagaInput::Start(started(true)),
                result(assigned()),
                SagaInput::Deadline {
                    step: Step::DispatchAmbulance,
                    step_version: 2,
                },
            ],
            Status::Escalated => vec![
                SagaInput::Start(started(true)),
                result(assigned()),
                SagaInput::Deadline {
                    step: Step::DispatchAmbulance,
                    step_version: 2,
                },
                result(cancelled()),
                result(released()),
                result(escalated()),
            ],
        };
        let (state, _) = run(&prefix);
        assert_eq!(state.status, status);
        state
    }

    /// Every (status, event) pair: is the event accepted, and what status follows.
    #[test]
    fn transition_table_is_exhaustive() {
        use Status as S;
        let statuses = [
            S::NotStarted,
            S::ReservingWorker,
            S::DispatchingAmbulance,
            S::NotifyingFamily,
            S::Completed,
            S::Compensating,
            S::Escalated,
        ];
        let events = [
            SagaEvent::EmergencyStarted(started(true)),
            assigned(),
            unavailable(),
            dispatched(),
            dispatch_failed(),
            notified(),
            timed_out(Step::ReserveWorker),
            cancelled(),
            released(),
            escalated(),
        ];
        // Expected status after the event, or None when the input is ignored.
        let expected = |status: S, event: &SagaEvent| -> Option<S> {
            use SagaEvent as E;
            match (status, event) {
                (S::NotStarted, E::EmergencyStarted(_)) => Some(S::ReservingWorker),
                (S::ReservingWorker, E::WorkerAssigned { .. }) => Some(S::DispatchingAmbulance),
                (S::ReservingWorker, E::WorkerUnavailable { .. }) => Some(S::DispatchingAmbulance),
                (S::ReservingWorker, E::StepTimedOut { .. }) => Some(S::Compensating),
                (S::DispatchingAmbulance, E::AmbulanceDispatched { .. }) => {
                    Some(S::NotifyingFamily)
                }
                (S::DispatchingAmbulance, E::AmbulanceDispatchFailed { .. }) => {
                    Some(S::Compensating)
                }
                (S::DispatchingAmbulance, E::StepTimedOut { .. }) => Some(S::Compensating),
                (S::NotifyingFamily, E::FamilyNotified { .. }) => Some(S::Completed),
                (S::NotifyingFamily, E::StepTimedOut { .. }) => Some(S::Compensating),
                // In the Compensating fixture w-1 is held and the ambulance requested.
                (S::Compensating, E::AmbulanceCancelled { .. }) => Some(S::Compensating),
                (S::Compensating, E::WorkerReleased { .. }) => Some(S::Compensating),
                (S::Compensating, E::EscalatedToHospital { .. }) => Some(S::Compensating),
                // The fixture's dispatch timed out: a late dispatch is recorded (to be
                // cancelled).
                (S::Compensating, E::AmbulanceDispatched { .. }) => Some(S::Compensating),
                // Everything else is ignored, including a repeat of w-1's reservation and, in
                // Escalated (ambulance cancelled), a late dispatch.
                _ => None,
            }
        };
        for status in statuses {
            for event in &events {
                let state = state_in(status);
                // Deadlines reach the machine as Deadline inputs, not step results.
                let input = match event {
                    SagaEvent::EmergencyStarted(s) => SagaInput::Start(s.clone()),
                    SagaEvent::StepTimedOut { .. } => match state.current_step() {
                        Some(step) => SagaInput::Deadline {
                            step,
                            step_version: state.step_version,
                        },
                        None => SagaInput::Deadline {
                            step: Step::ReserveWorker,
                            step_version: state.step_version,
                        },
                    },
                    other => result(other.clone()),
                };
                let decided = decide(&state, &input);
                let mut after = state.clone();
                if let Some(e) = &decided {
                    after.apply(e);
                    assert_eq!(after.version, state.version + 1);
                }
                assert_eq!(
                    decided.as_ref().map(|_| after.status),
                    expected(status, event),
                    "{status:?} + {}",
                    event.event_type()
                );
            }
        }
    }

    #[test]
    fn outstanding_command_per_status() {
        let cases = [
            (Status::NotStarted, None),
            (Status::ReservingWorker, Some(Step::ReserveWorker)),
            (Status::DispatchingAmbulance, Some(Step::DispatchAmbulance)),
            (Status::NotifyingFamily, Some(Step::NotifyFamily)),
            (Status::Completed, None),
            (Status::Compensating, Some(Step::CancelAmbulance)),
            (Status::Escalated, None),
        ];
        for (status, step) in cases {
            let cmd = outstanding(&state_in(status));
            assert_eq!(cmd.as_ref().map(|c| c.step), step, "{status:?}");
        }
        let cmd = outstanding(&state_in(Status::DispatchingAmbulance)).unwrap();
        assert_eq!(cmd.request_id, Some(ambulance_request_id("e-1")));
    }

    #[test]
    fn events_round_trip_through_json() {
        let event = SagaEvent::StepTimedOut {
            step: Step::DispatchAmbulance,
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["type"], "StepTimedOut");
        assert_eq!(json["step"], "dispatchAmbulance");
        assert_eq!(serde_json::from_value::<SagaEvent>(json).unwrap(), event);
        let input = SagaInput::Deadline {
            step: Step::ReserveWorker,
            step_version: 1,
        };
        let json = serde_json::to_value(&input).unwrap();
        assert_eq!(json["kind"], "Deadline");
        assert_eq!(json["stepVersion"], 1);
    }
}
