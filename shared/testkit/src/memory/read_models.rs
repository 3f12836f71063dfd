//! [`ReadModels`] in memory.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use application::ports::{PortError, ReadModels, Versioned};
use domain::dashboard::View;

use super::{lock, save_versioned};

/// Dashboard views in memory; counts saves.
#[derive(Default)]
pub struct MemoryReadModels {
    pub views: Mutex<HashMap<String, Versioned<View>>>,
    pub saves: Mutex<usize>,
}

impl MemoryReadModels {
    pub fn get(&self, view_id: &str) -> Option<View> {
        lock(&self.views).get(view_id).map(|v| v.value.clone())
    }
}

#[async_trait]
impl ReadModels for MemoryReadModels {
    async fn load(&self, view_id: &str) -> Result<Versioned<Option<View>>, PortError> {
        Ok(match lock(&self.views).get(view_id) {
            Some(v) => Versioned {
                version: v.version,
                value: Some(v.value.clone()),
            },
            None => Versioned::default(),
        })
    }

    async fn save(&self, expected_version: u64, view: &View) -> Result<(), PortError> {
        save_versioned(&mut lock(&self.views), &view.id(), expected_version, view)?;
        *lock(&self.saves) += 1;
        Ok(())
    }
}
