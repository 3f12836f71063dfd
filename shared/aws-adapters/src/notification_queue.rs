//! [`NotificationQueue`] on SQS: the (FIFO) notify queue.

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use sha2::{Digest, Sha256};

use application::ports::{NotificationQueue, PortError};
use domain::envelope::Envelope;
use domain::events::NotificationRequested;

use crate::attributes::{sdk_failure, sqs_attribute};

/// Sends notification requests to the notify queue.
pub struct SqsNotificationQueue {
    client: Client,
    queue_url: String,
}

impl SqsNotificationQueue {
    pub fn new(config: &aws_config::SdkConfig, queue_url: String) -> Self {
        SqsNotificationQueue {
            client: Client::new(config),
            queue_url,
        }
    }
}

#[async_trait]
impl NotificationQueue for SqsNotificationQueue {
    async fn send(&self, request: &Envelope<NotificationRequested>) -> Result<(), PortError> {
        let body = serde_json::to_string(request)
            .map_err(|e| PortError::backend("serialising the notification request", e))?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .message_attributes("eventType", sqs_attribute(&request.event_type)?)
            .message_attributes("correlationId", sqs_attribute(&request.correlation_id)?)
            // The notify queue is FIFO: one message group per recipient keeps their
            // notifications in order; the notification id deduplicates resends.
            .message_group_id(fifo_token(&request.data.recipient_id))
            .message_deduplication_id(fifo_token(&request.data.notification_id))
            .send()
            .await
            .map_err(|e| sdk_failure("SQS SendMessage", &e))?;
        Ok(())
    }
}

/// A FIFO `MessageGroupId` / `MessageDeduplicationId`: the value itself when SQS accepts it
/// (1-128 characters, ASCII letters, digits and punctuation), else its SHA-256 in hex.
pub fn fifo_token(value: &str) -> String {
    let accepted = !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b.is_ascii_punctuation());
    if accepted {
        value.to_string()
    } else {
        format!("{:x}", Sha256::digest(value.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::fifo_token;

    #[test]
    fn fifo_tokens_keep_valid_ids_and_hash_the_rest() {
        assert_eq!(fifo_token("w-001"), "w-001");
        assert_eq!(fifo_token("n-a1b2:c#3"), "n-a1b2:c#3");
        for odd in ["", "with space", "é", &"x".repeat(129)] {
            let token = fifo_token(odd);
            assert_eq!(token.len(), 64, "{odd:?}");
            assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
        }
        assert_ne!(fifo_token("with space"), fifo_token("with  space"));
    }
}
