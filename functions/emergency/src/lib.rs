//! `emergency`: the emergency-dispatch saga and alert acknowledgement / escalation.
//!
//! One binary, deployed as two functions (see docs/adr/0001-emergency-saga-orchestration.md):
//! - the coordinator: HTTP `POST /emergencies`, `GET /emergencies/{id}`,
//!   `POST /emergencies/{id}/close`, `POST /emergencies/{id}/ambulance`,
//!   `POST /alerts/{id}/ack`; SQS messages `AlertRaised` (critical alerts, emergency queue),
//!   `SagaInput` (saga queue; open timeouts on the timers queue), `AlertRaised` /
//!   `AlertEscalationDue` (escalation queue), two-way SMS replies "ACK <code>" (inbound
//!   queue, [`inbound`]);
//! - the step workers: SQS `StepCommand` messages (steps queue).
//!
//! The handler dispatches on the Lambda event (HTTP or SQS) and then on each message's
//! `eventType` and the queue it came from (inbound SMS are not envelopes: they are told
//! apart by their queue first).

pub mod ack;
pub mod api;
pub mod coordinator;
pub mod escalate;
pub mod inbound;
pub mod steps;
pub mod validate;

use application::ports::*;
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use chrono::{DateTime, Utc};
use domain::envelope::DecodeError;
use lambda_kit::batch::{body, process_sqs};
use serde_json::Value;

/// The function name recorded as the `source` of the events it emits.
pub const SOURCE: &str = "emergency";

/// The recipient id of the district hospital's emergency desk (its phone is
/// [`Config::hospital_phone`]).
pub const HOSPITAL_RECIPIENT: &str = "district-hospital";

/// Settings from the environment (template parameters).
#[derive(Debug, Clone)]
pub struct Config {
    /// Deadline of each forward saga step.
    pub step_deadline_seconds: u32,
    /// Time a routed alert has to be acknowledged before it escalates one level.
    pub ack_timeout_seconds: u32,
    /// Phone of the district hospital's emergency desk (compensation escalates there).
    pub hospital_phone: String,
    /// The language the district hospital's desk reads its SMS in (i18n, issue 16:
    /// `HOSPITAL_LANGUAGE`, default `en`; `domain::messages`).
    pub hospital_language: String,
    /// How long an emergency stays open with the worker on site before it is closed for
    /// them (the worker is released, the family told).
    pub open_timeout_seconds: u32,
    /// ARN of the escalation queue: its `AlertRaised` messages are acknowledgement checks,
    /// those of the emergency queue start sagas.
    pub escalation_queue_arn: String,
    /// ARN of the inbound SMS queue: its messages are SMS replies, not envelopes.
    pub inbound_queue_arn: String,
}

pub struct Deps<'a> {
    pub events: &'a dyn EventStore,
    pub reader: &'a dyn EventReader,
    pub bus: &'a dyn MessageBus,
    pub directory: &'a dyn Directory,
    /// What decides who may act on whose patients (docs/security.md).
    pub access: &'a dyn AccessDirectory,
    pub contacts: &'a dyn Contacts,
    pub workers: &'a dyn Workers,
    pub ambulance: &'a dyn AmbulanceProvider,
    pub ledger: &'a dyn StepLedger,
    pub notifications: &'a dyn NotificationQueue,
    /// Resolves the codes of SMS replies.
    pub ack_codes: &'a dyn AckCodes,
    pub config: Config,
}

/// Why a message was not handled (it is reported as a batch item failure and redelivered).
#[derive(Debug, thiserror::Error)]
pub enum EmergencyError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("message is not an event envelope: {0}")]
    NotAnEnvelope(#[source] serde_json::Error),
    #[error("unexpected eventType {0}")]
    UnexpectedEventType(String),
    #[error("{what} is not {expected}: {source}")]
    Unreadable {
        what: String,
        expected: &'static str,
        source: serde_json::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Busy(String),
    #[error(transparent)]
    Port(#[from] PortError),
    #[error("encoding: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Why a Lambda event was not handled at all.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("unsupported Lambda event: {0}")]
    Unsupported(String),
    #[error(transparent)]
    Batch(#[from] lambda_kit::batch::BatchError),
}

/// Handles one Lambda event: an HTTP API request or an SQS batch.
pub async fn handle(
    deps: &Deps<'_>,
    payload: Value,
    now: DateTime<Utc>,
) -> Result<Value, HandlerError> {
    if payload.get("Records").is_some() {
        let event: SqsEvent = serde_json::from_value(payload)
            .map_err(|e| HandlerError::Unsupported(format!("SQS event does not decode: {e}")))?;
        let response = process_sqs(&event.records, |m| handle_message(deps, m, now)).await?;
        return serde_json::to_value(response)
            .map_err(|e| HandlerError::Unsupported(e.to_string()));
    }
    if payload.get("requestContext").is_some() {
        let request: ApiGatewayV2httpRequest = serde_json::from_value(payload)
            .map_err(|e| HandlerError::Unsupported(format!("HTTP event does not decode: {e}")))?;
        let response = api::handle(deps, &request, now).await;
        return serde_json::to_value(response)
            .map_err(|e| HandlerError::Unsupported(e.to_string()));
    }
    Err(HandlerError::Unsupported(
        "neither an SQS batch nor an HTTP API request".into(),
    ))
}

/// The `eventType` of a message body (every message is an envelope).
fn event_type(bytes: &[u8]) -> Result<String, EmergencyError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Header {
        event_type: String,
    }
    serde_json::from_slice::<Header>(bytes)
        .map(|h| h.event_type)
        .map_err(EmergencyError::NotAnEnvelope)
}

/// Whether a message came from the queue with this ARN.
fn from_queue(message: &SqsMessage, queue_arn: &str) -> bool {
    message.event_source_arn.as_deref() == Some(queue_arn)
}

async fn handle_message(
    deps: &Deps<'_>,
    message: &SqsMessage,
    now: DateTime<Utc>,
) -> Result<(), EmergencyError> {
    if from_queue(message, &deps.config.inbound_queue_arn) {
        return inbound::on_inbound_sms(deps, message, now).await;
    }
    let bytes = body(message);
    match event_type(bytes)?.as_str() {
        "AlertRaised" if from_queue(message, &deps.config.escalation_queue_arn) => {
            escalate::on_alert_due(deps, bytes, now).await
        }
        "AlertRaised" => coordinator::on_critical_alert(deps, bytes, now).await,
        "AlertEscalationDue" => escalate::on_escalation_due(deps, bytes, now).await,
        "SagaInput" => coordinator::on_saga_message(deps, bytes, now).await,
        "StepCommand" => steps::on_command(deps, bytes, now).await,
        other => Err(EmergencyError::UnexpectedEventType(other.to_string())),
    }
}
