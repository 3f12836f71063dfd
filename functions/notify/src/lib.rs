//! `notify`: notify queue -> outbox row (claimed once per notification id) -> message
//! sent on the configured channel -> `NotificationSent` (event table).
//!
//! Both kinds of request (`alert`, and `cleared` when an alert's condition no longer
//! holds) go the same way; the kind is recorded in the outbox row and in `NotificationSent`.
//! They have different notification ids, so a `cleared` message is never taken for a
//! repeat of its alert's.
//!
//! Idempotent by notification id: a redelivered request finds the outbox row `sent` and
//! sends nothing. A crash between sending and marking the row can resend once: delivery is
//! at-least-once, the record of it exactly-once.
//!
//! Each request is also guarded by the idempotency utility (key: the notification id;
//! validated: the request data), so a repeat of a completed request does nothing and a
//! concurrent duplicate is refused while the first one runs.
//!
//! The notify queue is FIFO with one message group per recipient and alert
//! (`aws_adapters::notification_group_id`): messages are processed in order,
//! and once a message fails the later messages of its group in the batch are not tried and
//! are reported as failures too (`lambda_kit::batch::sqs_fifo`), so an alert's `cleared`
//! never overtakes the alert. Other groups go on.
//!
//! That holds for transient errors only (a store or SNS unavailable, a concurrent
//! duplicate in progress): retrying may succeed. A permanent error
//! ([`NotifyError::is_permanent`]: not a `NotificationRequested`, a newer schema version,
//! a repeated notification id with other data, an invalid phone number, a request SNS
//! rejects as invalid) can never succeed, so the message is parked at once
//! ([`Deps::parking`]: the notify DLQ, original body, the reason in message attributes) and
//! counted as handled: the rest of its group goes on instead of following it into the DLQ
//! after 5 receives. If parking itself fails, the message is reported as failed (retried).

use application::idempotency::{Config, GuardError, Idempotency, IdempotencyError};
use application::ports::{
    Claim, EventStore, MessageSender, Outbox, OutboxEntry, ParkedMessage, Parking, PortError,
    StoredEvent,
};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{DateTime, Utc};
use domain::envelope::{DecodeError, Envelope, decode};
use domain::events::{NotificationRequested, NotificationSent, notification_stream};
use domain::ids::deterministic_id;
use lambda_kit::batch::{BatchError, body, sqs_fifo};
use tracing::Instrument;

/// The function name recorded as the `source` of the events it emits.
pub const SOURCE: &str = "notify";

/// Idempotency of notifying: once per notification id; a repeat must carry the same data.
pub fn idempotency_config() -> Config {
    Config::new(SOURCE, "/data/notificationId").validate("/data")
}

