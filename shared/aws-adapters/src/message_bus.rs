//! [`MessageBus`] on SQS: the saga, step, escalation and timer queues.

use async_trait::async_trait;
use aws_sdk_sqs::Client;

use application::ports::{Channel, MessageBus, PortError};

use crate::attributes::{sdk_failure, sqs_attribute, sqs_trace_attributes};

/// Sends saga, step and escalation messages to their SQS queues.
pub struct SqsBus {
    client: Client,
    saga_queue_url: String,
    steps_queue_url: String,
    escalation_queue_url: String,
    timers_queue_url: String,
}

/// The queue URL of each [`Channel`].
pub struct ChannelUrls {
    pub saga: String,
    pub steps: String,
    pub escalation: String,
    pub timers: String,
}

impl SqsBus {
    pub fn new(config: &aws_config::SdkConfig, urls: ChannelUrls) -> Self {
        SqsBus {
            client: Client::new(config),
            saga_queue_url: urls.saga,
            steps_queue_url: urls.steps,
            escalation_queue_url: urls.escalation,
            timers_queue_url: urls.timers,
        }
    }
}

#[async_trait]
impl MessageBus for SqsBus {
    async fn send(
        &self,
        channel: Channel,
        event_type: &str,
        body: &str,
        delay_seconds: u32,
    ) -> Result<(), PortError> {
        let url = match channel {
            Channel::Saga => &self.saga_queue_url,
            Channel::Steps => &self.steps_queue_url,
            Channel::Escalation => &self.escalation_queue_url,
            Channel::Timers => &self.timers_queue_url,
        };
        self.client
            .send_message()
            .queue_url(url)
            .message_body(body)
            .set_message_system_attributes(sqs_trace_attributes())
            .delay_seconds(i32::try_from(delay_seconds.min(900)).unwrap_or(900))
            .message_attributes("eventType", sqs_attribute(event_type)?)
            .send()
            .await
            .map_err(|e| sdk_failure("SQS SendMessage", &e))?;
        Ok(())
    }
}
