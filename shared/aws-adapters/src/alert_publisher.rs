//! [`AlertPublisher`] on SNS: the alerts topic.

use async_trait::async_trait;
use aws_sdk_sns::Client;

use application::ports::{AlertPublisher, PortError};
use domain::envelope::Envelope;
use domain::events::{AlertRaised, AlertResolved};
use domain::notices;

use crate::attributes::{sdk_failure, sns_attribute};

/// Publishes alert events to the alerts topic. Queues get the JSON envelope (email and SMS
/// subscribers a notice without health data, `domain::notices`); the
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

    /// Publishes `envelope` as JSON with the message attributes `attributes`: queues get
    /// the envelope, the topic's email and SMS subscribers `notice`
    /// (`MessageStructure: json`, see `domain::notices`).
    async fn publish_envelope<T: serde::Serialize>(
        &self,
        envelope: &Envelope<T>,
        notice: &str,
        attributes: &[(&str, &str)],
    ) -> Result<(), PortError> {
        let body = serde_json::to_string(envelope)
            .map_err(|e| PortError::backend("serialising the event", e))?;
        let mut request = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .message_structure("json")
            .message(notices::topic_message(&body, notice))
            .message_attributes("eventType", sns_attribute(&envelope.event_type)?)
            .message_attributes("correlationId", sns_attribute(&envelope.correlation_id)?);
        for (name, value) in attributes {
            request = request.message_attributes(*name, sns_attribute(value)?);
        }
        request
            .send()
            .await
            .map_err(|e| sdk_failure("SNS Publish", &e))?;
        Ok(())
    }
}

#[async_trait]
impl AlertPublisher for SnsAlertPublisher {
    async fn publish(&self, alert: &Envelope<AlertRaised>) -> Result<(), PortError> {
        let data = &alert.data;
        self.publish_envelope(
            alert,
            &notices::raised_notice(data),
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
            &notices::resolved_notice(data),
            &[
                ("severity", data.severity.as_str()),
                ("alertType", &data.alert_type),
            ],
        )
        .await
    }
}
