//! [`Directory`] and [`AccessDirectory`] in memory.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use application::ports::{AccessDirectory, Directory, PortError};
use domain::access::{DeviceBinding, DirectoryFacts, Lookup};
use domain::escalation::VillageRoster;
use domain::routing::DirectoryEntry;

use super::lock;

/// Patient entries, plus (for [`AccessDirectory`]) village rosters by village and device
/// bindings by client id. Every [`AccessDirectory::facts`] call is recorded in `lookups`
/// (one call = one batch read).
#[derive(Default)]
pub struct MemoryDirectory {
    pub entries: Mutex<HashMap<String, DirectoryEntry>>,
    pub rosters: Mutex<HashMap<String, VillageRoster>>,
    pub devices: Mutex<HashMap<String, DeviceBinding>>,
    pub lookups: Mutex<Vec<Lookup>>,
}

impl MemoryDirectory {
    pub fn with(entries: impl IntoIterator<Item = DirectoryEntry>) -> Self {
        let dir = MemoryDirectory::default();
        lock(&dir.entries).extend(entries.into_iter().map(|e| (e.patient_id.clone(), e)));
        dir
    }

    /// Adds a village roster.
    pub fn with_roster(self, roster: VillageRoster) -> Self {
        lock(&self.rosters).insert(roster.village.clone(), roster);
        self
    }

    /// Binds a device.
    pub fn with_device(self, client_id: &str, binding: DeviceBinding) -> Self {
        lock(&self.devices).insert(client_id.to_string(), binding);
        self
    }

    /// How many batch reads [`AccessDirectory::facts`] served.
    pub fn lookup_count(&self) -> usize {
        lock(&self.lookups).len()
    }
}

#[async_trait]
impl Directory for MemoryDirectory {
    async fn get(&self, patient_id: &str) -> Result<Option<DirectoryEntry>, PortError> {
        Ok(lock(&self.entries).get(patient_id).cloned())
    }
}

#[async_trait]
impl AccessDirectory for MemoryDirectory {
    async fn facts(&self, lookup: &Lookup) -> Result<DirectoryFacts, PortError> {
        lock(&self.lookups).push(lookup.clone());
        let entries = lock(&self.entries);
        let rosters = lock(&self.rosters);
        Ok(DirectoryFacts {
            patients: lookup
                .patient_ids
                .iter()
                .filter_map(|p| entries.get(p).map(|e| (p.clone(), e.clone())))
                .collect(),
            rosters: lookup
                .villages
                .iter()
                .filter_map(|v| rosters.get(v).map(|r| (v.clone(), r.clone())))
                .collect(),
            device: lookup
                .device_id
                .as_ref()
                .and_then(|d| lock(&self.devices).get(d).cloned()),
        })
    }
}
