//! [`StepLedger`] on DynamoDB: the saga's step ledger table (one claim per step key).

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::ReturnValue;
use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use application::ports::{LEDGER_CLAIM_TIMEOUT_SECONDS, LedgerClaim, PortError, StepLedger};

use crate::attributes::{conditional_failed, n, s, sdk_failure, string_attr};
use crate::table::get_item;

/// The step ledger table: partition key `stepKey`; `status` pending / done, `outcome` JSON,
/// `claimedAt` (RFC 3339) and, while pending, `in_progress_expiration` (epoch ms, the name
/// Powertools' idempotency records use): when the claim expires.
pub struct DynamoLedger {
    client: Client,
    table: String,
    claim_timeout: Duration,
}

impl DynamoLedger {
    /// A ledger whose claims hold for [`LEDGER_CLAIM_TIMEOUT_SECONDS`].
    pub fn new(config: &aws_config::SdkConfig, table: String) -> Self {
        DynamoLedger {
            client: Client::new(config),
            table,
            claim_timeout: Duration::seconds(LEDGER_CLAIM_TIMEOUT_SECONDS),
        }
    }

    /// The same ledger with claims that hold for `timeout` (at least the function timeout).
    pub fn with_claim_timeout(mut self, timeout: Duration) -> Self {
        self.claim_timeout = timeout;
        self
    }
}

#[async_trait]
impl StepLedger for DynamoLedger {
    /// One conditional put claims a new step or takes over an expired claim: the row is
    /// absent, or pending with an `in_progress_expiration` in the past, or pending without
    /// one (written before claims expired) and claimed longer than the timeout ago. Two
    /// re-claimers of an expired claim cannot both win: the first moves the expiry into the
    /// future, so the second one's condition fails.
    async fn claim(&self, key: &str, now: DateTime<Utc>) -> Result<LedgerClaim, PortError> {
        let in_progress_until = (now + self.claim_timeout).timestamp_millis();
        // `claimedAt` values are RFC 3339 in UTC written by `to_rfc3339`, which order as text.
        let stale_before = (now - self.claim_timeout).to_rfc3339();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("stepKey", s(key))
            .item("status", s("pending"))
            .item("claimedAt", s(&now.to_rfc3339()))
            .item("in_progress_expiration", n(in_progress_until))
            .condition_expression(
                "attribute_not_exists(stepKey) \
                 OR (#status = :pending AND in_progress_expiration < :now_ms) \
                 OR (#status = :pending AND attribute_not_exists(in_progress_expiration) \
                     AND claimedAt < :stale_before)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":pending", s("pending"))
            .expression_attribute_values(":now_ms", n(now.timestamp_millis()))
            .expression_attribute_values(":stale_before", s(&stale_before))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => {
                if let Some(old) = out.attributes() {
                    tracing::warn!(
                        step_key = key,
                        claimed_at = string_attr(old, "claimedAt").unwrap_or_default(),
                        "took over an expired claim: the attempt that made it did not complete"
                    );
                }
                Ok(LedgerClaim::New)
            }
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
            .update_expression(
                "SET #status = :done, outcome = :o, doneAt = :at REMOVE in_progress_expiration",
            )
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
