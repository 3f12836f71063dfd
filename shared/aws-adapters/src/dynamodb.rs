use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, to_item};

use application::ports::*;
use domain::dashboard::View;
use domain::detection::PatientState;
use domain::routing::DirectoryEntry;

use super::describe;

type Item = HashMap<String, AttributeValue>;

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_string())
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// Serialises `value` into an item (with `serde_dynamo`).
pub(crate) fn item_of<T: Serialize + ?Sized>(value: &T, what: &str) -> Result<Item, PortError> {
    to_item(value).map_err(|e| PortError::backend(&format!("serialising {what}"), e))
}

/// Writes an item, replacing any item with the same key.
pub(crate) async fn put_item(client: &Client, table: &str, item: Item) -> Result<(), PortError> {
    client
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .send()
        .await
        .map_err(|e| PortError::Backend(format!("PutItem {table}: {}", describe(&e))))?;
    Ok(())
}

/// Reads the item whose (hash-only) key `key_name` is `key`.
pub(crate) async fn get_item(
    client: &Client,
    table: &str,
    key_name: &str,
    key: &str,
    consistent_read: bool,
) -> Result<Option<Item>, PortError> {
    let out = client
        .get_item()
        .table_name(table)
        .key(key_name, s(key))
        .consistent_read(consistent_read)
        .send()
        .await
        .map_err(|e| PortError::Backend(format!("GetItem {table}: {}", describe(&e))))?;
    Ok(out.item)
}

/// Reads the item whose (hash-only) key `key_name` is `key`, deserialised.
pub(crate) async fn get_typed<T: serde::de::DeserializeOwned>(
    client: &Client,
    table: &str,
    key_name: &str,
    key: &str,
    consistent_read: bool,
) -> Result<Option<T>, PortError> {
    get_item(client, table, key_name, key, consistent_read)
        .await?
        .map(|item| {
            from_item(item)
                .map_err(|e| PortError::backend(&format!("decoding {table} item {key}"), e))
        })
        .transpose()
}

fn is_conditional_failure<R>(
    err: &aws_sdk_dynamodb::error::SdkError<aws_sdk_dynamodb::operation::put_item::PutItemError, R>,
) -> bool {
    err.as_service_error()
        .is_some_and(|e| e.is_conditional_check_failed_exception())
}

// ------------------------------------------------------------------------ patient state

/// Detection state per patient: `{patientId, version, state}`; saves are conditioned on
/// the version read (optimistic concurrency).
pub struct DynamoStateStore {
    client: Client,
    table: String,
}

