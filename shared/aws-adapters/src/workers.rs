//! [`Workers`] on DynamoDB: the community health workers table and its reservations.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;

use application::ports::{PortError, Workers};
use domain::escalation::Worker;

use crate::attributes::{conditional_failed, s, sdk_failure};
use crate::table::{get_typed, item_of, put_item};

/// The workers table: partition key `workerId`; items are [`Worker`] in camelCase.
/// Reservations are conditional updates of `reservedBy`.
pub struct DynamoWorkers {
    client: Client,
    table: String,
}

impl DynamoWorkers {
    pub fn new(config: &aws_config::SdkConfig, table: String) -> Self {
        DynamoWorkers {
            client: Client::new(config),
            table,
        }
    }

    /// Writes (or replaces) a worker: seeding scripts, the demo and tests.
    pub async fn put(&self, worker: &Worker) -> Result<(), PortError> {
        put_item(&self.client, &self.table, item_of(worker, "a worker")?).await
    }
}

#[async_trait]
impl Workers for DynamoWorkers {
    async fn get(&self, worker_id: &str) -> Result<Option<Worker>, PortError> {
        get_typed(&self.client, &self.table, "workerId", worker_id, true).await
    }

    async fn reserve(&self, worker_id: &str, emergency_id: &str) -> Result<bool, PortError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("workerId", s(worker_id))
            .update_expression("SET reservedBy = :e")
            .condition_expression(
                "attribute_exists(workerId) AND available = :yes \
                 AND (attribute_not_exists(reservedBy) OR reservedBy = :e)",
            )
            .expression_attribute_values(":e", s(emergency_id))
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) if conditional_failed(&err) => Ok(false),
            Err(err) => Err(sdk_failure(&format!("UpdateItem {}", self.table), &err)),
        }
    }

    async fn release(&self, worker_id: &str, emergency_id: &str) -> Result<(), PortError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("workerId", s(worker_id))
            .update_expression("REMOVE reservedBy")
            .condition_expression("reservedBy = :e")
            .expression_attribute_values(":e", s(emergency_id))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Not held by this emergency (already released): nothing to undo.
            Err(err) if conditional_failed(&err) => Ok(()),
            Err(err) => Err(sdk_failure(&format!("UpdateItem {}", self.table), &err)),
        }
    }
}
