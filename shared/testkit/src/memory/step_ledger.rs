//! [`StepLedger`] in memory.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use application::idempotency::in_progress_expired;
use application::ports::{LEDGER_CLAIM_TIMEOUT_SECONDS, LedgerClaim, PortError, StepLedger};

use super::lock;

/// A step's row: its outcome once done; while pending, when the claim expires (epoch ms).
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerRow {
    pub outcome: Option<serde_json::Value>,
    pub in_progress_until_ms: i64,
}

/// Step claims and outcomes by key; claims expire after `claim_timeout`.
pub struct MemoryLedger {
    pub rows: Mutex<BTreeMap<String, LedgerRow>>,
    pub claim_timeout: Duration,
}

impl Default for MemoryLedger {
    fn default() -> Self {
        MemoryLedger {
            rows: Mutex::default(),
            claim_timeout: Duration::seconds(LEDGER_CLAIM_TIMEOUT_SECONDS),
        }
    }
}

#[async_trait]
impl StepLedger for MemoryLedger {
    async fn claim(&self, key: &str, now: DateTime<Utc>) -> Result<LedgerClaim, PortError> {
        let mut rows = lock(&self.rows);
        if let Some(row) = rows.get(key) {
            if let Some(outcome) = &row.outcome {
                return Ok(LedgerClaim::Done(outcome.clone()));
            }
            if !in_progress_expired(row.in_progress_until_ms, now) {
                return Ok(LedgerClaim::InProgress);
            }
        }
        rows.insert(
            key.to_string(),
            LedgerRow {
                outcome: None,
                in_progress_until_ms: (now + self.claim_timeout).timestamp_millis(),
            },
        );
        Ok(LedgerClaim::New)
    }

    async fn complete(&self, key: &str, outcome: &serde_json::Value) -> Result<(), PortError> {
        let mut rows = lock(&self.rows);
        let in_progress_until_ms = rows.get(key).map_or(0, |row| row.in_progress_until_ms);
        rows.insert(
            key.to_string(),
            LedgerRow {
                outcome: Some(outcome.clone()),
                in_progress_until_ms,
            },
        );
        Ok(())
    }
}
#[cfg(test)]
mod tests {
    use chrono::Duration;
    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn a_claim_whose_attempt_crashed_expires_and_is_taken_over_once() {
        let ledger = MemoryLedger::default();
        let now = Utc::now();
        assert_eq!(ledger.claim("k", now).await.unwrap(), LedgerClaim::New);
        assert_eq!(
            ledger.claim("k", now + Duration::seconds(1)).await.unwrap(),
            LedgerClaim::InProgress
        );
        let later = now + Duration::hours(1);
        assert_eq!(ledger.claim("k", later).await.unwrap(), LedgerClaim::New);
        assert_eq!(
            ledger.claim("k", later).await.unwrap(),
            LedgerClaim::InProgress
        );
        ledger.complete("k", &json!(1)).await.unwrap();
        assert_eq!(
            ledger.claim("k", later + Duration::hours(1)).await.unwrap(),
            LedgerClaim::Done(json!(1))
        );
    }
}
