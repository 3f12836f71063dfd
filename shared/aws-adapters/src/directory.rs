//! [`Directory`], [`Contacts`] and [`AccessDirectory`] on DynamoDB: all read the one directory table, keyed by
//! `patientId`. Patient entries use the patient id as key; village rosters and family
//! contacts live in the same table under prefixed keys (`village#{village}`,
//! `family#{patientId}`, `device#{clientId}`), so one adapter serves all three ports
//! ([`AccessDirectory`] reads patients, rosters and a device binding in one batch).

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use serde::Serialize;
use serde::de::DeserializeOwned;

use std::time::Duration;

use application::ports::{AccessDirectory, Contacts, Directory, PortError};
use aws_sdk_dynamodb::types::KeysAndAttributes;
use domain::access::{DeviceBinding, DirectoryFacts, Lookup, device_key};
use domain::escalation::{FamilyContact, VillageRoster, family_key, roster_key};
use domain::routing::DirectoryEntry;
use serde_dynamo::aws_sdk_dynamodb_1::from_item;

use crate::attributes::{Item, s, sdk_failure, string_attr};
use crate::table::{get_item, get_typed, item_of, put_item};

/// Keys per `BatchGetItem` request (DynamoDB's limit).
const BATCH_KEYS: usize = 100;
/// Attempts at the keys a batch left unprocessed (throttling), with backoff.
const BATCH_ATTEMPTS: u32 = 6;

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

    /// Writes a device binding (key `device#{clientId}`).
    pub async fn put_device(
        &self,
        client_id: &str,
        binding: &DeviceBinding,
    ) -> Result<(), PortError> {
        self.put_keyed(device_key(client_id), binding).await
    }

    /// Every item of `keys` that exists, with `BatchGetItem` (100 keys a request; keys
    /// left unprocessed are asked for again with backoff), or `GetItem` for a single key.
    async fn batch_get(&self, keys: Vec<String>) -> Result<Vec<Item>, PortError> {
        if let [key] = keys.as_slice() {
            // One key (an emergency's patient, then its roster): a GetItem, which is all
            // the roles acting on one patient are granted.
            return Ok(get_item(&self.client, &self.table, "patientId", key, false)
                .await?
                .into_iter()
                .collect());
        }
        let mut found = Vec::new();
        for chunk in keys.chunks(BATCH_KEYS) {
            let keys: Vec<Item> = chunk
                .iter()
                .map(|k| Item::from([("patientId".to_string(), s(k))]))
                .collect();
            let mut pending = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .build()
                    .map_err(|e| PortError::backend("building a BatchGetItem request", e))?,
            );
            let mut attempt = 0;
            while let Some(request) = pending.take() {
                if attempt >= BATCH_ATTEMPTS {
                    return Err(PortError::Backend(format!(
                        "BatchGetItem {}: keys still unprocessed after {BATCH_ATTEMPTS} attempts",
                        self.table
                    )));
                }
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(25 << attempt)).await;
                }
                attempt += 1;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| sdk_failure(&format!("BatchGetItem {}", self.table), &e))?;
                if let Some(mut responses) = out.responses {
                    found.extend(responses.remove(&self.table).unwrap_or_default());
                }
                pending = out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .filter(|k| !k.keys.is_empty());
            }
        }
        Ok(found)
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

/// Decodes a directory item of a batch.
fn decode<T: DeserializeOwned>(item: Item, table: &str, key: &str) -> Result<T, PortError> {
    from_item(item).map_err(|e| PortError::backend(&format!("decoding {table} item {key}"), e))
}

#[async_trait]
impl AccessDirectory for DynamoDirectory {
    async fn facts(&self, lookup: &Lookup) -> Result<DirectoryFacts, PortError> {
        let device = lookup.device_id.as_deref().map(device_key);
        let keys: Vec<String> = lookup
            .patient_ids
            .iter()
            .cloned()
            .chain(lookup.villages.iter().map(|v| roster_key(v)))
            .chain(device.clone())
            .collect();
        let mut facts = DirectoryFacts::default();
        for item in self.batch_get(keys).await? {
            let Some(key) = string_attr(&item, "patientId").map(str::to_string) else {
                continue;
            };
            if device.as_deref() == Some(key.as_str()) {
                facts.device = Some(decode(item, &self.table, &key)?);
            } else if let Some(village) = key.strip_prefix("village#") {
                let roster: VillageRoster = decode(item, &self.table, &key)?;
                facts.rosters.insert(village.to_string(), roster);
            } else {
                let entry: DirectoryEntry = decode(item, &self.table, &key)?;
                facts.patients.insert(key, entry);
            }
        }
        Ok(facts)
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
