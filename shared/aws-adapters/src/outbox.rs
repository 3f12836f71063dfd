//! [`Outbox`] on DynamoDB: the notifications outbox table.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::ReturnValue;
use chrono::Utc;

use application::ports::{Claim, Outbox, OutboxEntry, PortError};

use crate::attributes::{conditional_failed, n, s, sdk_failure, string_attr};

/// The notifications outbox: one item per notification id, created `pending` by a
/// conditional put (the claim), then marked `sent`. `kind` is `alert` or `cleared`.
pub struct DynamoOutbox {
    client: Client,
    table: String,
}

impl DynamoOutbox {
    pub fn new(config: &aws_config::SdkConfig, table: String) -> Self {
        DynamoOutbox {
            client: Client::new(config),
            table,
        }
    }
}

#[async_trait]
impl Outbox for DynamoOutbox {
    async fn claim(&self, entry: &OutboxEntry) -> Result<Claim, PortError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("notificationId", s(&entry.notification_id))
            .item("alertId", s(&entry.alert_id))
            .item("recipientId", s(&entry.recipient_id))
            .item("recipientPhone", s(&entry.recipient_phone))
            .item("message", s(&entry.message))
            .item("channel", s(&entry.channel))
            .item("correlationId", s(&entry.correlation_id))
            .item("kind", s(entry.kind.as_str()))
            .item("status", s("pending"))
            .item("attempts", n(1))
            .item("createdAt", s(&Utc::now().to_rfc3339()))
            .condition_expression("attribute_not_exists(notificationId)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(Claim::New),
            Err(err) if conditional_failed(&err) => {
                // Count the attempt and learn the status in one conditional-free update.
                let out = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .key("notificationId", s(&entry.notification_id))
                    .update_expression("ADD attempts :one")
                    .expression_attribute_values(":one", n(1))
                    .return_values(ReturnValue::AllNew)
                    .send()
                    .await
                    .map_err(|e| sdk_failure(&format!("UpdateItem {}", self.table), &e))?;
                let status = out.attributes().and_then(|a| string_attr(a, "status"));
                Ok(if status == Some("sent") {
                    Claim::AlreadySent
                } else {
                    Claim::Pending
                })
            }
            Err(err) => Err(sdk_failure(&format!("PutItem {}", self.table), &err)),
        }
    }

    async fn mark_sent(
        &self,
        notification_id: &str,
        provider_message_id: Option<&str>,
    ) -> Result<(), PortError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("notificationId", s(notification_id))
            .condition_expression("attribute_exists(notificationId)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":sent", s("sent"))
            .expression_attribute_values(":at", s(&Utc::now().to_rfc3339()));
        request = match provider_message_id {
            Some(id) => request
                .update_expression("SET #status = :sent, sentAt = :at, providerMessageId = :pid")
                .expression_attribute_values(":pid", s(id)),
            None => request.update_expression("SET #status = :sent, sentAt = :at"),
        };
        request
            .send()
            .await
            .map_err(|e| sdk_failure(&format!("UpdateItem {}", self.table), &e))?;
        Ok(())
    }
}
