//! [`Contacts`] in memory.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use application::ports::{Contacts, PortError};
use domain::escalation::{FamilyContact, VillageRoster};

use super::lock;

#[derive(Default)]
pub struct MemoryContacts {
    pub rosters: Mutex<HashMap<String, VillageRoster>>,
    pub families: Mutex<HashMap<String, FamilyContact>>,
}

#[async_trait]
impl Contacts for MemoryContacts {
    async fn roster(&self, village: &str) -> Result<Option<VillageRoster>, PortError> {
        Ok(lock(&self.rosters).get(village).cloned())
    }

    async fn family(&self, patient_id: &str) -> Result<Option<FamilyContact>, PortError> {
        Ok(lock(&self.families).get(patient_id).cloned())
    }
}
