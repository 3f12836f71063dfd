//! The saga's data: steps, events, inputs, commands and messages.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::envelope::EventData;
use crate::ids::deterministic_id;

/// A step of the saga: forward steps and their compensations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Step {
    ReserveWorker,
    DispatchAmbulance,
    NotifyWorker,
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
            Step::NotifyWorker => "notifyWorker",
            Step::NotifyFamily => "notifyFamily",
            Step::CancelAmbulance => "cancelAmbulance",
            Step::ReleaseWorker => "releaseWorker",
            Step::EscalateToHospital => "escalateToHospital",
        }
    }
}

/// What the family is told, one message per stage. Family messages carry no diagnosis.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum FamilyStage {
    /// Help (the health worker, or an ambulance) is on the way.
    #[default]
    Dispatched,
    /// The worker on site asked for an ambulance and one is on the way.
    Ambulance,
    /// Local help failed; the district hospital has taken over.
    Hospital,
    /// The emergency is closed.
    Completed,
}

impl FamilyStage {
    pub fn as_str(self) -> &'static str {
        match self {
            FamilyStage::Dispatched => "dispatched",
            FamilyStage::Ambulance => "ambulance",
            FamilyStage::Hospital => "hospital",
            FamilyStage::Completed => "completed",
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
    /// `POST /emergencies`: the hash of the request that started it, so a retry with the
    /// same `Idempotency-Key` but another payload is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_hash: Option<String>,
}

/// How an emergency was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum CloseReason {
    /// The worker closed it (`POST /emergencies/{id}/close`).
    Closed,
    /// Open longer than the configured timeout.
    TimedOut,
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
    /// The assigned worker was sent the emergency (patient, village, reason, ACK code).
    WorkerNotified {
        notification_id: String,
    },
    /// `notification_id` is None when the patient has no family contact on file.
    FamilyNotified {
        notification_id: Option<String>,
        #[serde(default)]
        stage: FamilyStage,
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
    /// The worker acknowledged the emergency (SMS reply).
    EmergencyAcknowledged {
        worker_id: String,
    },
    /// The worker on site asked for an ambulance.
    AmbulanceRequested {
        requested_by: String,
    },
    /// The emergency ended: the worker is released and the family told.
    EmergencyClosed {
        closed_by: String,
        reason: CloseReason,
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
            SagaEvent::WorkerNotified { .. } => "WorkerNotified",
            SagaEvent::FamilyNotified { .. } => "FamilyNotified",
            SagaEvent::StepTimedOut { .. } => "StepTimedOut",
            SagaEvent::AmbulanceCancelled { .. } => "AmbulanceCancelled",
            SagaEvent::WorkerReleased { .. } => "WorkerReleased",
            SagaEvent::EscalatedToHospital { .. } => "EscalatedToHospital",
            SagaEvent::EmergencyAcknowledged { .. } => "EmergencyAcknowledged",
            SagaEvent::AmbulanceRequested { .. } => "AmbulanceRequested",
            SagaEvent::EmergencyClosed { .. } => "EmergencyClosed",
        }
    }
}

/// Where a saga is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Status {
    #[default]
    NotStarted,
    ReservingWorker,
    DispatchingAmbulance,
    NotifyingWorker,
    NotifyingFamily,
    /// Open: the worker is with the patient, until they close it or the open timeout does.
    OnSite,
    /// Closed: releasing the worker and telling the family.
    Closing,
    Completed,
    Compensating,
    /// Terminal after compensation: every acquired resource released, the district hospital
    /// and the family told.
    Escalated,
}

/// An input to the saga: a step's result, a deadline check, the start, or a person's request.
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
    /// The open timeout of an emergency on site since `step_version`, due at `due_at` (a
    /// message that arrives earlier is delayed again: SQS delays at most 15 minutes).
    CloseDue {
        step_version: u64,
        due_at: DateTime<Utc>,
    },
    /// The worker on site closes the emergency.
    Close {
        closed_by: String,
    },
    /// The worker on site asks for an ambulance.
    RequestAmbulance {
        requested_by: String,
    },
    /// The worker acknowledged the emergency (SMS reply).
    Acknowledge {
        worker_id: String,
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
    /// ReleaseWorker / NotifyWorker: the worker.
    pub worker_id: Option<String>,
    /// DispatchAmbulance / CancelAmbulance: the request id.
    pub request_id: Option<String>,
    /// NotifyFamily: what the family is told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<FamilyStage>,
    /// The saga version the step began at: a step worker does nothing for a saga that has
    /// moved on (a late duplicate of the command).
    #[serde(default)]
    pub step_version: u64,
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
    /// Deterministic id: one command per (emergency, step, family stage).
    pub fn command_id(&self) -> String {
        let stage = self.stage.map(FamilyStage::as_str).unwrap_or_default();
        deterministic_id(&["step", &self.emergency_id, self.step.as_str(), stage])
    }
}
