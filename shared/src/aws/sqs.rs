use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::MessageAttributeValue;

use crate::envelope::Envelope;
use crate::events::NotificationRequested;
use crate::ports::{NotificationQueue, PortError};

use super::describe;

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

fn attribute(value: &str) -> Result<MessageAttributeValue, PortError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| PortError::backend("building a message attribute", e))
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
            .message_attributes("eventType", attribute(&request.event_type)?)
            .message_attributes("correlationId", attribute(&request.correlation_id)?)
            .send()
            .await
            .map_err(|e| PortError::Backend(format!("SQS SendMessage: {}", describe(&e))))?;
        Ok(())
    }
}

/// Sends poison records to a dead-letter queue as JSON.
pub struct SqsDeadLetters {
    client: Client,
    queue_url: String,
}

impl SqsDeadLetters {
    pub fn new(config: &aws_config::SdkConfig, queue_url: String) -> Self {
        SqsDeadLetters {
            client: Client::new(config),
            queue_url,
        }
    }
}

#[async_trait]
impl crate::ports::DeadLetters for SqsDeadLetters {
    async fn send(&self, record: &crate::ports::PoisonRecord) -> Result<(), PortError> {
        let body = serde_json::to_string(record)
            .map_err(|e| PortError::backend("serialising the poison record", e))?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .message_attributes("kind", attribute(record.kind)?)
            .send()
            .await
            .map_err(|e| PortError::Backend(format!("SQS SendMessage: {}", describe(&e))))?;
        Ok(())
    }
}
