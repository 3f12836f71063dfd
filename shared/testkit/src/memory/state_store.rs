//! [`PatientStateStore`] in memory.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use application::ports::{PatientStateStore, PortError, Versioned};
use domain::detection::PatientState;

use super::{lock, save_versioned};

#[derive(Default)]
pub struct MemoryStateStore {
    pub states: Mutex<HashMap<String, Versioned<PatientState>>>,
    pub saves: Mutex<usize>,
}

#[async_trait]
impl PatientStateStore for MemoryStateStore {
    async fn load(&self, patient_id: &str) -> Result<Versioned<PatientState>, PortError> {
        Ok(lock(&self.states)
            .get(patient_id)
            .cloned()
            .unwrap_or_default())
    }

    async fn save(
        &self,
        patient_id: &str,
        expected_version: u64,
        state: &PatientState,
    ) -> Result<(), PortError> {
        save_versioned(&mut lock(&self.states), patient_id, expected_version, state)?;
        *lock(&self.saves) += 1;
        Ok(())
    }

    async fn due(&self, shard: u32, now_ms: i64, limit: usize) -> Result<Vec<String>, PortError> {
        let mut due: Vec<(i64, String)> = lock(&self.states)
            .iter()
            .filter(|(id, _)| domain::detection::due_shard(id) == shard)
            .filter_map(|(id, s)| s.value.due_at.map(|at| (at, id.clone())))
            .filter(|(at, _)| *at <= now_ms)
            .collect();
        due.sort();
        Ok(due.into_iter().take(limit).map(|(_, id)| id).collect())
    }
}
