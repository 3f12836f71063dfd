//! [`IdempotencyStore`] on DynamoDB: idempotency records (`IdempotencyTable`, key `id` S,
//! TTL on `expiration`), with Powertools' attribute names: `id`, `status`, `expiration`
//! (epoch s), `in_progress_expiration` (epoch ms), `validation` (payload hash), `data`
//! (result JSON).

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};

use application::idempotency::{IdempotencyStore, Record, Status};
use application::ports::PortError;

use crate::attributes::{Item, conditional_failed, n, number_attr, s, sdk_failure, string_attr};
use crate::table::get_item;

pub struct DynamoIdempotencyStore {
    client: Client,
    table: String,
}

impl DynamoIdempotencyStore {
    pub fn new(config: &aws_config::SdkConfig, table: String) -> Self {
        DynamoIdempotencyStore {
            client: Client::new(config),
            table,
        }
    }
}

fn decode(item: &Item) -> Result<Record, PortError> {
    let text = |name: &str| string_attr(item, name).map(str::to_string);
    let bad = |what: &str| PortError::Backend(format!("idempotency record: {what}"));
    Ok(Record {
        key: text("id").ok_or_else(|| bad("no id"))?,
        status: text("status")
            .as_deref()
            .and_then(Status::parse)
            .ok_or_else(|| bad("no or unknown status"))?,
        expires_at: number_attr(item, "expiration").ok_or_else(|| bad("no expiration"))?,
        in_progress_expires_at: number_attr(item, "in_progress_expiration"),
        payload_hash: text("validation").unwrap_or_default(),
        result: text("data"),
    })
}

#[async_trait]
impl IdempotencyStore for DynamoIdempotencyStore {
    async fn put_in_progress(
        &self,
        record: &Record,
        now: DateTime<Utc>,
    ) -> Result<Option<Record>, PortError> {
        // A vanished record (deleted after a failure between our put and get) means the
        // put can be tried again.
        for _ in 0..3 {
            let mut put = self
                .client
                .put_item()
                .table_name(&self.table)
                .item("id", s(&record.key))
                .item("status", s(Status::InProgress.as_str()))
                .item("expiration", n(record.expires_at))
                .item("validation", s(&record.payload_hash))
                .condition_expression(
                    "attribute_not_exists(id) OR expiration < :now \
                     OR (#status = :inprogress AND in_progress_expiration < :now_ms)",
                )
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":now", n(now.timestamp()))
                .expression_attribute_values(":now_ms", n(now.timestamp_millis()))
                .expression_attribute_values(":inprogress", s(Status::InProgress.as_str()));
            if let Some(t) = record.in_progress_expires_at {
                put = put.item("in_progress_expiration", n(t));
            }
            match put.send().await {
                Ok(_) => return Ok(None),
                Err(err) if conditional_failed(&err) => {
                    if let Some(existing) = self.get(&record.key).await? {
                        return Ok(Some(existing));
                    }
                }
                Err(err) => return Err(sdk_failure(&format!("PutItem {}", self.table), &err)),
            }
        }
        Err(PortError::Backend(format!(
            "idempotency record {} keeps appearing and vanishing",
            record.key
        )))
    }

    async fn complete(&self, key: &str, result: &str, expires_at: i64) -> Result<(), PortError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("id", s(key))
            .update_expression(
                "SET #status = :completed, #data = :data, expiration = :exp REMOVE in_progress_expiration",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#data", "data")
            .expression_attribute_values(":completed", s(Status::Completed.as_str()))
            .expression_attribute_values(":data", s(result))
            .expression_attribute_values(":exp", n(expires_at))
            .send()
            .await
            .map_err(|e| sdk_failure(&format!("UpdateItem {}", self.table), &e))?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), PortError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("id", s(key))
            .send()
            .await
            .map_err(|e| sdk_failure(&format!("DeleteItem {}", self.table), &e))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Record>, PortError> {
        get_item(&self.client, &self.table, "id", key, true)
            .await?
            .as_ref()
            .map(decode)
            .transpose()
    }
}
