//! [`StepLedger`] on DynamoDB: the saga's step ledger table (one claim per step key).

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use serde_json::Value;

use application::ports::{LedgerClaim, PortError, StepLedger};

use crate::attributes::{conditional_failed, s, sdk_failure, string_attr};
use crate::table::get_item;

/// The step ledger table: partition key `stepKey`; `status` pending / done, `outcome` JSON.
pub struct DynamoLedger {
    client: Client,
    table: String,
}

impl DynamoLedger {
    pub fn new(config: &aws_config::SdkConfig, table: String) -> Self {
        DynamoLedger {
            client: Client::new(config),
            table,
        }
    }
}

#[async_trait]
impl StepLedger for DynamoLedger {
    async fn claim(&self, key: &str, now: DateTime<Utc>) -> Result<LedgerClaim, PortError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("stepKey", s(key))
            .item("status", s("pending"))
            .item("claimedAt", s(&now.to_rfc3339()))
            .condition_expression("attribute_not_exists(stepKey)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(LedgerClaim::New),
            Err(err) if conditional_failed(&err) => {
                let item = get_item(&self.client, &self.table, "stepKey", key, true).await?;
                match item.as_ref().and_then(|item| string_attr(item, "outcome")) {
                    Some(text) => serde_json::from_str::<Value>(text)
                        .map(LedgerClaim::Done)
                        .map_err(|e| PortError::backend(&format!("decoding outcome of {key}"), e)),
                    None => Ok(LedgerClaim::InProgress),
                }
            }
            Err(err) => Err(sdk_failure(&format!("PutItem {}", self.table), &err)),
        }
    }

    async fn complete(&self, key: &str, outcome: &Value) -> Result<(), PortError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("stepKey", s(key))
            .update_expression("SET #status = :done, outcome = :o, doneAt = :at")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":done", s("done"))
            .expression_attribute_values(":o", s(&outcome.to_string()))
            .expression_attribute_values(":at", s(&Utc::now().to_rfc3339()))
            .send()
            .await
            .map_err(|e| sdk_failure(&format!("UpdateItem {}", self.table), &e))?;
        Ok(())
    }
}
