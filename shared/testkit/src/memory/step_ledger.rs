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
