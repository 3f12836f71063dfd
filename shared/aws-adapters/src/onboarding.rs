//! [`DirectoryWriter`] on DynamoDB: the onboarding API's writes to the directory and workers
//! tables, one `TransactWriteItems` per call (all or nothing, at most 100 items).

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};

use application::ports::{DirectoryWrite, DirectoryWriter, MAX_DIRECTORY_WRITES, PortError};
use domain::access::device_key;
use domain::escalation::{family_key, roster_key};

use crate::attributes::{Item, describe, s};
use crate::table::item_of;

/// The directory table (patients, families, devices, rosters) and the workers table.
pub struct DynamoOnboarding {
    client: Client,
    directory_table: String,
    workers_table: String,
}

impl DynamoOnboarding {
    pub fn new(
        config: &aws_config::SdkConfig,
        directory_table: String,
        workers_table: String,
    ) -> Self {
        DynamoOnboarding {
            client: Client::new(config),
            directory_table,
            workers_table,
        }
    }

    fn put(&self, mut item: Item, key: Option<String>) -> Result<Put, PortError> {
        if let Some(key) = key {
            item.insert("patientId".to_string(), s(&key));
        }
        Put::builder()
            .table_name(&self.directory_table)
            .set_item(Some(item))
            .build()
            .map_err(|e| PortError::backend("building a Put", e))
    }

    fn delete(&self, key: String) -> Result<TransactWriteItem, PortError> {
        let delete = Delete::builder()
            .table_name(&self.directory_table)
            .key("patientId", s(&key))
            .build()
            .map_err(|e| PortError::backend("building a Delete", e))?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    fn item(&self, write: &DirectoryWrite) -> Result<TransactWriteItem, PortError> {
        let put = |put: Put| Ok(TransactWriteItem::builder().put(put).build());
        match write {
            DirectoryWrite::Patient(entry) => put(self.put(item_of(entry, "a patient")?, None)?),
            DirectoryWrite::Family(family) => put(self.put(
                item_of(family, "a family contact")?,
                Some(family_key(&family.patient_id)),
            )?),
            DirectoryWrite::RemoveFamily(patient_id) => self.delete(family_key(patient_id)),
            DirectoryWrite::Device { client_id, binding } => put(self.put(
                item_of(binding, "a device binding")?,
                Some(device_key(client_id)),
            )?),
            DirectoryWrite::RemoveDevice(client_id) => self.delete(device_key(client_id)),
            DirectoryWrite::Roster { roster, previous } => {
                let mut request = self.put(
                    item_of(roster, "a roster")?,
                    Some(roster_key(&roster.village)),
                )?;
                request = match previous {
                    None => {
                        request.condition_expression =
                            Some("attribute_not_exists(patientId)".into());
                        request
                    }
                    Some(previous) => {
                        let ids = previous.worker_ids.iter().map(|id| s(id)).collect();
                        request.condition_expression =
                            Some("workerIds = :ids AND supervisorId = :sup".into());
                        request.expression_attribute_values = Some(
                            [
                                (":ids".to_string(), AttributeValue::L(ids)),
                                (":sup".to_string(), s(&previous.supervisor_id)),
                            ]
                            .into(),
                        );
                        request
                    }
                };
                put(request)
            }
            DirectoryWrite::Worker(worker) => {
                let update = Update::builder()
                    .table_name(&self.workers_table)
                    .key("workerId", s(&worker.worker_id))
                    .update_expression(
                        "SET #name = :name, #phone = :phone, #village = :village, \
                         #available = :available, #language = :language",
                    )
                    .expression_attribute_names("#name", "name")
                    .expression_attribute_names("#phone", "phone")
                    .expression_attribute_names("#village", "village")
                    .expression_attribute_names("#available", "available")
                    .expression_attribute_names("#language", "language")
                    .expression_attribute_values(":name", s(&worker.name))
                    .expression_attribute_values(":phone", s(&worker.phone))
                    .expression_attribute_values(":village", s(&worker.village))
                    .expression_attribute_values(
                        ":available",
                        AttributeValue::Bool(worker.available),
                    )
                    .expression_attribute_values(":language", s(&worker.language))
                    .build()
                    .map_err(|e| PortError::backend("building an Update", e))?;
                Ok(TransactWriteItem::builder().update(update).build())
            }
        }
    }
}

#[async_trait]
impl DirectoryWriter for DynamoOnboarding {
    async fn write_all(&self, writes: &[DirectoryWrite]) -> Result<(), PortError> {
        if writes.is_empty() {
            return Ok(());
        }
        if writes.len() > MAX_DIRECTORY_WRITES {
            return Err(PortError::Backend(format!(
                "{} writes in one transaction; at most {MAX_DIRECTORY_WRITES}",
                writes.len()
            )));
        }
        let items = writes
            .iter()
            .map(|w| self.item(w))
            .collect::<Result<Vec<_>, _>>()?;
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => {
                let text = describe(&err);
                let condition_failed = match err.as_service_error() {
                    Some(TransactWriteItemsError::TransactionCanceledException(e)) => e
                        .cancellation_reasons()
                        .iter()
                        .any(|r| r.code() == Some("ConditionalCheckFailed")),
                    _ => false,
                } || text.contains("ConditionalCheckFailed");
                if condition_failed {
                    Err(PortError::Conflict {
                        key: "a village roster".into(),
                        expected: 0,
                        actual: None,
                    })
                } else {
                    Err(PortError::Backend(format!("TransactWriteItems: {text}")))
                }
            }
        }
    }
}
