//! [`MessageSender`] on SNS: text messages sent as SMS.

use async_trait::async_trait;
use aws_sdk_sns::Client;
use aws_sdk_sns::error::ProvideErrorMetadata;

use application::ports::{MessageSender, PortError};

use crate::attributes::{describe, sdk_failure, sns_attribute};

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
            .message_attributes("AWS.SNS.SMS.SMSType", sns_attribute("Transactional")?)
            .send()
            .await
            .map_err(|e| {
                // An invalid phone number or message: sending it again cannot succeed.
                let code = e.as_service_error().and_then(|s| s.code());
                if matches!(
                    code,
                    Some("InvalidParameter" | "ParameterValueInvalid" | "InvalidParameterValue")
                ) {
                    PortError::Rejected(describe(&e))
                } else {
                    sdk_failure("SNS SMS Publish", &e)
                }
            })?;
        Ok(out.message_id().map(str::to_string))
    }
}