/// Why a notification was not delivered: a permanent error parks the message, a transient
/// one has it redelivered ([`NotifyError::is_permanent`]).
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// Not a `NotificationRequested` envelope, or a newer version of it: permanent.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The idempotency guard failed, or another invocation is delivering it now; permanent
    /// when the notification id was seen with other data or the request has none.
    #[error(transparent)]
    Idempotency(#[from] GuardError),
    /// The outbox, the sender or the event store failed; permanent when the service
    /// rejected the request as invalid ([`PortError::Rejected`]).
    #[error(transparent)]
    Port(#[from] PortError),
    /// The request does not serialise: permanent.
    #[error("encoding the message: {0}")]
    Encode(#[from] serde_json::Error),
    /// The recipient's phone number is not E.164 (`+` and 2 to 15 digits): permanent.
    #[error("recipient phone number {phone:?} is not E.164")]
    InvalidPhone { phone: String },
}

impl NotifyError {
    /// Whether retrying the same message can never succeed (so it is parked, not retried).
    pub fn is_permanent(&self) -> bool {
        match self {
            NotifyError::Decode(_) | NotifyError::Encode(_) | NotifyError::InvalidPhone { .. } => {
                true
            }
            NotifyError::Idempotency(err) => matches!(
                err,
                IdempotencyError::PayloadMismatch { .. } | IdempotencyError::MissingKey { .. }
            ),
            NotifyError::Port(err) => matches!(err, PortError::Rejected(_)),
        }
    }

    /// A short stable name of the error, for the parked message and the logs.
    pub fn code(&self) -> &'static str {
        match self {
            NotifyError::Decode(DecodeError::Json(_)) => "decode",
            NotifyError::Decode(DecodeError::WrongType { .. }) => "wrong-event-type",
            NotifyError::Decode(DecodeError::UnsupportedVersion { .. }) => "unsupported-version",
            NotifyError::Encode(_) => "encode",
            NotifyError::InvalidPhone { .. } => "invalid-phone",
            NotifyError::Idempotency(IdempotencyError::PayloadMismatch { .. }) => {
                "payload-mismatch"
            }
            NotifyError::Idempotency(IdempotencyError::MissingKey { .. }) => "missing-key",
            NotifyError::Idempotency(IdempotencyError::AlreadyInProgress { .. }) => "in-progress",
            NotifyError::Idempotency(_) => "idempotency",
            NotifyError::Port(PortError::Rejected(_)) => "rejected",
            NotifyError::Port(PortError::Conflict { .. }) => "conflict",
            NotifyError::Port(PortError::Backend(_)) => "backend",
        }
    }
}

/// Whether `phone` is an E.164 number: `+`, a non-zero digit, then 1 to 14 digits.
fn is_e164(phone: &str) -> bool {
    let Some(digits) = phone.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len())
        && !digits.starts_with('0')
        && digits.bytes().all(|b| b.is_ascii_digit())
}

pub struct Deps<'a> {
    pub outbox: &'a dyn Outbox,
    pub sender: &'a dyn MessageSender,
    pub events: &'a dyn EventStore,
    /// Guards each notification (see [`idempotency_config`]).
    pub idempotency: &'a Idempotency<'a>,
    /// Where messages with a permanent error go (the notify DLQ).
    pub parking: &'a dyn Parking,
}

/// Handles one FIFO batch of notification requests, in order per message group; a message
/// with a permanent error is parked, one with a transient error and the rest of its group
/// are reported for redelivery.
pub async fn handle(
    deps: &Deps<'_>,
    event: &SqsEvent,
    now: DateTime<Utc>,
) -> Result<SqsBatchResponse, BatchError> {
    sqs_fifo(&event.records, |message| notify_or_park(deps, message, now)).await
}

/// Notifies; on a permanent error parks the message and counts it as handled.
async fn notify_or_park(
    deps: &Deps<'_>,
    message: &SqsMessage,
    now: DateTime<Utc>,
) -> Result<(), NotifyError> {
    match notify_one(deps, message, now).await {
        Err(err) if err.is_permanent() => park(deps, message, &err, now).await,
        other => other,
    }
}

/// Sends `message` to the parking destination with why; a failure to park is transient.
async fn park(
    deps: &Deps<'_>,
    message: &SqsMessage,
    err: &NotifyError,
    now: DateTime<Utc>,
) -> Result<(), NotifyError> {
    let original_message_id = message.message_id.clone().unwrap_or_default();
    let group_id = message.attributes.get("MessageGroupId").cloned();
    let attributes = message
        .message_attributes
        .iter()
        .filter_map(|(name, value)| Some((name.clone(), value.string_value.clone()?)))
        .collect();
    let parked = ParkedMessage {
        body: String::from_utf8_lossy(body(message)).into_owned(),
        attributes,
        group_id,
        original_message_id,
        function: SOURCE.to_string(),
        error_code: err.code().to_string(),
        reason: err.to_string(),
        parked_at: now,
    };
    deps.parking.park(&parked).await?;
    tracing::error!(message_id = %parked.original_message_id, error_code = err.code(), error = %err, "permanent error: message parked in the notify DLQ; its group goes on");
    lambda_kit::metrics::count(lambda_kit::metrics::MESSAGES_PARKED, 1);
    Ok(())
}

