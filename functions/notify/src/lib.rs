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
//! The notify queue is FIFO with one message group per recipient: messages are processed in
//! order, and once a message fails the later messages of its recipient in the batch are not
//! tried and are reported as failures too (`lambda_kit::batch::sqs_fifo`), so a recipient never
//! gets notifications out of order. Other recipients go on.

use application::idempotency::{Config, GuardError, Idempotency};
use application::ports::{
    Claim, EventStore, MessageSender, Outbox, OutboxEntry, PortError, StoredEvent,
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

/// Why a notification was not delivered (the message is redelivered).
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// Not a `NotificationRequested` envelope (it goes to the DLQ after its retries).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The idempotency guard failed, or another invocation is delivering it now.
    #[error(transparent)]
    Idempotency(#[from] GuardError),
    /// The outbox, the sender or the event store failed.
    #[error(transparent)]
    Port(#[from] PortError),
    #[error("encoding the message: {0}")]
    Encode(#[from] serde_json::Error),
}

pub struct Deps<'a> {
    pub outbox: &'a dyn Outbox,
    pub sender: &'a dyn MessageSender,
    pub events: &'a dyn EventStore,
    /// Guards each notification (see [`idempotency_config`]).
    pub idempotency: &'a Idempotency<'a>,
}

/// Handles one FIFO batch of notification requests, in order per message group; a failed
/// message and the rest of its group are reported for redelivery.
pub async fn handle(
    deps: &Deps<'_>,
    event: &SqsEvent,
    now: DateTime<Utc>,
) -> Result<SqsBatchResponse, BatchError> {
    sqs_fifo(&event.records, |message| notify_one(deps, message, now)).await
}

async fn notify_one(
    deps: &Deps<'_>,
    message: &SqsMessage,
    now: DateTime<Utc>,
) -> Result<(), NotifyError> {
    let request = decode::<NotificationRequested>(body(message))?;
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
            let id = deps.sender.send(&n.recipient_phone, &n.message).await?;
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
