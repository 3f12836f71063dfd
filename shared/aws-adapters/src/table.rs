//! DynamoDB item operations shared by the table adapters: serialise a value into an item,
//! put an item, get an item (raw or deserialised) by its hash key, and the versioned put
//! behind optimistic concurrency. Attribute values themselves are in `attributes`.

use aws_sdk_dynamodb::Client;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, to_item};

use application::ports::PortError;

use crate::attributes::{Item, conditional_failed, n, s, sdk_failure};

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
        .map_err(|e| sdk_failure(&format!("PutItem {table}"), &e))?;
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
        .map_err(|e| sdk_failure(&format!("GetItem {table}"), &e))?;
    Ok(out.item)
}

/// Reads the item whose (hash-only) key `key_name` is `key`, deserialised.
pub(crate) async fn get_typed<T: DeserializeOwned>(
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
        Err(err) if conditional_failed(&err) => Err(PortError::Conflict {
            key: key.to_string(),
            expected: expected_version,
            actual: None,
        }),
        Err(err) => Err(sdk_failure(&format!("PutItem {table}"), &err)),
    }
}
