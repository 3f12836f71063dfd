//! [`StepLedger`] in memory.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use application::ports::{LedgerClaim, PortError, StepLedger};

use super::lock;

/// Step claims and outcomes by key.
#[derive(Default)]
pub struct MemoryLedger {
    pub rows: Mutex<BTreeMap<String, Option<serde_json::Value>>>,
}

#[async_trait]
impl StepLedger for MemoryLedger {
    async fn claim(&self, key: &str, _now: DateTime<Utc>) -> Result<LedgerClaim, PortError> {
        let mut rows = lock(&self.rows);
        match rows.get(key) {
            Some(Some(outcome)) => Ok(LedgerClaim::Done(outcome.clone())),
            Some(None) => Ok(LedgerClaim::InProgress),
            None => {
                rows.insert(key.to_string(), None);
                Ok(LedgerClaim::New)
            }
        }
    }

    async fn complete(&self, key: &str, outcome: &serde_json::Value) -> Result<(), PortError> {
        lock(&self.rows).insert(key.to_string(), Some(outcome.clone()));
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
