//! [`Directory`] and [`Contacts`] on DynamoDB: both read the one directory table, keyed by
//! `patientId`. Patient entries use the patient id as key; village rosters and family
//! contacts live in the same table under prefixed keys (`village#{village}`,
//! `family#{patientId}`), so one adapter serves both ports.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use serde::Serialize;
use serde::de::DeserializeOwned;

use application::ports::{Contacts, Directory, PortError};
use domain::escalation::{FamilyContact, VillageRoster, family_key, roster_key};
use domain::routing::DirectoryEntry;

use crate::attributes::s;
use crate::table::{get_typed, item_of, put_item};

/// The patient directory table (items are [`DirectoryEntry`] in camelCase), which also
/// holds the village rosters and family contacts.
pub struct DynamoDirectory {
    client: Client,
    table: String,
}

impl DynamoDirectory {
    pub fn new(config: &aws_config::SdkConfig, table: String) -> Self {
        DynamoDirectory {
            client: Client::new(config),
            table,
        }
    }

    /// Writes (or replaces) an entry: used by seeding scripts, the demo and tests.
    pub async fn put(&self, entry: &DirectoryEntry) -> Result<(), PortError> {
        put_item(
            &self.client,
            &self.table,
            item_of(entry, "a directory entry")?,
        )
        .await
    }

    /// Writes a village roster (key `village#{village}`).
    pub async fn put_roster(&self, roster: &VillageRoster) -> Result<(), PortError> {
        self.put_keyed(roster_key(&roster.village), roster).await
    }

    /// Writes a family contact (key `family#{patientId}`).
    pub async fn put_family(&self, family: &FamilyContact) -> Result<(), PortError> {
        self.put_keyed(family_key(&family.patient_id), family).await
    }

    async fn put_keyed<T: Serialize + Sync>(
        &self,
        key: String,
        value: &T,
    ) -> Result<(), PortError> {
        let mut item = item_of(value, "a directory item")?;
        // The table key; a value's own patientId (family contacts) stays in the key's prefix.
        item.insert("patientId".to_string(), s(&key));
        put_item(&self.client, &self.table, item).await
    }

    async fn get_keyed<T: DeserializeOwned>(&self, key: String) -> Result<Option<T>, PortError> {
        get_typed(&self.client, &self.table, "patientId", &key, false).await
    }
}

#[async_trait]
impl Directory for DynamoDirectory {
    async fn get(&self, patient_id: &str) -> Result<Option<DirectoryEntry>, PortError> {
        get_typed(&self.client, &self.table, "patientId", patient_id, false).await
    }
}

#[async_trait]
impl Contacts for DynamoDirectory {
    async fn roster(&self, village: &str) -> Result<Option<VillageRoster>, PortError> {
        self.get_keyed(roster_key(village)).await
    }

    async fn family(&self, patient_id: &str) -> Result<Option<FamilyContact>, PortError> {
        let family: Option<FamilyContact> = self.get_keyed(family_key(patient_id)).await?;
        Ok(family.map(|f| FamilyContact {
            patient_id: patient_id.to_string(),
            ..f
        }))
    }
}
