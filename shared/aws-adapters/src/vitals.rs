//! [`RecentVitals`] on DynamoDB (the vitals table: `patientId`, `sk` = hour#digest) and
//! [`VillageStats`] on DynamoDB (the village statistics table: `village`, `date`).

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;

use application::ports::PortError;
use application::vitals::{BlockPage, RecentVitals, StoredBlock, VillageStats};
use domain::village_stats::StatsDelta;
use domain::vitals::{HourBlock, hour_key};

use crate::attributes::{
    Item, conditional_failed, n, number, number_attr, s, sdk_failure, string_attr,
};

/// The vitals table.
pub struct DynamoVitals {
    client: Client,
    table: String,
}

impl DynamoVitals {
    pub fn new(config: &aws_config::SdkConfig, table: String) -> Self {
        DynamoVitals {
            client: Client::new(config),
            table,
        }
    }
}

fn block_of(item: &Item) -> Option<StoredBlock> {
    let devices = match item.get("devices") {
        Some(AttributeValue::L(list)) => list
            .iter()
            .map(|d| d.as_s().ok().cloned())
            .collect::<Option<Vec<String>>>()?,
        None => Vec::new(),
        Some(_) => return None,
    };
    Some(StoredBlock {
        sort_key: string_attr(item, "sk")?.to_string(),
        block: HourBlock {
            start: number_attr(item, "hour")?,
            devices,
            count: number_attr(item, "count")?,
            readings: string_attr(item, "readings")?.to_string(),
        },
    })
}

#[async_trait]
impl RecentVitals for DynamoVitals {
    async fn put_block(&self, patient_id: &str, block: &HourBlock) -> Result<(), PortError> {
        let devices = block.devices.iter().map(|d| s(d)).collect();
        self.client
            .put_item()
            .table_name(&self.table)
            .item("patientId", s(patient_id))
            .item("sk", s(&block.sort_key(patient_id)))
            .item("hour", n(block.start))
            .item("count", n(block.count))
            .item("devices", AttributeValue::L(devices))
            .item("readings", s(&block.readings))
            .item("expiresAt", n(block.expires_at_seconds()))
            .send()
            .await
            .map_err(|e| sdk_failure(&format!("PutItem {}", self.table), &e))?;
        Ok(())
    }

    async fn blocks(
        &self,
        patient_id: &str,
        from_hour: i64,
        to_hour: i64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<BlockPage, PortError> {
        // `~` sorts after every digest character: the last block of `to_hour` included.
        let low = after
            .map(|a| format!("{a}\u{0}"))
            .unwrap_or_else(|| hour_key(from_hour));
        let high = format!("{}~", hour_key(to_hour));
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("patientId = :p AND sk BETWEEN :lo AND :hi")
            .expression_attribute_values(":p", s(patient_id))
            .expression_attribute_values(":lo", s(&low))
            .expression_attribute_values(":hi", s(&high))
            .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| sdk_failure(&format!("Query {}", self.table), &e))?;
        let mut blocks = Vec::new();
        for item in out.items() {
            blocks.push(block_of(item).ok_or_else(|| {
                PortError::backend(
                    &format!("decoding a vitals block of {patient_id}"),
                    "missing or malformed attribute",
                )
            })?);
        }
        let next = out
            .last_evaluated_key()
            .and_then(|k| string_attr(k, "sk"))
            .map(str::to_string);
        Ok(BlockPage { blocks, next })
    }
}

/// The village statistics table.
pub struct DynamoVillageStats {
    client: Client,
    table: String,
}

impl DynamoVillageStats {
    pub fn new(config: &aws_config::SdkConfig, table: String) -> Self {
        DynamoVillageStats {
            client: Client::new(config),
            table,
        }
    }
}

/// The attribute that remembers the event ids an item has counted.
const APPLIED: &str = "applied";

#[async_trait]
impl VillageStats for DynamoVillageStats {
    async fn add(&self, delta: &StatsDelta) -> Result<bool, PortError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("village", s(&delta.village))
            .key("date", s(&delta.date));
        let mut adds = Vec::new();
        for (i, (name, value)) in delta.counters.iter().enumerate() {
            adds.push(format!("#c{i} :c{i}"));
            request = request
                .expression_attribute_names(format!("#c{i}"), name)
                .expression_attribute_values(format!(":c{i}"), n(value));
        }
        if let Some(marker) = &delta.marker {
            adds.push("#applied :marker".to_string());
            request = request
                .expression_attribute_names("#applied", APPLIED)
                .expression_attribute_values(":marker", AttributeValue::Ss(vec![marker.clone()]))
                .expression_attribute_values(":one", s(marker))
                .condition_expression(
                    "attribute_not_exists(#applied) OR NOT contains(#applied, :one)",
                );
        }
        if adds.is_empty() {
            return Ok(false);
        }
        match request
            .update_expression(format!("ADD {}", adds.join(", ")))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(err) if conditional_failed(&err) => Ok(false),
            Err(err) => Err(sdk_failure(&format!("UpdateItem {}", self.table), &err)),
        }
    }

    async fn days(
        &self,
        village: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<(String, BTreeMap<String, i64>)>, PortError> {
        let mut days = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("village = :v AND #d BETWEEN :from AND :to")
                .expression_attribute_names("#d", "date")
                .expression_attribute_values(":v", s(village))
                .expression_attribute_values(":from", s(from))
                .expression_attribute_values(":to", s(to))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk_failure(&format!("Query {}", self.table), &e))?;
            for item in out.items() {
                let Some(date) = string_attr(item, "date") else {
                    continue;
                };
                let counters = item
                    .iter()
                    .filter_map(|(name, value)| match value {
                        AttributeValue::N(_) => {
                            number::<i64>(value).ok().map(|v| (name.clone(), v))
                        }
                        _ => None,
                    })
                    .collect();
                days.push((date.to_string(), counters));
            }
            match out.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(days),
            }
        }
    }
}
