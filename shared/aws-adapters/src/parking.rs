//! [`Parking`] on SQS: permanently failing messages go to a queue (the notify DLQ) with
//! their original body, and why in message attributes.

use async_trait::async_trait;
use aws_sdk_sqs::Client;

use application::ports::{ParkedMessage, Parking, PortError};

use crate::attributes::{sdk_failure, sqs_attribute, sqs_trace_attributes};
use crate::notification_queue::fifo_token;

/// SQS allows 10 message attributes; the parking ones take 5.
const MAX_ATTRIBUTES: usize = 10;
/// Longest `parkedReason` kept (the error text is cut there).
const MAX_REASON_CHARS: usize = 1000;

/// Sends parked messages to a queue. The body is the original body, unchanged; the message
/// attributes are the original string attributes plus `parkedReason` (the error text),
/// `errorCode`, `originalMessageId`, `function` and `parkedAt` (RFC 3339). On a FIFO queue
/// (URL ending in `.fifo`) the message group is the original one (parked messages of a group
/// stay in order) and the deduplication id is the original message id, so parking the same
/// message again within SQS's 5-minute window (a retry after a crash) stores it once.
pub struct SqsParking {
    client: Client,
    queue_url: String,
}

impl SqsParking {
    pub fn new(config: &aws_config::SdkConfig, queue_url: String) -> Self {
        SqsParking {
            client: Client::new(config),
            queue_url,
        }
    }
}

#[async_trait]
impl Parking for SqsParking {
    async fn park(&self, message: &ParkedMessage) -> Result<(), PortError> {
        let reason: String = message.reason.chars().take(MAX_REASON_CHARS).collect();
        let parking = [
            ("parkedReason", reason.as_str()),
            ("errorCode", message.error_code.as_str()),
            ("originalMessageId", message.original_message_id.as_str()),
            ("function", message.function.as_str()),
            ("parkedAt", &message.parked_at.to_rfc3339()),
        ];
        let mut send = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(&message.body)
            .set_message_system_attributes(sqs_trace_attributes());
        for (name, value) in parking {
            send = send.message_attributes(name, sqs_attribute(value)?);
        }
        let kept = message
            .attributes
            .iter()
            .filter(|(name, value)| {
                !value.is_empty() && !parking.iter().any(|(parked, _)| parked == name)
            })
            .take(MAX_ATTRIBUTES - parking.len());
        for (name, value) in kept {
            send = send.message_attributes(name, sqs_attribute(value)?);
        }
        if self.queue_url.ends_with(".fifo") {
            let group = message.group_id.as_deref().unwrap_or("parked");
            send = send
                .message_group_id(fifo_token(group))
                .message_deduplication_id(fifo_token(&message.original_message_id));
        }
        send.send()
            .await
            .map_err(|e| sdk_failure("SQS SendMessage (park)", &e))?;
        Ok(())
    }
}
