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
