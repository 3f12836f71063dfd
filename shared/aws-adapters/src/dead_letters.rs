//! [`DeadLetters`] on SQS: a dead-letter queue of poison records.

use async_trait::async_trait;
use aws_sdk_sqs::Client;

use application::ports::{DeadLetters, PoisonRecord, PortError};

use crate::attributes::{sdk_failure, sqs_attribute, sqs_trace_attributes};

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
impl DeadLetters for SqsDeadLetters {
    async fn send(&self, record: &PoisonRecord) -> Result<(), PortError> {
        let body = serde_json::to_string(record)
            .map_err(|e| PortError::backend("serialising the poison record", e))?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .set_message_system_attributes(sqs_trace_attributes())
            .message_attributes("kind", sqs_attribute(record.kind)?)
            .send()
            .await
            .map_err(|e| sdk_failure("SQS SendMessage", &e))?;
        Ok(())
    }
}
