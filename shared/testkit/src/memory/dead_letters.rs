//! [`DeadLetters`] in memory.

use std::sync::Mutex;

use async_trait::async_trait;

use application::ports::{DeadLetters, PoisonRecord, PortError};

use super::lock;

/// Keeps poison records; fails every call while `fail_with` is set.
#[derive(Default)]
pub struct MemoryDeadLetters {
    pub records: Mutex<Vec<PoisonRecord>>,
    pub fail_with: Mutex<Option<String>>,
}

#[async_trait]
impl DeadLetters for MemoryDeadLetters {
    async fn send(&self, record: &PoisonRecord) -> Result<(), PortError> {
        if let Some(problem) = lock(&self.fail_with).clone() {
            return Err(PortError::Backend(problem));
        }
        lock(&self.records).push(record.clone());
        Ok(())
    }
}
