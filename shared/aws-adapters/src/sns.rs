use async_trait::async_trait;
use aws_sdk_sns::Client;
use aws_sdk_sns::types::MessageAttributeValue;

use application::ports::{AlertPublisher, MessageSender, PortError};
use domain::envelope::Envelope;
use domain::events::{AlertRaised, AlertResolved};

use super::describe;

fn attribute(value: &str) -> Result<MessageAttributeValue, PortError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| PortError::backend("building a message attribute", e))
}

/// Publishes alert events to the alerts topic. The message is the JSON envelope; the
/// attributes drive the subscriptions' filter policies: `eventType` (`AlertRaised` or
/// `AlertResolved`), `severity`, `alertType`, `correlationId`, and for raised alerts
/// `village` and `dispatch` (`auto`, or `manual` for a critical alert found in readings
/// older than the auto-dispatch cut-off).
pub struct SnsAlertPublisher {
    client: Client,
    topic_arn: String,
}

impl SnsAlertPublisher {
    pub fn new(config: &aws_config::SdkConfig, topic_arn: String) -> Self {
        SnsAlertPublisher {
            client: Client::new(config),
            topic_arn,
        }
    }
}

impl SnsAlertPublisher {
    /// Publishes `envelope` as JSON with the message attributes `attributes`.
    async fn publish_envelope<T: serde::Serialize>(
        &self,
        envelope: &Envelope<T>,
        attributes: &[(&str, &str)],
    ) -> Result<(), PortError> {
        let body = serde_json::to_string(envelope)
            .map_err(|e| PortError::backend("serialising the event", e))?;
        let mut request = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .message(body)
            .message_attributes("eventType", attribute(&envelope.event_type)?)
            .message_attributes("correlationId", attribute(&envelope.correlation_id)?);
        for (name, value) in attributes {
            request = request.message_attributes(*name, attribute(value)?);
        }
        request
            .send()
            .await
            .map_err(|e| PortError::Backend(format!("SNS Publish: {}", describe(&e))))?;
        Ok(())
    }
}

#[async_trait]
impl AlertPublisher for SnsAlertPublisher {
    async fn publish(&self, alert: &Envelope<AlertRaised>) -> Result<(), PortError> {
        let data = &alert.data;
        self.publish_envelope(
            alert,
            &[
                ("severity", data.severity.as_str()),
                ("alertType", &data.alert_type),
                ("village", &data.village),
                ("dispatch", data.dispatch()),
            ],
        )
        .await
    }

    async fn publish_resolved(&self, resolved: &Envelope<AlertResolved>) -> Result<(), PortError> {
        let data = &resolved.data;
        self.publish_envelope(
            resolved,
            &[
                ("severity", data.severity.as_str()),
                ("alertType", &data.alert_type),
            ],
        )
        .await
    }
}

/// Sends text messages as SMS through SNS (`Publish` with `PhoneNumber`).
pub struct SnsSms {
    client: Client,
}

impl SnsSms {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        SnsSms {
            client: Client::new(config),
        }
    }
}

#[async_trait]
impl MessageSender for SnsSms {
    fn channel(&self) -> &'static str {
        "sms"
    }

    async fn send(&self, phone: &str, message: &str) -> Result<Option<String>, PortError> {
        let out = self
            .client
            .publish()
            .phone_number(phone)
            .message(message)
            .message_attributes("AWS.SNS.SMS.SMSType", attribute("Transactional")?)
            .send()
            .await
            .map_err(|e| PortError::Backend(format!("SNS SMS Publish: {}", describe(&e))))?;
        Ok(out.message_id().map(str::to_string))
    }
}
