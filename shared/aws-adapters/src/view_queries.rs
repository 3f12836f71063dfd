//! [`ViewQueries`] on DynamoDB: one `Query` of one of the dashboard table's indexes, newest
//! first (`ScanIndexForward = false`). The query API never scans.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_dynamo::aws_sdk_dynamodb_1::from_item;

use application::ports::PortError;
use application::views::{
    IndexPage, IndexQuery, KEY_ATTRIBUTE, PageKey, SORT_ATTRIBUTE, ViewQueries,
};

use crate::DynamoReadModels;
use crate::attributes::sdk_failure;
use crate::read_models::ViewItem;

/// The key attributes of an index entry, as strings (every key attribute is a string).
fn page_key(item: &HashMap<String, AttributeValue>, partition: &str) -> Option<PageKey> {
    [KEY_ATTRIBUTE, partition, SORT_ATTRIBUTE]
        .into_iter()
        .map(|name| match item.get(name) {
            Some(AttributeValue::S(value)) => Some((name.to_string(), value.clone())),
            _ => None,
        })
        .collect()
}

#[async_trait]
impl ViewQueries for DynamoReadModels {
    async fn query(&self, query: &IndexQuery) -> Result<IndexPage, PortError> {
        let partition = query.index.partition_attribute();
        let start = query.after.as_ref().map(|key| {
            key.iter()
                .map(|(k, v)| (k.clone(), AttributeValue::S(v.clone())))
                .collect::<HashMap<_, _>>()
        });
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(query.index.name())
            .key_condition_expression("#p = :p")
            .expression_attribute_names("#p", partition)
            .expression_attribute_values(":p", AttributeValue::S(query.partition.clone()))
            .scan_index_forward(false)
            .limit(i32::try_from(query.limit.clamp(1, 1000)).unwrap_or(1000))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| {
                sdk_failure(&format!("Query {} {}", self.table, query.index.name()), &e)
            })?;
        let mut page = IndexPage::default();
        for item in out.items.unwrap_or_default() {
            let Some(key) = page_key(&item, partition) else {
                continue;
            };
            let decoded: ViewItem = from_item(item)
                .map_err(|e| PortError::backend(&format!("decoding {} item", self.table), e))?;
            page.items.push((key, decoded.view));
        }
        page.last = out
            .last_evaluated_key
            .as_ref()
            .and_then(|key| page_key(key, partition));
        Ok(page)
    }
}
