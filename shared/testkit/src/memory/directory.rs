//! [`Directory`] in memory.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use application::ports::{Directory, PortError};
use domain::routing::DirectoryEntry;

use super::lock;

#[derive(Default)]
pub struct MemoryDirectory {
    pub entries: Mutex<HashMap<String, DirectoryEntry>>,
}

impl MemoryDirectory {
    pub fn with(entries: impl IntoIterator<Item = DirectoryEntry>) -> Self {
        let dir = MemoryDirectory::default();
        lock(&dir.entries).extend(entries.into_iter().map(|e| (e.patient_id.clone(), e)));
        dir
    }
}

#[async_trait]
impl Directory for MemoryDirectory {
    async fn get(&self, patient_id: &str) -> Result<Option<DirectoryEntry>, PortError> {
        Ok(lock(&self.entries).get(patient_id).cloned())
    }
}
