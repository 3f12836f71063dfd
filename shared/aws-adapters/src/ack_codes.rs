//! [`AckCodes`] on DynamoDB: each code is an item `ack#{code}` of the directory table
//! (beside the patients, `village#` rosters and `family#` contacts), with the target it
//! acknowledges in `targetKind` and `targetId`.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::ReturnValue;

use application::ports::{AckCodes, PortError, Registered};
use domain::ack::{AckCode, AckTarget};

use crate::attributes::{Item, conditional_failed, s, sdk_failure, string_attr};
use crate::table::get_item;

/// Directory-table key of a code (patient ids never start with `ack#`).
pub fn ack_code_key(code: &AckCode) -> String {
    format!("ack#{code}")
}

/// The codes in the directory table (key attribute `patientId`).
pub struct DynamoAckCodes {
    client: Client,
    table: String,
}

impl DynamoAckCodes {
    pub fn new(config: &aws_config::SdkConfig, table: String) -> Self {
        DynamoAckCodes {
            client: Client::new(config),
            table,
        }
    }
}

#[async_trait]
impl AckCodes for DynamoAckCodes {
    /// One conditional `PutItem`: written when the key is free or already holds this very
    /// target (the old item comes back: [`Registered::Existing`]); a code of another target
    /// fails the condition ([`Registered::Taken`]) and is left as it is.
    async fn register(&self, code: &AckCode, target: &AckTarget) -> Result<Registered, PortError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("patientId", s(&ack_code_key(code)))
            .item("code", s(code.as_str()))
            .item("targetKind", s(target.kind()))
            .item("targetId", s(target.id()))
            .condition_expression(
                "attribute_not_exists(patientId) OR (targetKind = :kind AND targetId = :id)",
            )
            .expression_attribute_values(":kind", s(target.kind()))
            .expression_attribute_values(":id", s(target.id()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(out) if out.attributes.as_ref().is_some_and(|old| !old.is_empty()) => {
                Ok(Registered::Existing)
            }
            Ok(_) => Ok(Registered::New),
            Err(err) if conditional_failed(&err) => Ok(Registered::Taken),
            Err(err) => Err(sdk_failure(&format!("PutItem {}", self.table), &err)),
        }
    }

    async fn resolve(&self, code: &AckCode) -> Result<Option<AckTarget>, PortError> {
        let key = ack_code_key(code);
        get_item(&self.client, &self.table, "patientId", &key, true)
            .await?
            .map(|item| target_of(&item, &key))
            .transpose()
    }
}

fn target_of(item: &Item, key: &str) -> Result<AckTarget, PortError> {
    let id = string_attr(item, "targetId");
    match (string_attr(item, "targetKind"), id) {
        (Some("alert"), Some(id)) => Ok(AckTarget::alert(id)),
        (Some("emergency"), Some(id)) => Ok(AckTarget::emergency(id)),
        (kind, id) => Err(PortError::Backend(format!(
            "directory item {key} is not an acknowledgement code (targetKind {kind:?}, targetId {id:?})"
        ))),
    }
}