async fn notify_one(
    deps: &Deps<'_>,
    message: &SqsMessage,
    now: DateTime<Utc>,
) -> Result<(), NotifyError> {
    let request = decode::<NotificationRequested>(body(message))?;
    if !is_e164(&request.data.recipient_phone) {
        return Err(NotifyError::InvalidPhone {
            phone: request.data.recipient_phone.clone(),
        });
    }
    // Instrumented (not entered): the span must follow the future across awaits.
    let span = tracing::info_span!("notify", correlation_id = %request.correlation_id, notification_id = %request.data.notification_id);
    async {
        // A redelivered notification was handled already: nothing is done again.
        let outcome = deps
            .idempotency
            .once(&request, now, || deliver(deps, &request, now))
            .await?;
        lambda_kit::fault::crash_point("notify.after_guard");
        lambda_kit::metrics::count_if(lambda_kit::metrics::DUPLICATES_SKIPPED, outcome.replayed());
        Ok(())
    }
    .instrument(span)
    .await
}

/// Claims, sends and records one notification; returns the provider's message id.
async fn deliver(
    deps: &Deps<'_>,
    request: &Envelope<NotificationRequested>,
    now: DateTime<Utc>,
) -> Result<Option<String>, NotifyError> {
    let n = &request.data;

    let entry = OutboxEntry {
        notification_id: n.notification_id.clone(),
        alert_id: n.alert_id.clone(),
        recipient_id: n.recipient_id.clone(),
        recipient_phone: n.recipient_phone.clone(),
        message: n.message.clone(),
        channel: deps.sender.channel().to_string(),
        correlation_id: request.correlation_id.clone(),
        kind: n.kind,
    };
    let provider_message_id = match deps.outbox.claim(&entry).await? {
        Claim::AlreadySent => {
            lambda_kit::fault::crash_point("notify.after_claim");
            tracing::info!("notification already sent; skipping");
            lambda_kit::metrics::count(lambda_kit::metrics::DUPLICATES_SKIPPED, 1);
            None
        }
        claim @ (Claim::New | Claim::Pending) => {
            lambda_kit::fault::crash_point("notify.after_claim");
            if claim == Claim::Pending {
                tracing::warn!("an earlier attempt did not finish; sending again");
            }
            let id = if domain::canary::is_canary_recipient(&n.recipient_id) {
                // The heartbeat got this far: counted, not texted to anyone.
                lambda_kit::metrics::count(lambda_kit::metrics::HEARTBEAT_DELIVERED, 1);
                tracing::info!(kind = n.kind.as_str(), "heartbeat notification: not sent");
                None
            } else {
                deps.sender.send(&n.recipient_phone, &n.message).await?
            };
            lambda_kit::fault::crash_point("notify.after_send");
            deps.outbox
                .mark_sent(&n.notification_id, id.as_deref())
                .await?;
            lambda_kit::fault::crash_point("notify.after_mark_sent");
            tracing::info!(channel = deps.sender.channel(), kind = n.kind.as_str(), recipient_id = %n.recipient_id, "notification sent");
            id
        }
    };

    // Appended even when the row was already sent: the earlier attempt may have stopped
    // before this point. The deterministic event id makes a repeat a no-op.
    let sent = Envelope::new(
        deterministic_id(&["NotificationSent", &n.notification_id]),
        SOURCE,
        request.child_lineage(),
        now,
        NotificationSent {
            notification_id: n.notification_id.clone(),
            alert_id: n.alert_id.clone(),
            recipient_id: n.recipient_id.clone(),
            channel: deps.sender.channel().to_string(),
            provider_message_id: provider_message_id.clone(),
            kind: n.kind,
        },
    );
    let stored = StoredEvent::from_envelope(&sent)?;
    deps.events
        .append(&notification_stream(&n.notification_id), 0, &stored)
        .await?;
    lambda_kit::fault::crash_point("notify.after_append");
    Ok(provider_message_id)
}
