use super::*;

/// A command as [`SagaTest::then`] asserts it: its step, and the family stage of a
/// NotifyFamily (`None` for every other step).
type Sent = (Step, Option<FamilyStage>);

/// A command of `step` (not NotifyFamily).
fn command(step: Step) -> Sent {
    (step, None)
}

/// A NotifyFamily command telling the family `stage`.
fn tell_family(stage: FamilyStage) -> Sent {
    (Step::NotifyFamily, Some(stage))
}

/// Given/when/then for the saga, in the style of cqrs-es' `TestFramework`:
/// `given(events).when(input).then(events, commands)`.
///
/// `given` folds a history as the coordinator loads it; each `when` input goes through
/// [`decide`] and [`SagaState::apply`] as the coordinator runs it, and [`outstanding`] gives
/// the step command sent after each recorded event; `then` and the `then_*` methods assert on
/// what was recorded, what was sent and where the saga is.
struct SagaTest {
    /// The state the history left the saga in.
    before: SagaState,
    state: SagaState,
    /// Events recorded by the `when` inputs, in order.
    recorded: Vec<SagaEvent>,
    /// The status after each recorded event.
    statuses: Vec<Status>,
    /// The command sent after each recorded event that left one outstanding.
    sent: Vec<StepCommand>,
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
        statuses: Vec::new(),
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
                self.statuses.push(self.state.status);
                if let Some(command) = outstanding(&self.state) {
                    self.sent.push(command);
                }
            }
        }
        self
    }

    /// Then exactly `events` were recorded and exactly `commands` sent (one after each
    /// recorded event that left one outstanding), in this order.
    fn then(
        self,
        events: impl IntoIterator<Item = SagaEvent>,
        commands: impl IntoIterator<Item = Sent>,
    ) -> Self {
        let expected: Vec<Sent> = commands.into_iter().collect();
        let sent: Vec<Sent> = self.sent.iter().map(|c| (c.step, c.stage)).collect();
        let this = self.then_expect(events);
        assert_eq!(sent, expected, "commands sent, {}", this.story);
        this
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
        let sent: Vec<Step> = self.sent.iter().map(|c| c.step).collect();
        assert_eq!(sent, expected, "{}", self.story);
        self
    }

    /// Then exactly these step commands (every field) were sent.
    fn then_sends_commands(self, commands: impl IntoIterator<Item = StepCommand>) -> Self {
        let expected: Vec<StepCommand> = commands.into_iter().collect();
        assert_eq!(self.sent, expected, "{}", self.story);
        self
    }

    fn then_status(self, status: Status) -> Self {
        assert_eq!(self.state.status, status, "{}", self.story);
        self
    }

    /// Then the saga went through `statuses`: the status after each recorded event.
    fn then_statuses(self, statuses: impl IntoIterator<Item = Status>) -> Self {
        let expected: Vec<Status> = statuses.into_iter().collect();
        assert_eq!(self.statuses, expected, "{}", self.story);
        self
    }

    /// Then the saga waits on the command of `step` (`None`: on nothing).
    fn then_outstanding(self, step: Option<Step>) -> Self {
        let command = outstanding(&self.state);
        assert_eq!(command.map(|c| c.step), step, "{}", self.story);
        self
    }

    /// Then the saga waits on `command`, family stage included (`None`: on nothing).
    fn then_waits_on(self, command: Option<Sent>) -> Self {
        let outstanding = outstanding(&self.state).map(|c| (c.step, c.stage));
        assert_eq!(outstanding, command, "{}", self.story);
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
        request_hash: None,
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
fn worker_notified() -> SagaEvent {
    SagaEvent::WorkerNotified {
        notification_id: "n-w".into(),
    }
}
fn family_notified(stage: FamilyStage) -> SagaEvent {
    SagaEvent::FamilyNotified {
        notification_id: Some(format!("n-{}", stage.as_str())),
        stage,
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
fn acknowledged() -> SagaEvent {
    SagaEvent::EmergencyAcknowledged {
        worker_id: "w-1".into(),
    }
}
fn ambulance_requested() -> SagaEvent {
    SagaEvent::AmbulanceRequested {
        requested_by: "w-1".into(),
    }
}
fn closed() -> SagaEvent {
    SagaEvent::EmergencyClosed {
        closed_by: "w-1".into(),
        reason: CloseReason::Closed,
    }
}
fn closed_on_timeout() -> SagaEvent {
    SagaEvent::EmergencyClosed {
        closed_by: "timeout".into(),
        reason: CloseReason::TimedOut,
    }
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
fn close() -> SagaInput {
    SagaInput::Close {
        closed_by: "w-1".into(),
    }
}
fn close_due(step_version: u64) -> SagaInput {
    SagaInput::CloseDue {
        step_version,
        due_at: "2026-01-01T12:00:00Z".parse().unwrap(),
    }
}
fn request_ambulance() -> SagaInput {
    SagaInput::RequestAmbulance {
        requested_by: "w-1".into(),
    }
}
fn acknowledge() -> SagaInput {
    SagaInput::Acknowledge {
        worker_id: "w-1".into(),
    }
}

use FamilyStage::{Ambulance, Completed, Dispatched, Hospital};

/// Started, worker assigned and notified, family told: the worker is on site (version 4).
fn on_site() -> Vec<SagaEvent> {
    vec![
        emergency_started(false),
        assigned(),
        worker_notified(),
        family_notified(Dispatched),
    ]
}

/// On site, asked for an ambulance, which was dispatched and the family told: back on site
/// (version 7).
fn on_site_after_ambulance() -> Vec<SagaEvent> {
    let mut history = on_site();
    history.extend([
        ambulance_requested(),
        dispatched(),
        family_notified(Ambulance),
    ]);
    history
}

#[test]
fn happy_path_notifies_worker_and_family_stays_on_site_then_closes() {
    given_no_history()
        .when_all([
            start(false),
            result(assigned()),
            result(worker_notified()),
            result(family_notified(Dispatched)),
        ])
        .then(
            [
                emergency_started(false),
                assigned(),
                worker_notified(),
                family_notified(Dispatched),
            ],
            [
                command(Step::ReserveWorker),
                command(Step::NotifyWorker),
                tell_family(Dispatched),
            ],
        )
        .then_status(Status::OnSite)
        .then_outstanding(None)
        .when_all([
            close(),
            result(released()),
            result(family_notified(Completed)),
        ])
        .then(
            [
                emergency_started(false),
                assigned(),
                worker_notified(),
                family_notified(Dispatched),
                closed(),
                released(),
                family_notified(Completed),
            ],
            [
                command(Step::ReserveWorker),
                command(Step::NotifyWorker),
                tell_family(Dispatched),
                command(Step::ReleaseWorker),
                tell_family(Completed),
            ],
        )
        .then_statuses([
            Status::ReservingWorker,
            Status::NotifyingWorker,
            Status::NotifyingFamily,
            Status::OnSite,
            Status::Closing,
            Status::Closing,
            Status::Completed,
        ])
        .then_outstanding(None)
        .then_verify(|saga| {
            assert_eq!(saga.worker_id.as_deref(), Some("w-1"));
            assert!(saga.worker_notified);
            assert!(saga.worker_released);
            assert_eq!(saga.closed, Some(CloseReason::Closed));
            assert_eq!(saga.family_told, [Dispatched, Completed]);
        });
}

#[test]
fn closing_releases_the_worker_then_tells_the_family() {
    given(on_site())
        .in_status(Status::OnSite)
        .when(close())
        .then([closed()], [command(Step::ReleaseWorker)])
        .then_status(Status::Closing)
        .when(result(released()))
        .then(
            [closed(), released()],
            [command(Step::ReleaseWorker), tell_family(Completed)],
        )
        .then_status(Status::Closing)
        .when(result(family_notified(Completed)))
        .then_status(Status::Completed)
        .then_waits_on(None);
}

#[test]
fn a_start_reserves_a_worker() {
    given_no_history()
        .when(start(false))
        .then([emergency_started(false)], [command(Step::ReserveWorker)])
        .then_status(Status::ReservingWorker);
}

#[test]
fn a_second_start_is_ignored() {
    given([emergency_started(false)])
        .when(start(true))
        .then_expect_nothing();
}

#[test]
fn the_assigned_worker_is_told_first() {
    given([emergency_started(false)])
        .when(result(assigned()))
        .then([assigned()], [command(Step::NotifyWorker)])
        .then_status(Status::NotifyingWorker)
        .then_verify(|saga| {
            let command = outstanding(saga).unwrap();
            assert_eq!(command.worker_id.as_deref(), Some("w-1"));
            assert_eq!(command.stage, None);
        });
}

#[test]
fn no_worker_dispatches_an_ambulance_and_completes_without_on_site() {
    given_no_history()
        .when_all([
            start(false),
            result(unavailable()),
            result(dispatched()),
            result(family_notified(Dispatched)),
        ])
        .then(
            [
                emergency_started(false),
                unavailable(),
                dispatched(),
                family_notified(Dispatched),
            ],
            [
                command(Step::ReserveWorker),
                command(Step::DispatchAmbulance),
                tell_family(Dispatched),
            ],
        )
        // Nobody to notify, nobody on site, nobody to release.
        .then_statuses([
            Status::ReservingWorker,
            Status::DispatchingAmbulance,
            Status::NotifyingFamily,
            Status::Completed,
        ])
        .then_status(Status::Completed)
        .then_outstanding(None)
        .then_verify(|saga| {
            assert_eq!(saga.worker_id, None);
            assert!(!saga.worker_notified);
            assert_eq!(saga.family_told, [Dispatched]);
        });
}

#[test]
fn alert_type_requiring_an_ambulance_dispatches_one_after_the_worker() {
    given_no_history()
        .when_all([
            start(true),
            result(assigned()),
            result(dispatched()),
            result(worker_notified()),
            result(family_notified(Dispatched)),
        ])
        .then(
            [
                emergency_started(true),
                assigned(),
                dispatched(),
                worker_notified(),
                family_notified(Dispatched),
            ],
            [
                command(Step::ReserveWorker),
                command(Step::DispatchAmbulance),
                command(Step::NotifyWorker),
                tell_family(Dispatched),
            ],
        )
        .then_status(Status::OnSite);
}

#[test]
fn failed_dispatch_releases_the_worker_escalates_then_tells_the_family() {
    given_no_history()
        .when_all([
            start(true),
            result(assigned()),
            result(dispatch_failed()),
            result(released()),
            result(escalated()),
            result(family_notified(Hospital)),
        ])
        // A failed request needs no cancel: release, escalate, then tell the family.
        .then(
            [
                emergency_started(true),
                assigned(),
                dispatch_failed(),
                released(),
                escalated(),
                family_notified(Hospital),
            ],
            [
                command(Step::ReserveWorker),
                command(Step::DispatchAmbulance),
                command(Step::ReleaseWorker),
                command(Step::EscalateToHospital),
                tell_family(Hospital),
            ],
        )
        .then_status(Status::Escalated)
        .then_verify(|saga| {
            assert_eq!(
                saga.failure.as_deref(),
                Some("ambulance dispatch failed: no vehicle")
            );
            assert_eq!(saga.family_told, [Hospital]);
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
fn escalation_waits_for_the_family_before_it_is_done() {
    given([
        emergency_started(true),
        assigned(),
        dispatch_failed(),
        released(),
    ])
    .when(result(escalated()))
    .then([escalated()], [tell_family(Hospital)])
    .then_status(Status::Compensating)
    .when(result(family_notified(Hospital)))
    .then_status(Status::Escalated)
    .then_waits_on(None);
}

#[test]
fn timed_out_dispatch_cancels_releases_escalates_then_tells_the_family() {
    given_no_history()
        .when_all([
            start(true),
            result(assigned()),
            deadline(Step::DispatchAmbulance, 2),
            result(cancelled()),
            result(released()),
            result(escalated()),
            result(family_notified(Hospital)),
        ])
        .then(
            [
                emergency_started(true),
                assigned(),
                timed_out(Step::DispatchAmbulance),
                cancelled(),
                released(),
                escalated(),
                family_notified(Hospital),
            ],
            [
                command(Step::ReserveWorker),
                command(Step::DispatchAmbulance),
                command(Step::CancelAmbulance),
                command(Step::ReleaseWorker),
                command(Step::EscalateToHospital),
                tell_family(Hospital),
            ],
        )
        .then_status(Status::Escalated)
        .then_verify(|saga| {
            assert_eq!(
                saga.failure.as_deref(),
                Some("step dispatchAmbulance timed out")
            )
        });
}

#[test]
fn a_deadline_of_a_finished_or_earlier_step_is_ignored() {
    // NotifyingFamily began at version 3.
    for (step, version) in [
        (Step::ReserveWorker, 1),
        (Step::NotifyWorker, 2),
        (Step::NotifyFamily, 2),
        (Step::NotifyFamily, 4),
    ] {
        given([emergency_started(false), assigned(), worker_notified()])
            .in_status(Status::NotifyingFamily)
            .when(deadline(step, version))
            .then_expect_nothing();
    }
    // On site waits on no step: the deadlines of the steps before it are stale.
    for (step, version) in [(Step::NotifyFamily, 3), (Step::NotifyFamily, 4)] {
        given(on_site())
            .in_status(Status::OnSite)
            .when(deadline(step, version))
            .then_expect_nothing();
    }
    // Back on site after the ambulance: the ambulance's deadline is stale.
    given(on_site_after_ambulance())
        .in_status(Status::OnSite)
        .when_all([
            deadline(Step::DispatchAmbulance, 5),
            deadline(Step::NotifyFamily, 6),
        ])
        .then_expect_nothing();
}

#[test]
fn the_deadline_of_the_current_step_times_it_out() {
    given([emergency_started(false), assigned(), worker_notified()])
        .when(deadline(Step::NotifyFamily, 3))
        .then(
            [timed_out(Step::NotifyFamily)],
            [command(Step::ReleaseWorker)],
        )
        .then_status(Status::Compensating)
        .then_verify(|saga| {
            assert_eq!(saga.failure.as_deref(), Some("step notifyFamily timed out"));
            assert_eq!(saga.family_stage, None);
        });
    given([emergency_started(false), assigned()])
        .when(deadline(Step::NotifyWorker, 2))
        .then(
            [timed_out(Step::NotifyWorker)],
            [command(Step::ReleaseWorker)],
        )
        .then_status(Status::Compensating);
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
            result(family_notified(Hospital)),
        ])
        .then(
            [
                emergency_started(false),
                timed_out(Step::ReserveWorker),
                escalated(),
                assigned(),
                released(),
                family_notified(Hospital),
            ],
            [
                command(Step::ReserveWorker),
                command(Step::EscalateToHospital),
                tell_family(Hospital),
                // The late reservation goes first; the family message is sent again after.
                command(Step::ReleaseWorker),
                tell_family(Hospital),
            ],
        )
        .then_status(Status::Escalated)
        .then_verify(|saga| assert!(saga.worker_released));
}

#[test]
fn a_late_reservation_reopens_an_escalated_saga_to_release_the_worker() {
    given([
        emergency_started(false),
        timed_out(Step::ReserveWorker),
        escalated(),
        family_notified(Hospital),
    ])
    .in_status(Status::Escalated)
    .when(result(assigned()))
    .then([assigned()], [command(Step::ReleaseWorker)])
    .then_status(Status::Compensating)
    .when(result(released()))
    .then_status(Status::Escalated)
    .then_waits_on(None);
}

#[test]
fn a_worker_on_site_requests_an_ambulance() {
    given(on_site())
        .in_status(Status::OnSite)
        .when_all([
            request_ambulance(),
            result(dispatched()),
            result(family_notified(Ambulance)),
        ])
        .then(
            [
                ambulance_requested(),
                dispatched(),
                family_notified(Ambulance),
            ],
            [command(Step::DispatchAmbulance), tell_family(Ambulance)],
        )
        .then_statuses([
            Status::DispatchingAmbulance,
            Status::NotifyingFamily,
            Status::OnSite,
        ])
        .then_status(Status::OnSite)
        .then_outstanding(None)
        .then_verify(|saga| {
            // Back on site, with a new open period.
            assert_eq!(saga.step_version, 7);
            assert!(saga.ambulance_requested_on_site);
            assert!(saga.ambulance_dispatched);
            assert!(saga.holds_worker());
            assert_eq!(saga.family_told, [Dispatched, Ambulance]);
        });
}

#[test]
fn an_ambulance_requested_on_site_that_fails_is_compensated() {
    given(on_site())
        .when_all([
            request_ambulance(),
            result(dispatch_failed()),
            result(released()),
            result(escalated()),
            result(family_notified(Hospital)),
        ])
        .then(
            [
                ambulance_requested(),
                dispatch_failed(),
                released(),
                escalated(),
                family_notified(Hospital),
            ],
            [
                command(Step::DispatchAmbulance),
                command(Step::ReleaseWorker),
                command(Step::EscalateToHospital),
                tell_family(Hospital),
            ],
        )
        .then_statuses([
            Status::DispatchingAmbulance,
            Status::Compensating,
            Status::Compensating,
            Status::Compensating,
            Status::Escalated,
        ])
        .then_verify(|saga| {
            assert!(saga.worker_released);
            assert_eq!(saga.closed, None);
            assert_eq!(saga.family_told, [Dispatched, Hospital]);
        });
}

#[test]
fn an_ambulance_requested_on_site_that_times_out_is_cancelled_and_compensated() {
    given(on_site())
        .when_all([
            request_ambulance(),
            deadline(Step::DispatchAmbulance, 5),
            result(cancelled()),
            result(released()),
            result(escalated()),
            result(family_notified(Hospital)),
        ])
        .then(
            [
                ambulance_requested(),
                timed_out(Step::DispatchAmbulance),
                cancelled(),
                released(),
                escalated(),
                family_notified(Hospital),
            ],
            [
                command(Step::DispatchAmbulance),
                command(Step::CancelAmbulance),
                command(Step::ReleaseWorker),
                command(Step::EscalateToHospital),
                tell_family(Hospital),
            ],
        )
        .then_status(Status::Escalated);
}

#[test]
fn a_second_ambulance_request_is_ignored() {
    // While the first is being dispatched.
    given(history_in(Status::DispatchingAmbulance))
        .when(request_ambulance())
        .then_expect_nothing();
    // Once it was dispatched and the worker is back on site.
    given(on_site_after_ambulance())
        .in_status(Status::OnSite)
        .when(request_ambulance())
        .then_expect_nothing();
    // The alert type already brought one.
    given([
        emergency_started(true),
        assigned(),
        dispatched(),
        worker_notified(),
        family_notified(Dispatched),
    ])
    .in_status(Status::OnSite)
    .when(request_ambulance())
    .then_expect_nothing();
}

#[test]
fn an_ambulance_request_outside_on_site_is_ignored() {
    for status in all_statuses() {
        if status != Status::OnSite {
            given(history_in(status))
                .in_status(status)
                .when(request_ambulance())
                .then_expect_nothing();
        }
    }
}

#[test]
fn close_outside_on_site_is_ignored() {
    for status in all_statuses() {
        if status != Status::OnSite {
            given(history_in(status))
                .in_status(status)
                .when_all([close(), close_due(history_in(status).len() as u64)])
                .then_expect_nothing();
        }
    }
}

#[test]
fn a_worker_back_on_site_after_the_ambulance_closes() {
    given(on_site_after_ambulance())
        .when_all([
            close(),
            result(released()),
            result(family_notified(Completed)),
        ])
        .then(
            [closed(), released(), family_notified(Completed)],
            [command(Step::ReleaseWorker), tell_family(Completed)],
        )
        .then_status(Status::Completed)
        .then_verify(|saga| {
            assert_eq!(saga.family_told, [Dispatched, Ambulance, Completed]);
            // The dispatched ambulance is the crew's now: nothing cancels it.
            assert!(!saga.ambulance_cancelled);
        });
}

#[test]
fn close_due_for_the_current_open_period_closes_on_timeout() {
    given(on_site())
        .in_status(Status::OnSite)
        .when(close_due(4))
        .then([closed_on_timeout()], [command(Step::ReleaseWorker)])
        .then_status(Status::Closing)
        .then_verify(|saga| assert_eq!(saga.closed, Some(CloseReason::TimedOut)))
        .when_all([result(released()), result(family_notified(Completed))])
        .then_status(Status::Completed);
}

#[test]
fn a_stale_close_due_is_ignored() {
    // The open period began again at version 7 when the worker was back on site.
    given(on_site_after_ambulance())
        .when_all([close_due(4), close_due(6), close_due(8)])
        .then_expect_nothing();
    given(on_site_after_ambulance())
        .when(close_due(7))
        .then([closed_on_timeout()], [command(Step::ReleaseWorker)]);
    // An acknowledgement does not begin a new open period.
    given(on_site())
        .when_all([acknowledge(), close_due(4)])
        .then(
            [acknowledged(), closed_on_timeout()],
            [command(Step::ReleaseWorker)],
        );
    // Once closed by the worker, the timeout finds nothing to close.
    given(on_site())
        .when_all([close(), close_due(4)])
        .then([closed()], [command(Step::ReleaseWorker)])
        .then_verify(|saga| assert_eq!(saga.closed, Some(CloseReason::Closed)));
}

#[test]
fn an_acknowledgement_is_recorded_once_and_changes_no_status() {
    given(on_site())
        .when_all([acknowledge(), acknowledge()])
        .then([acknowledged()], [])
        .then_status(Status::OnSite)
        .then_verify(|saga| {
            assert_eq!(saga.acknowledged_by.as_deref(), Some("w-1"));
            assert_eq!(saga.step_version, 4);
            assert_eq!(saga.version, 5);
        });
    // Before the worker's message was even confirmed: the step is re-sent (the coordinator
    // sends the outstanding command after every recorded event) with its own version.
    given([emergency_started(false), assigned()])
        .when(acknowledge())
        .then([acknowledged()], [command(Step::NotifyWorker)])
        .then_status(Status::NotifyingWorker)
        .then_verify(|saga| {
            assert_eq!(saga.step_version, 2);
            assert_eq!(outstanding(saga).unwrap().step_version, 2);
        })
        // Its deadline still counts.
        .when(deadline(Step::NotifyWorker, 2))
        .then_status(Status::Compensating);
}

#[test]
fn an_acknowledgement_is_ignored_before_the_start_and_once_terminal() {
    for status in [Status::NotStarted, Status::Completed, Status::Escalated] {
        given(history_in(status))
            .in_status(status)
            .when(acknowledge())
            .then_expect_nothing();
    }
}

#[test]
fn a_family_message_of_another_stage_is_ignored() {
    for stage in [Ambulance, Hospital, Completed] {
        given(history_in(Status::NotifyingFamily))
            .then_waits_on(Some(tell_family(Dispatched)))
            .when(result(family_notified(stage)))
            .then_expect_nothing();
    }
    for stage in [Dispatched, Hospital, Completed] {
        given(on_site_after_ambulance()[..6].to_vec())
            .in_status(Status::NotifyingFamily)
            .then_waits_on(Some(tell_family(Ambulance)))
            .when(result(family_notified(stage)))
            .then_expect_nothing();
    }
    for stage in [Dispatched, Ambulance, Hospital] {
        given([on_site(), vec![closed(), released()]].concat())
            .in_status(Status::Closing)
            .then_waits_on(Some(tell_family(Completed)))
            .when(result(family_notified(stage)))
            .then_expect_nothing();
    }
    for stage in [Dispatched, Ambulance, Completed] {
        given(
            [
                history_in(Status::Compensating),
                vec![cancelled(), released(), escalated()],
            ]
            .concat(),
        )
        .in_status(Status::Compensating)
        .then_waits_on(Some(tell_family(Hospital)))
        .when(result(family_notified(stage)))
        .then_expect_nothing();
    }
    // A family message that was outstanding when compensation began is not waited on.
    given([
        emergency_started(false),
        assigned(),
        worker_notified(),
        timed_out(Step::NotifyFamily),
    ])
    .when(result(family_notified(Dispatched)))
    .then_expect_nothing();
}

#[test]
fn outstanding_commands_carry_the_step_version_and_the_stage() {
    let command = |step, worker_id: Option<&str>, request_id, stage, step_version| StepCommand {
        emergency_id: "e-1".into(),
        step,
        patient_id: "p-1".into(),
        village: "Bondo".into(),
        reason: "collapsed".into(),
        worker_id: worker_id.map(str::to_string),
        request_id,
        stage,
        step_version,
    };
    let request = || Some(ambulance_request_id("e-1"));
    given_no_history()
        .when_all([
            start(false),
            result(assigned()),
            result(worker_notified()),
            result(family_notified(Dispatched)),
            request_ambulance(),
            result(dispatched()),
            result(family_notified(Ambulance)),
            close(),
            result(released()),
            result(family_notified(Completed)),
        ])
        .then_sends_commands([
            command(Step::ReserveWorker, None, None, None, 1),
            command(Step::NotifyWorker, Some("w-1"), None, None, 2),
            command(Step::NotifyFamily, None, None, Some(Dispatched), 3),
            command(Step::DispatchAmbulance, None, request(), None, 5),
            command(Step::NotifyFamily, None, None, Some(Ambulance), 6),
            // Closing begins no forward step: its commands carry the version the open
            // period began at.
            command(Step::ReleaseWorker, Some("w-1"), None, None, 7),
            command(Step::NotifyFamily, None, None, Some(Completed), 7),
        ]);
    // Compensation carries the version of the step that failed.
    given(on_site())
        .when_all([
            request_ambulance(),
            deadline(Step::DispatchAmbulance, 5),
            result(cancelled()),
            result(released()),
            result(escalated()),
        ])
        .then_sends_commands([
            command(Step::DispatchAmbulance, None, request(), None, 5),
            command(Step::CancelAmbulance, None, request(), None, 5),
            command(Step::ReleaseWorker, Some("w-1"), None, None, 5),
            command(Step::EscalateToHospital, None, None, None, 5),
            command(Step::NotifyFamily, None, None, Some(Hospital), 5),
        ]);
}

#[test]
fn each_family_stage_has_its_own_command_id() {
    let saga = given(on_site_after_ambulance()[..6].to_vec()).state;
    let ambulance = outstanding(&saga).unwrap();
    let dispatched = outstanding(&given(history_in(Status::NotifyingFamily)).state).unwrap();
    let completed =
        outstanding(&given([on_site(), vec![closed(), released()]].concat()).state).unwrap();
    let ids = [&dispatched, &ambulance, &completed].map(StepCommand::command_id);
    assert_ne!(ids[0], ids[1]);
    assert_ne!(ids[0], ids[2]);
    assert_ne!(ids[1], ids[2]);
    // The same stage, sent again, is the same command.
    assert_eq!(
        ambulance.command_id(),
        outstanding(&saga).unwrap().command_id()
    );
}

#[test]
fn every_input_delivered_twice_records_each_event_once() {
    let lifecycles = [
        // On site, acknowledged, an ambulance requested, closed by the worker (the open
        // timeout arriving after the close finds nothing to close).
        (
            vec![
                start(false),
                result(assigned()),
                acknowledge(),
                result(worker_notified()),
                result(family_notified(Dispatched)),
                request_ambulance(),
                result(dispatched()),
                result(family_notified(Ambulance)),
                close(),
                close_due(8),
                result(released()),
                result(family_notified(Completed)),
            ],
            11,
            Status::Completed,
        ),
        // Closed by the open timeout.
        (
            vec![
                start(false),
                result(assigned()),
                result(worker_notified()),
                result(family_notified(Dispatched)),
                close_due(4),
                result(released()),
                result(family_notified(Completed)),
            ],
            7,
            Status::Completed,
        ),
        // Compensated after a failed dispatch.
        (
            vec![
                start(true),
                result(assigned()),
                result(dispatch_failed()),
                result(released()),
                result(escalated()),
                result(family_notified(Hospital)),
            ],
            6,
            Status::Escalated,
        ),
    ];
    for (inputs, events, end) in lifecycles {
        let doubled: Vec<SagaInput> = inputs.iter().flat_map(|i| [i.clone(), i.clone()]).collect();
        let once = given_no_history().when_all(inputs).then_status(end);
        assert_eq!(once.recorded.len(), events, "{}", once.story);
        given_no_history()
            .when_all(doubled)
            .then_expect(once.recorded.clone())
            .then_sends_commands(once.sent.clone())
            .then_verify(|twice| {
                assert_eq!(*twice, once.state);
                assert_eq!(twice.version, events as u64);
            });
    }
}

#[test]
fn person_events_are_not_step_results() {
    // A step worker cannot close, acknowledge, ask for an ambulance or time out a step.
    for event in [
        closed(),
        closed_on_timeout(),
        acknowledged(),
        ambulance_requested(),
        timed_out(Step::NotifyFamily),
        emergency_started(false),
    ] {
        given(on_site()).when(result(event)).then_expect_nothing();
    }
    given(history_in(Status::NotifyingFamily))
        .when(result(timed_out(Step::NotifyFamily)))
        .then_expect_nothing();
}

/// Every status. Adding one fails to compile here until it is listed.
fn all_statuses() -> [Status; 10] {
    use Status as S;
    let listed = |status: S| match status {
        S::NotStarted
        | S::ReservingWorker
        | S::DispatchingAmbulance
        | S::NotifyingWorker
        | S::NotifyingFamily
        | S::OnSite
        | S::Closing
        | S::Completed
        | S::Compensating
        | S::Escalated => (),
    };
    let all = [
        S::NotStarted,
        S::ReservingWorker,
        S::NotifyingWorker,
        S::NotifyingFamily,
        S::OnSite,
        S::DispatchingAmbulance,
        S::Closing,
        S::Completed,
        S::Compensating,
        S::Escalated,
    ];
    all.iter().copied().for_each(listed);
    all
}

/// A history that leaves the saga in `status`. One emergency (no ambulance required) along
/// its lifecycle: the ambulance is the one the worker on site asks for.
fn history_in(status: Status) -> Vec<SagaEvent> {
    match status {
        Status::NotStarted => vec![],
        Status::ReservingWorker => vec![emergency_started(false)],
        Status::NotifyingWorker => vec![emergency_started(false), assigned()],
        Status::NotifyingFamily => vec![emergency_started(false), assigned(), worker_notified()],
        Status::OnSite => on_site(),
        Status::DispatchingAmbulance => [on_site(), vec![ambulance_requested()]].concat(),
        // Closed by the worker: w-1 held, the family not yet told.
        Status::Closing => [on_site(), vec![closed()]].concat(),
        Status::Completed => [
            on_site(),
            vec![closed(), released(), family_notified(Completed)],
        ]
        .concat(),
        // The ambulance asked for on site timed out with w-1 held: cancel, release, escalate
        // and tell the family pending.
        Status::Compensating => [
            history_in(Status::DispatchingAmbulance),
            vec![timed_out(Step::DispatchAmbulance)],
        ]
        .concat(),
        Status::Escalated => [
            history_in(Status::Compensating),
            vec![
                cancelled(),
                released(),
                escalated(),
                family_notified(Hospital),
            ],
        ]
        .concat(),
    }
}

/// The input that would record `event` in `state`: step results arrive as results, the rest
/// as the input that records them. Adding an event fails to compile here until it is mapped.
fn input_recording(state: &SagaState, event: &SagaEvent) -> (SagaInput, SagaEvent) {
    use SagaEvent as E;
    match event {
        E::EmergencyStarted(started) => (SagaInput::Start(started.clone()), event.clone()),
        // A deadline records the timeout of the step it is for (the current one, if any).
        E::StepTimedOut { .. } => {
            let step = state.current_step().unwrap_or(Step::ReserveWorker);
            (deadline(step, state.step_version), timed_out(step))
        }
        E::EmergencyAcknowledged { worker_id } => (
            SagaInput::Acknowledge {
                worker_id: worker_id.clone(),
            },
            event.clone(),
        ),
        E::AmbulanceRequested { requested_by } => (
            SagaInput::RequestAmbulance {
                requested_by: requested_by.clone(),
            },
            event.clone(),
        ),
        E::EmergencyClosed {
            closed_by,
            reason: CloseReason::Closed,
        } => (
            SagaInput::Close {
                closed_by: closed_by.clone(),
            },
            event.clone(),
        ),
        // The open timeout of the current open period.
        E::EmergencyClosed {
            reason: CloseReason::TimedOut,
            ..
        } => (close_due(state.step_version), event.clone()),
        E::WorkerAssigned { .. }
        | E::WorkerUnavailable { .. }
        | E::AmbulanceDispatched { .. }
        | E::AmbulanceDispatchFailed { .. }
        | E::WorkerNotified { .. }
        | E::FamilyNotified { .. }
        | E::AmbulanceCancelled { .. }
        | E::WorkerReleased { .. }
        | E::EscalatedToHospital { .. } => (result(event.clone()), event.clone()),
    }
}

/// Every (status, event) pair: is the event recorded, and what status follows.
#[test]
fn transition_table_is_exhaustive() {
    use SagaEvent as E;
    use Status as S;
    let events = [
        emergency_started(false),
        assigned(),
        unavailable(),
        dispatched(),
        dispatch_failed(),
        worker_notified(),
        family_notified(Dispatched),
        family_notified(Ambulance),
        family_notified(Hospital),
        family_notified(Completed),
        timed_out(Step::ReserveWorker),
        cancelled(),
        released(),
        escalated(),
        acknowledged(),
        ambulance_requested(),
        closed(),
        closed_on_timeout(),
    ];
    // Expected status after the event, or None when the input is ignored. Every status
    // lists what it takes; anything else it ignores.
    let expected = |status: S, event: &SagaEvent| -> Option<S> {
        let stage =
            |s: FamilyStage| matches!(event, E::FamilyNotified { stage, .. } if *stage == s);
        match (status, event) {
            (S::NotStarted, E::EmergencyStarted(_)) => Some(S::ReservingWorker),
            // Nothing else before the start, not even an acknowledgement.
            (S::NotStarted, _) => None,

            // No ambulance required: the worker is told next.
            (S::ReservingWorker, E::WorkerAssigned { .. }) => Some(S::NotifyingWorker),
            (S::ReservingWorker, E::WorkerUnavailable { .. }) => Some(S::DispatchingAmbulance),
            (S::ReservingWorker, E::StepTimedOut { .. }) => Some(S::Compensating),
            (S::ReservingWorker, E::EmergencyAcknowledged { .. }) => Some(S::ReservingWorker),
            (S::ReservingWorker, _) => None,

            (S::NotifyingWorker, E::WorkerNotified { .. }) => Some(S::NotifyingFamily),
            (S::NotifyingWorker, E::StepTimedOut { .. }) => Some(S::Compensating),
            (S::NotifyingWorker, E::EmergencyAcknowledged { .. }) => Some(S::NotifyingWorker),
            (S::NotifyingWorker, _) => None,

            // The family is waited on for "dispatched" only.
            (S::NotifyingFamily, E::FamilyNotified { .. }) if stage(Dispatched) => Some(S::OnSite),
            (S::NotifyingFamily, E::StepTimedOut { .. }) => Some(S::Compensating),
            (S::NotifyingFamily, E::EmergencyAcknowledged { .. }) => Some(S::NotifyingFamily),
            (S::NotifyingFamily, _) => None,

            // Step results are not waited on; deadlines are stale.
            (S::OnSite, E::AmbulanceRequested { .. }) => Some(S::DispatchingAmbulance),
            (S::OnSite, E::EmergencyClosed { .. }) => Some(S::Closing),
            (S::OnSite, E::EmergencyAcknowledged { .. }) => Some(S::OnSite),
            (S::OnSite, _) => None,

            // The ambulance asked for on site: the family is told next.
            (S::DispatchingAmbulance, E::AmbulanceDispatched { .. }) => Some(S::NotifyingFamily),
            (S::DispatchingAmbulance, E::AmbulanceDispatchFailed { .. }) => Some(S::Compensating),
            (S::DispatchingAmbulance, E::StepTimedOut { .. }) => Some(S::Compensating),
            (S::DispatchingAmbulance, E::EmergencyAcknowledged { .. }) => {
                Some(S::DispatchingAmbulance)
            }
            (S::DispatchingAmbulance, _) => None,

            // Either half of closing alone leaves it closing.
            (S::Closing, E::WorkerReleased { .. }) => Some(S::Closing),
            (S::Closing, E::FamilyNotified { .. }) if stage(Completed) => Some(S::Closing),
            (S::Closing, E::EmergencyAcknowledged { .. }) => Some(S::Closing),
            (S::Closing, _) => None,

            (S::Completed, _) => None,

            // In the Compensating fixture w-1 is held, the ambulance requested and no family
            // message waited on yet.
            (S::Compensating, E::AmbulanceCancelled { .. }) => Some(S::Compensating),
            (S::Compensating, E::WorkerReleased { .. }) => Some(S::Compensating),
            (S::Compensating, E::EscalatedToHospital { .. }) => Some(S::Compensating),
            // The fixture's dispatch timed out: a late dispatch is recorded (to be
            // cancelled).
            (S::Compensating, E::AmbulanceDispatched { .. }) => Some(S::Compensating),
            (S::Compensating, E::EmergencyAcknowledged { .. }) => Some(S::Compensating),
            // Includes a repeat of w-1's reservation.
            (S::Compensating, _) => None,

            // Includes a repeat of w-1's reservation and a late dispatch of the cancelled
            // ambulance.
            (S::Escalated, _) => None,
        }
    };
    for status in all_statuses() {
        for event in &events {
            let history = history_in(status);
            let version = history.len() as u64;
            let saga = given(history).in_status(status);
            let (input, recorded) = input_recording(&saga.before, event);
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
        (Status::ReservingWorker, Some(command(Step::ReserveWorker))),
        (Status::NotifyingWorker, Some(command(Step::NotifyWorker))),
        (Status::NotifyingFamily, Some(tell_family(Dispatched))),
        (Status::OnSite, None),
        (
            Status::DispatchingAmbulance,
            Some(command(Step::DispatchAmbulance)),
        ),
        (Status::Closing, Some(command(Step::ReleaseWorker))),
        (Status::Completed, None),
        (Status::Compensating, Some(command(Step::CancelAmbulance))),
        (Status::Escalated, None),
    ];
    assert_eq!(
        cases.map(|(status, _)| status),
        all_statuses(),
        "every status"
    );
    for (status, sent) in cases {
        given(history_in(status))
            .in_status(status)
            .then_waits_on(sent)
            .then_outstanding(sent.map(|(step, _)| step));
    }
    let command = outstanding(&given(history_in(Status::DispatchingAmbulance)).state).unwrap();
    assert_eq!(command.request_id, Some(ambulance_request_id("e-1")));
    let command = outstanding(&given(history_in(Status::Closing)).state).unwrap();
    assert_eq!(command.worker_id.as_deref(), Some("w-1"));
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

    let json = serde_json::to_value(closed_on_timeout()).unwrap();
    assert_eq!(json["type"], "EmergencyClosed");
    assert_eq!(json["closedBy"], "timeout");
    assert_eq!(json["reason"], "timedOut");
    assert_eq!(
        serde_json::from_value::<SagaEvent>(json).unwrap(),
        closed_on_timeout()
    );

    let json = serde_json::to_value(family_notified(Hospital)).unwrap();
    assert_eq!(json["stage"], "hospital");
    // A family message stored before stages existed was the "dispatched" one.
    let old = serde_json::json!({"type": "FamilyNotified", "notificationId": null});
    assert_eq!(
        serde_json::from_value::<SagaEvent>(old).unwrap(),
        SagaEvent::FamilyNotified {
            notification_id: None,
            stage: Dispatched,
        }
    );

    // No request hash: the field is left out, and its absence reads back as None.
    let json = serde_json::to_value(emergency_started(false)).unwrap();
    assert!(json.get("requestHash").is_none());
    assert_eq!(
        serde_json::from_value::<SagaEvent>(json).unwrap(),
        emergency_started(false)
    );

    let input = SagaInput::Deadline {
        step: Step::ReserveWorker,
        step_version: 1,
    };
    let json = serde_json::to_value(&input).unwrap();
    assert_eq!(json["kind"], "Deadline");
    assert_eq!(json["stepVersion"], 1);
    let json = serde_json::to_value(close_due(4)).unwrap();
    assert_eq!(json["kind"], "CloseDue");
    assert_eq!(json["stepVersion"], 4);
    assert_eq!(
        serde_json::from_value::<SagaInput>(json).unwrap(),
        close_due(4)
    );

    let saga = given(history_in(Status::NotifyingFamily)).state;
    let json = serde_json::to_value(outstanding(&saga).unwrap()).unwrap();
    assert_eq!(json["stage"], "dispatched");
    assert_eq!(json["stepVersion"], 3);
    let saga = given(history_in(Status::ReservingWorker)).state;
    let json = serde_json::to_value(outstanding(&saga).unwrap()).unwrap();
    assert!(json.get("stage").is_none());
}
