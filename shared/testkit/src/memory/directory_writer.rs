//! [`DirectoryWriter`] in memory: records each transaction (all or nothing).

use std::sync::Mutex;

use async_trait::async_trait;

use application::ports::{DirectoryWrite, DirectoryWriter, MAX_DIRECTORY_WRITES, PortError};

use super::lock;

/// Every successful [`DirectoryWriter::write_all`] call, in order. `fail_at` makes the
/// call with that index (0-based) fail with a backend error and record nothing (a crash
/// between transactions).
#[derive(Default)]
pub struct MemoryDirectoryWriter {
    pub transactions: Mutex<Vec<Vec<DirectoryWrite>>>,
    pub fail_at: Mutex<Option<usize>>,
    calls: Mutex<usize>,
}

impl MemoryDirectoryWriter {
    /// Every write of every recorded transaction.
    pub fn writes(&self) -> Vec<DirectoryWrite> {
        lock(&self.transactions).iter().flatten().cloned().collect()
    }
}

#[async_trait]
impl DirectoryWriter for MemoryDirectoryWriter {
    async fn write_all(&self, writes: &[DirectoryWrite]) -> Result<(), PortError> {
        let call = {
            let mut calls = lock(&self.calls);
            *calls += 1;
            *calls - 1
        };
        if *lock(&self.fail_at) == Some(call) {
            return Err(PortError::Backend("injected failure".into()));
        }
        if writes.len() > MAX_DIRECTORY_WRITES {
            return Err(PortError::Backend(format!("{} writes", writes.len())));
        }
        if !writes.is_empty() {
            lock(&self.transactions).push(writes.to_vec());
        }
        Ok(())
    }
}
