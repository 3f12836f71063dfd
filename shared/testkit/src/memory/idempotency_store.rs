//! [`IdempotencyStore`] in memory.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use application::idempotency::{IdempotencyStore, Record as IdemRecord, Status as IdemStatus};
use application::ports::PortError;

use super::lock;

/// Idempotency records by key; the same conditional semantics as the DynamoDB store.
#[derive(Default)]
pub struct MemoryIdempotencyStore {
    pub records: Mutex<HashMap<String, IdemRecord>>,
}

#[async_trait]
impl IdempotencyStore for MemoryIdempotencyStore {
    async fn put_in_progress(
        &self,
        record: &IdemRecord,
        now: DateTime<Utc>,
    ) -> Result<Option<IdemRecord>, PortError> {
        let mut records = lock(&self.records);
        if let Some(existing) = records.get(&record.key)
            && existing.status_at(now) != IdemStatus::Expired
        {
            return Ok(Some(existing.clone()));
        }
        records.insert(record.key.clone(), record.clone());
        Ok(None)
    }

    async fn complete(&self, key: &str, result: &str, expires_at: i64) -> Result<(), PortError> {
        let mut records = lock(&self.records);
        let record = records
            .get_mut(key)
            .ok_or_else(|| PortError::Backend(format!("no idempotency record {key}")))?;
        record.status = IdemStatus::Completed;
        record.result = Some(result.to_string());
        record.expires_at = expires_at;
        record.in_progress_expires_at = None;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), PortError> {
        lock(&self.records).remove(key);
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<IdemRecord>, PortError> {
        Ok(lock(&self.records).get(key).cloned())
    }
}
