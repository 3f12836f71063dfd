//! [`NotificationQueue`] on SQS: the (FIFO) notify queue.

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use sha2::{Digest, Sha256};

use application::ports::{NotificationQueue, PortError};
use domain::envelope::Envelope;
use domain::events::NotificationRequested;

use crate::attributes::{sdk_failure, sqs_attribute, sqs_trace_attributes};

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
            .set_message_system_attributes(sqs_trace_attributes())
            .message_attributes("eventType", sqs_attribute(&request.event_type)?)
            .message_attributes("correlationId", sqs_attribute(&request.correlation_id)?)
            // The notify queue is FIFO: see `notification_group_id`; the notification id
            // deduplicates resends.
            .message_group_id(notification_group_id(&request.data))
            .message_deduplication_id(fifo_token(&request.data.notification_id))
            .send()
            .await
            .map_err(|e| sdk_failure("SQS SendMessage", &e))?;
        Ok(())
    }
}

/// The FIFO message group of a notification request: one per recipient and alert
/// (`alertId` holds the emergency id for saga notifications).
///
/// - Order where it matters: an alert's `cleared` notification has the same recipient and
///   alert id as the alert's own, so it is in the same group, behind it, and can never
///   overtake it (notify handles a group in order and holds back its tail after a failure).
/// - No blocking across alerts: a message that keeps failing holds back only the rest of
///   its own alert for that recipient. Hospital escalations all go to one recipient (the
///   district hospital), but each emergency is its own group, so one emergency can never
///   block another's. Notifications of two different alerts to the same worker are not
///   ordered with respect to each other; nothing depends on that order.
///
/// Both parts go into one SHA-256 when the plain `recipient#alert` is not a valid token.
pub fn notification_group_id(request: &NotificationRequested) -> String {
    fifo_token(&format!("{}#{}", request.recipient_id, request.alert_id))
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
    use domain::events::{NotificationKind, NotificationRequested, Severity};

    use super::{fifo_token, notification_group_id};

    fn request(recipient: &str, alert: &str, kind: NotificationKind) -> NotificationRequested {
        NotificationRequested {
            notification_id: format!("n-{recipient}-{alert}-{}", kind.as_str()),
            alert_id: alert.into(),
            patient_id: "p-1".into(),
            severity: Severity::Critical,
            recipient_id: recipient.into(),
            recipient_phone: "+254700000001".into(),
            message: "text".into(),
            kind,
        }
    }

    #[test]
    fn one_group_per_recipient_and_alert() {
        let alert = request("w-001", "a-1", NotificationKind::Alert);
        let cleared = request("w-001", "a-1", NotificationKind::Cleared);
        // An alert and its cleared notification share a group: cleared stays behind.
        assert_eq!(
            notification_group_id(&alert),
            notification_group_id(&cleared)
        );
        assert_eq!(notification_group_id(&alert), "w-001#a-1");
        // Two emergencies escalated to the same hospital are two groups.
        let hospital_1 = request("district-hospital", "em-1", NotificationKind::Alert);
        let hospital_2 = request("district-hospital", "em-2", NotificationKind::Alert);
        assert_ne!(
            notification_group_id(&hospital_1),
            notification_group_id(&hospital_2)
        );
        // Another recipient of the same alert is another group.
        let other = request("w-002", "a-1", NotificationKind::Alert);
        assert_ne!(notification_group_id(&alert), notification_group_id(&other));
    }

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
