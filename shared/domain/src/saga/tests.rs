use super::*;

/// Given/when/then for the saga, in the style of cqrs-es' `TestFramework`.
///
/// `given` folds a history as the coordinator loads it; each `when` input goes through
/// [`decide`] and [`SagaState::apply`] as the coordinator runs it, and [`outstanding`] gives
/// the step command sent after each recorded event; the `then_*` methods assert on what was
/// recorded, what was sent and where the saga is.
struct SagaTest {
    /// The state the history left the saga in.
    before: SagaState,
    state: SagaState,
    /// Events recorded by the `when` inputs, in order.
    recorded: Vec<SagaEvent>,
    /// The step of the command sent after each recorded event (none once terminal).
    sent: Vec<Step>,
    /// What the test did so far, for failure messages.
    story: String,
}

fn given(history: impl IntoIterator<Item = SagaEvent>) -> SagaTest {
    let history: Vec<SagaEvent> = history.into_iter().collect();
    let state = SagaState::fold(&history);
    let types: Vec<&str> = history.iter().map(SagaEvent::event_type).collect();
    SagaTest {
        before: state.clone(),
        state,
        recorded: Vec::new(),
        sent: Vec::new(),
        story: format!("given {types:?}"),
    }
}

fn given_no_history() -> SagaTest {
    given([])
}

impl SagaTest {
    /// Asserts where the history left the saga.
    fn in_status(self, status: Status) -> Self {
        assert_eq!(self.before.status, status, "{}", self.story);
        self
    }

    /// When `input` reaches the coordinator.
    fn when(self, input: SagaInput) -> Self {
        self.when_all([input])
    }

    /// When `inputs` reach the coordinator, one after the other.
    fn when_all(mut self, inputs: impl IntoIterator<Item = SagaInput>) -> Self {
        for input in inputs {
            self.story.push_str(&format!(", when {input:?}"));
            if let Some(event) = decide(&self.state, &input) {
                self.state.apply(&event);
                self.recorded.push(event);
                if let Some(command) = outstanding(&self.state) {
                    self.sent.push(command.step);
                }
            }
        }
        self
    }

    /// Then exactly `events` were recorded, in this order.
    fn then_expect(self, events: impl IntoIterator<Item = SagaEvent>) -> Self {
        let expected: Vec<SagaEvent> = events.into_iter().collect();
        assert_eq!(self.recorded, expected, "{}", self.story);
        self
    }

    /// Then the inputs were ignored: nothing recorded, nothing sent, the state as it was.
    fn then_expect_nothing(self) -> Self {
        assert_eq!(self.recorded, [], "{}", self.story);
        assert_eq!(self.sent, [], "{}", self.story);
        assert_eq!(self.state, self.before, "{}", self.story);
        self
    }

    /// Then these commands were sent, one after each recorded event that left one
    /// outstanding.
    fn then_sends(self, steps: impl IntoIterator<Item = Step>) -> Self {
        let expected: Vec<Step> = steps.into_iter().collect();
        assert_eq!(self.sent, expected, "{}", self.story);
        self
    }

    fn then_status(self, status: Status) -> Self {
        assert_eq!(self.state.status, status, "{}", self.story);
        self
    }

    /// Then the saga waits on the command of `step` (`None`: on nothing).
    fn then_outstanding(self, step: Option<Step>) -> Self {
        let command = outstanding(&self.state);
        assert_eq!(command.map(|c| c.step), step, "{}", self.story);
        self
    }

    /// Then `check` holds for the state.
    fn then_verify(self, check: impl FnOnce(&SagaState)) -> Self {
        check(&self.state);
        self
    }
}

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