impl DynamoStateStore {
    pub fn new(config: &aws_config::SdkConfig, table: String) -> Self {
        DynamoStateStore {
            client: Client::new(config),
            table,
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StateItem {
    patient_id: String,
    version: u64,
    state: PatientState,
    /// Keys of the sparse `due-at` index (present only while the sweep has work here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    due_shard: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    due_at: Option<i64>,
}

/// The sparse index of patient states the sweep must visit (`dueShard`, `dueAt`).
pub const DUE_INDEX: &str = "due-at";

#[async_trait]
impl PatientStateStore for DynamoStateStore {
    async fn load(&self, patient_id: &str) -> Result<Versioned<PatientState>, PortError> {
        match get_item(&self.client, &self.table, "patientId", patient_id, true).await? {
            None => Ok(Versioned::default()),
            Some(item) => {
                let stored: StateItem = from_item(item).map_err(|e| {
                    PortError::backend(&format!("decoding the state of patient {patient_id}"), e)
                })?;
                Ok(Versioned {
                    version: stored.version,
                    value: stored.state,
                })
            }
        }
    }

    async fn save(
        &self,
        patient_id: &str,
        expected_version: u64,
        state: &PatientState,
    ) -> Result<(), PortError> {
        let item: Item = to_item(StateItem {
            patient_id: patient_id.to_string(),
            version: expected_version + 1,
            state: state.clone(),
            due_shard: state
                .due_at
                .map(|_| domain::detection::due_shard(patient_id)),
            due_at: state.due_at,
        })
        .map_err(|e| PortError::backend("serialising patient state", e))?;
        put_versioned(
            &self.client,
            &self.table,
            ("patientId", patient_id),
            expected_version,
            item,
        )
        .await
    }

    async fn due(&self, shard: u32, now_ms: i64, limit: usize) -> Result<Vec<String>, PortError> {
        let limit = i32::try_from(limit.max(1)).unwrap_or(i32::MAX);
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(DUE_INDEX)
            .key_condition_expression("dueShard = :shard AND dueAt <= :now")
            .expression_attribute_values(":shard", n(u64::from(shard)))
            .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
            .limit(limit)
            .send()
            .await
            .map_err(|e| PortError::Backend(format!("Query {DUE_INDEX}: {}", describe(&e))))?;
        Ok(out
            .items
            .unwrap_or_default()
            .into_iter()
            .filter_map(|mut item| match item.remove("patientId") {
                Some(AttributeValue::S(id)) => Some(id),
                _ => None,
            })
            .collect())
    }
}

/// Writes `item` (which carries `version = expected_version + 1`) if the stored item with
/// key `key` still has `version = expected_version` (0 = no item yet); otherwise
/// [`PortError::Conflict`].
pub(crate) async fn put_versioned(
    client: &Client,
    table: &str,
    (key_name, key): (&str, &str),
    expected_version: u64,
    item: Item,
) -> Result<(), PortError> {
    let request = client.put_item().table_name(table).set_item(Some(item));
    let request = if expected_version == 0 {
        request
            .condition_expression("attribute_not_exists(#key)")
            .expression_attribute_names("#key", key_name)
    } else {
        request
            .condition_expression("version = :expected")
            .expression_attribute_values(":expected", n(expected_version))
    };
    match request.send().await {
        Ok(_) => Ok(()),
        Err(err) if is_conditional_failure(&err) => Err(PortError::Conflict {
            key: key.to_string(),
            expected: expected_version,
            actual: None,
        }),
        Err(err) => Err(PortError::Backend(format!(
            "PutItem {table}: {}",
            describe(&err)
        ))),
    }
}

// ------------------------------------------------------------------------ directory

/// The patient directory table (items are [`DirectoryEntry`] in camelCase).
pub struct DynamoDirectory {
    client: Client,
    table: String,
}

impl DynamoDirectory {
    pub fn new(config: &aws_config::SdkConfig, table: String) -> Self {
        DynamoDirectory {
            client: Client::new(config),
            table,
        }
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    pub(crate) fn table(&self) -> &str {
        &self.table
    }

    /// Writes (or replaces) an entry: used by seeding scripts, the demo and tests.
    pub async fn put(&self, entry: &DirectoryEntry) -> Result<(), PortError> {
        put_item(
            &self.client,
            &self.table,
            item_of(entry, "a directory entry")?,
        )
        .await
    }
}

#[async_trait]
impl Directory for DynamoDirectory {
    async fn get(&self, patient_id: &str) -> Result<Option<DirectoryEntry>, PortError> {
        get_typed(&self.client, &self.table, "patientId", patient_id, false).await
    }
}

// ------------------------------------------------------------------------ outbox

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
            Err(err) if is_conditional_failure(&err) => {
                // Count the attempt and learn the status in one conditional-free update.
                let out = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .key("notificationId", s(&entry.notification_id))
                    .update_expression("ADD attempts :one")
                    .expression_attribute_values(":one", n(1))
                    .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
                    .send()
                    .await
                    .map_err(|e| {
                        PortError::Backend(format!("UpdateItem {}: {}", self.table, describe(&e)))
                    })?;
                let status = out
                    .attributes()
                    .and_then(|a| a.get("status"))
                    .and_then(|v| v.as_s().ok())
                    .map(String::as_str);
                Ok(if status == Some("sent") {
                    Claim::AlreadySent
                } else {
                    Claim::Pending
                })
            }
            Err(err) => Err(PortError::Backend(format!(
                "PutItem {}: {}",
                self.table,
                describe(&err)
            ))),
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
        request.send().await.map_err(|e| {
            PortError::Backend(format!("UpdateItem {}: {}", self.table, describe(&e)))
        })?;
        Ok(())
    }
}

// ------------------------------------------------------------------------ dashboard

/// The dashboard table: `{viewId, version, kind, status, board?, since?, view}`. `board`
/// and `since` feed the sparse `board-since` index (the views that need attention, oldest
/// first); `view` is the whole [`View`].
pub struct DynamoReadModels {
    client: Client,
    table: String,
}

impl DynamoReadModels {
    pub fn new(config: &aws_config::SdkConfig, table: String) -> Self {
        DynamoReadModels {
            client: Client::new(config),
            table,
        }
    }
}

/// Name of the dashboard table's index of open views.
pub const BOARD_INDEX: &str = "board-since";

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ViewItem {
    view_id: String,
    version: u64,
    kind: String,
    status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    board: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    since: Option<String>,
    view: View,
}

#[async_trait]
impl ReadModels for DynamoReadModels {
    async fn load(&self, view_id: &str) -> Result<Versioned<Option<View>>, PortError> {
        let item: Option<ViewItem> =
            get_typed(&self.client, &self.table, "viewId", view_id, true).await?;
        Ok(match item {
            Some(item) => Versioned {
                version: item.version,
                value: Some(item.view),
            },
            None => Versioned::default(),
        })
    }

    async fn save(&self, expected_version: u64, view: &View) -> Result<(), PortError> {
        let view_id = view.id();
        let kind = match view {
            View::Alert(_) => "alert",
            View::Emergency(_) => "emergency",
        };
        let item = item_of(
            &ViewItem {
                view_id: view_id.clone(),
                version: expected_version + 1,
                kind: kind.to_string(),
                status: view.status_text(),
                board: view.board().map(str::to_string),
                since: view.since().map(|t| t.to_rfc3339()),
                view: view.clone(),
            },
            "a dashboard view",
        )?;
        put_versioned(
            &self.client,
            &self.table,
            ("viewId", &view_id),
            expected_version,
            item,
        )
        .await
    }
}
