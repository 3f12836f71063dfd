//! [`ReadingSink`] in memory.

use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use application::ports::{PortError, ReadingSink, StreamRecord};

use super::lock;

/// Records what was put; fails every call while `fail_with` is set.
#[derive(Default)]
pub struct MemorySink {
    pub records: Mutex<Vec<StreamRecord>>,
    pub fail_with: Mutex<Option<String>>,
}

#[async_trait]
impl ReadingSink for MemorySink {
    async fn put(
        &self,
        records: Vec<StreamRecord>,
        _deadline: Option<DateTime<Utc>>,
    ) -> Result<(), PortError> {
        if let Some(problem) = lock(&self.fail_with).clone() {
            return Err(PortError::Backend(problem));
        }
        lock(&self.records).extend(records);
        Ok(())
    }
}