fn emergency_started(ambulance_required: bool) -> SagaEvent {
    SagaEvent::EmergencyStarted(started(ambulance_required))
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

fn start(ambulance_required: bool) -> SagaInput {
    SagaInput::Start(started(ambulance_required))
}
fn result(event: SagaEvent) -> SagaInput {
    SagaInput::StepResult { event }
}
fn deadline(step: Step, step_version: u64) -> SagaInput {
    SagaInput::Deadline { step, step_version }
}

#[test]
fn happy_path_assigns_a_worker_and_notifies_the_family() {
    given_no_history()
        .when_all([start(false), result(assigned()), result(notified())])
        .then_expect([emergency_started(false), assigned(), notified()])
        .then_sends([Step::ReserveWorker, Step::NotifyFamily])
        .then_status(Status::Completed)
        .then_verify(|saga| assert_eq!(saga.worker_id.as_deref(), Some("w-1")))
        .then_outstanding(None);
}

#[test]
fn a_start_reserves_a_worker() {
    given_no_history()
        .when(start(false))
        .then_expect([emergency_started(false)])
        .then_sends([Step::ReserveWorker])
        .then_status(Status::ReservingWorker);
}

#[test]
fn a_second_start_is_ignored() {
    given([emergency_started(false)])
        .when(start(true))
        .then_expect_nothing();
}

#[test]
fn no_worker_dispatches_an_ambulance() {
    given_no_history()
        .when_all([
            start(false),
            result(unavailable()),
            result(dispatched()),
            result(notified()),
        ])
        .then_sends([
            Step::ReserveWorker,
            Step::DispatchAmbulance,
            Step::NotifyFamily,
        ])
        .then_status(Status::Completed);
}

#[test]
fn alert_type_requiring_an_ambulance_dispatches_one_after_the_worker() {
    given_no_history()
        .when_all([
            start(true),
            result(assigned()),
            result(dispatched()),
            result(notified()),
        ])
        .then_sends([
            Step::ReserveWorker,
            Step::DispatchAmbulance,
            Step::NotifyFamily,
        ])
        .then_status(Status::Completed);
}

#[test]
fn failed_dispatch_releases_the_worker_then_escalates() {
    given_no_history()
        .when_all([
            start(true),
            result(assigned()),
            result(dispatch_failed()),
            result(released()),
            result(escalated()),
        ])
        // A failed request needs no cancel: release, then escalate.
        .then_sends([
            Step::ReserveWorker,
            Step::DispatchAmbulance,
            Step::ReleaseWorker,
            Step::EscalateToHospital,
        ])
        .then_status(Status::Escalated)
        .then_verify(|saga| {
            assert_eq!(
                saga.failure.as_deref(),
                Some("ambulance dispatch failed: no vehicle")
            )
        });
}

#[test]
fn a_failed_dispatch_with_a_worker_held_releases_the_worker_first() {
    given([emergency_started(true), assigned()])
        .in_status(Status::DispatchingAmbulance)
        .when(result(dispatch_failed()))
        .then_expect([dispatch_failed()])
        .then_sends([Step::ReleaseWorker])
        .then_status(Status::Compensating);
}

#[test]
fn timed_out_dispatch_cancels_the_request_then_releases_then_escalates() {
    given_no_history()
        .when_all([
            start(true),
            result(assigned()),
            deadline(Step::DispatchAmbulance, 2),
            result(cancelled()),
            result(released()),
            result(escalated()),
        ])
        // Started, assigned, timed out, cancelled, released, escalated.
        .then_expect(history_in(Status::Escalated))
        .then_sends([
            Step::ReserveWorker,
            Step::DispatchAmbulance,
            Step::CancelAmbulance,
            Step::ReleaseWorker,
            Step::EscalateToHospital,
        ])
        .then_status(Status::Escalated);
}

#[test]
fn a_deadline_of_a_finished_or_earlier_step_is_ignored() {
    for (step, version) in [
        (Step::ReserveWorker, 1),
        (Step::NotifyFamily, 1),
        (Step::NotifyFamily, 3),
    ] {
        given([emergency_started(false), assigned()])
            .in_status(Status::NotifyingFamily)
            .when(deadline(step, version))
            .then_expect_nothing();
    }
}

#[test]
fn the_deadline_of_the_current_step_times_it_out() {
    given([emergency_started(false), assigned()])
        .when(deadline(Step::NotifyFamily, 2))
        .then_expect([timed_out(Step::NotifyFamily)])
        .then_sends([Step::ReleaseWorker])
        .then_status(Status::Compensating)
        .then_verify(|saga| {
            assert_eq!(saga.failure.as_deref(), Some("step notifyFamily timed out"))
        });
}

#[test]
fn a_worker_reserved_after_its_timeout_is_released() {
    given_no_history()
        .when_all([
            start(false),
            deadline(Step::ReserveWorker, 1),
            result(escalated()),
            result(assigned()),
            result(released()),
        ])
        .then_sends([
            Step::ReserveWorker,
            Step::EscalateToHospital,
            Step::ReleaseWorker,
        ])
        .then_status(Status::Escalated)
        .then_verify(|saga| assert!(saga.worker_released));
}

#[test]
fn a_late_reservation_reopens_an_escalated_saga_to_release_the_worker() {
    given([
        emergency_started(false),
        timed_out(Step::ReserveWorker),
        escalated(),
    ])
    .in_status(Status::Escalated)
    .when(result(assigned()))
    .then_expect([assigned()])
    .then_sends([Step::ReleaseWorker])
    .then_status(Status::Compensating);
}

#[test]
fn every_input_delivered_twice_records_each_event_once() {
    let inputs = [
        start(true),
        result(assigned()),
        result(dispatch_failed()),
        result(released()),
        result(escalated()),
    ];
    let doubled: Vec<SagaInput> = inputs.iter().flat_map(|i| [i.clone(), i.clone()]).collect();
    let once = given_no_history().when_all(inputs);
    given_no_history()
        .when_all(doubled)
        .then_expect(once.recorded.clone())
        .then_sends(once.sent.clone())
        .then_verify(|twice| {
            assert_eq!(*twice, once.state);
            assert_eq!(twice.version, 5);
        });
}

/// A history that leaves the saga in `status`.
fn history_in(status: Status) -> Vec<SagaEvent> {
    match status {
        Status::NotStarted => vec![],
        Status::ReservingWorker => vec![emergency_started(true)],
        Status::DispatchingAmbulance => vec![emergency_started(true), assigned()],
        Status::NotifyingFamily => vec![emergency_started(true), assigned(), dispatched()],
        Status::Completed => vec![
            emergency_started(true),
            assigned(),
            dispatched(),
            notified(),
        ],
        // Dispatch timed out with a worker held: cancel, release and escalate pending.
        Status::Compensating => vec![
            emergency_started(true),
            assigned(),
            timed_out(Step::DispatchAmbulance),
        ],
        Status::Escalated => vec![
            emergency_started(true),
            assigned(),
            timed_out(Step::DispatchAmbulance),
            cancelled(),
            released(),
            escalated(),
        ],
    }
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
        emergency_started(true),
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
            (S::DispatchingAmbulance, E::AmbulanceDispatched { .. }) => Some(S::NotifyingFamily),
            (S::DispatchingAmbulance, E::AmbulanceDispatchFailed { .. }) => Some(S::Compensating),
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
            let history = history_in(status);
            let version = history.len() as u64;
            let saga = given(history).in_status(status);
            // Deadlines reach the machine as Deadline inputs, not step results; a deadline
            // records the timeout of the step it is for.
            let (input, recorded) = match event {
                SagaEvent::EmergencyStarted(s) => (SagaInput::Start(s.clone()), event.clone()),
                SagaEvent::StepTimedOut { .. } => {
                    let step = saga.before.current_step().unwrap_or(Step::ReserveWorker);
                    (deadline(step, saga.before.step_version), timed_out(step))
                }
                other => (result(other.clone()), other.clone()),
            };
            let saga = saga.when(input);
            match expected(status, event) {
                Some(next) => {
                    saga.then_expect([recorded])
                        .then_status(next)
                        .then_verify(|after| assert_eq!(after.version, version + 1));
                }
                None => {
                    saga.then_expect_nothing();
                }
            }
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
        given(history_in(status))
            .in_status(status)
            .then_outstanding(step);
    }
    let command = outstanding(&given(history_in(Status::DispatchingAmbulance)).state).unwrap();
    assert_eq!(command.request_id, Some(ambulance_request_id("e-1")));
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
