//! DynamoDB and SQS adapters of the issue-6 ports: event stream reader, workers table,
//! rosters and family contacts in the directory table, step ledger, saga message bus.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use serde_json::Value;

use application::ports::*;
use domain::escalation::{FamilyContact, VillageRoster, Worker, family_key, roster_key};

use super::describe;
use super::dynamodb::{get_item, get_typed, item_of, put_item};

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_string())
}

fn conditional_failed<E: aws_sdk_dynamodb::error::ProvideErrorMetadata, R>(
    err: &aws_sdk_dynamodb::error::SdkError<E, R>,
) -> bool {
    err.as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "ConditionalCheckFailedException")
}

// ------------------------------------------------------------------------ event reader

// ------------------------------------------------------------------------ workers

/// The workers table: partition key `workerId`; items are [`Worker`] in camelCase.
/// Reservations are conditional updates of `reservedBy`.
pub struct DynamoWorkers {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoWorkers {
    pub fn new(config: &aws_config::SdkConfig, table: String) -> Self {
        DynamoWorkers {
            client: aws_sdk_dynamodb::Client::new(config),
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
            Err(err) => Err(PortError::Backend(format!(
                "UpdateItem {}: {}",
                self.table,
                describe(&err)
            ))),
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
            Err(err) => Err(PortError::Backend(format!(
                "UpdateItem {}: {}",
                self.table,
                describe(&err)
            ))),
        }
    }
}

// ------------------------------------------------------------------------ contacts

impl super::DynamoDirectory {
    async fn put_keyed<T: Serialize + Sync>(
        &self,
        key: String,
        value: &T,
    ) -> Result<(), PortError> {
        let mut item = item_of(value, "a directory item")?;
        // The table key; a value's own patientId (family contacts) stays in the key's prefix.
        item.insert("patientId".to_string(), s(&key));
        put_item(self.client(), self.table(), item).await
    }

    async fn get_keyed<T: serde::de::DeserializeOwned>(
        &self,
        key: String,
    ) -> Result<Option<T>, PortError> {
        get_typed(self.client(), self.table(), "patientId", &key, false).await
    }

    /// Writes a village roster (key `village#{village}`).
    pub async fn put_roster(&self, roster: &VillageRoster) -> Result<(), PortError> {
        self.put_keyed(roster_key(&roster.village), roster).await
    }

    /// Writes a family contact (key `family#{patientId}`).
    pub async fn put_family(&self, family: &FamilyContact) -> Result<(), PortError> {
        self.put_keyed(family_key(&family.patient_id), family).await
    }
}

#[async_trait]
impl Contacts for super::DynamoDirectory {
    async fn roster(&self, village: &str) -> Result<Option<VillageRoster>, PortError> {
        self.get_keyed(roster_key(village)).await
    }

    async fn family(&self, patient_id: &str) -> Result<Option<FamilyContact>, PortError> {
        let family: Option<FamilyContact> = self.get_keyed(family_key(patient_id)).await?;
        Ok(family.map(|f| FamilyContact {
            patient_id: patient_id.to_string(),
            ..f
        }))
    }
}

// ------------------------------------------------------------------------ step ledger

/// The step ledger table: partition key `stepKey`; `status` pending / done, `outcome` JSON.
pub struct DynamoLedger {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoLedger {
    pub fn new(config: &aws_config::SdkConfig, table: String) -> Self {
        DynamoLedger {
            client: aws_sdk_dynamodb::Client::new(config),
            table,
        }
    }
}

#[async_trait]
impl StepLedger for DynamoLedger {
    async fn claim(&self, key: &str) -> Result<LedgerClaim, PortError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("stepKey", s(key))
            .item("status", s("pending"))
            .item("claimedAt", s(&chrono::Utc::now().to_rfc3339()))
            .condition_expression("attribute_not_exists(stepKey)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(LedgerClaim::New),
            Err(err) if conditional_failed(&err) => {
                let item = get_item(&self.client, &self.table, "stepKey", key, true).await?;
                let outcome = item
                    .as_ref()
                    .and_then(|item| item.get("outcome"))
                    .and_then(|v| v.as_s().ok());
                match outcome {
                    Some(text) => serde_json::from_str::<Value>(text)
                        .map(LedgerClaim::Done)
                        .map_err(|e| PortError::backend(&format!("decoding outcome of {key}"), e)),
                    None => Ok(LedgerClaim::InProgress),
                }
            }
            Err(err) => Err(PortError::Backend(format!(
                "PutItem {}: {}",
                self.table,
                describe(&err)
            ))),
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
            .expression_attribute_values(":at", s(&chrono::Utc::now().to_rfc3339()))
            .send()
            .await
            .map_err(|e| {
                PortError::Backend(format!("UpdateItem {}: {}", self.table, describe(&e)))
            })?;
        Ok(())
    }
}

// ------------------------------------------------------------------------ message bus

/// Sends saga, step and escalation messages to their SQS queues.
pub struct SqsBus {
    client: aws_sdk_sqs::Client,
    saga_queue_url: String,
    steps_queue_url: String,
    escalation_queue_url: String,
}

impl SqsBus {
    pub fn new(
        config: &aws_config::SdkConfig,
        saga_queue_url: String,
        steps_queue_url: String,
        escalation_queue_url: String,
    ) -> Self {
        SqsBus {
            client: aws_sdk_sqs::Client::new(config),
            saga_queue_url,
            steps_queue_url,
            escalation_queue_url,
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
        };
        let attribute = aws_sdk_sqs::types::MessageAttributeValue::builder()
            .data_type("String")
            .string_value(event_type)
            .build()
            .map_err(|e| PortError::backend("building a message attribute", e))?;
        self.client
            .send_message()
            .queue_url(url)
            .message_body(body)
            .delay_seconds(i32::try_from(delay_seconds.min(900)).unwrap_or(900))
            .message_attributes("eventType", attribute)
            .send()
            .await
            .map_err(|e| PortError::Backend(format!("SQS SendMessage: {}", describe(&e))))?;
        Ok(())
    }
}
