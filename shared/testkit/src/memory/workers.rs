//! [`Workers`] in memory.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use application::ports::{PortError, Workers};
use domain::escalation::Worker;

use super::lock;

/// Workers by id; reservations behave like the conditional update of the DynamoDB adapter.
#[derive(Default)]
pub struct MemoryWorkers {
    pub workers: Mutex<BTreeMap<String, Worker>>,
    /// Successful reserve calls that changed a reservation.
    pub reservations: Mutex<usize>,
}

impl MemoryWorkers {
    pub fn with(workers: impl IntoIterator<Item = Worker>) -> Self {
        let store = MemoryWorkers::default();
        lock(&store.workers).extend(workers.into_iter().map(|w| (w.worker_id.clone(), w)));
        store
    }

    pub fn reserved_by(&self, worker_id: &str) -> Option<String> {
        lock(&self.workers)
            .get(worker_id)
            .and_then(|w| w.reserved_by.clone())
    }
}

#[async_trait]
impl Workers for MemoryWorkers {
    async fn get(&self, worker_id: &str) -> Result<Option<Worker>, PortError> {
        Ok(lock(&self.workers).get(worker_id).cloned())
    }

    async fn reserve(&self, worker_id: &str, emergency_id: &str) -> Result<bool, PortError> {
        let mut workers = lock(&self.workers);
        let Some(worker) = workers.get_mut(worker_id) else {
            return Ok(false);
        };
        match worker.reserved_by.as_deref() {
            Some(holder) => Ok(holder == emergency_id && worker.available),
            None if worker.available => {
                worker.reserved_by = Some(emergency_id.to_string());
                *lock(&self.reservations) += 1;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn release(&self, worker_id: &str, emergency_id: &str) -> Result<(), PortError> {
        let mut workers = lock(&self.workers);
        if let Some(worker) = workers.get_mut(worker_id)
            && worker.reserved_by.as_deref() == Some(emergency_id)
        {
            worker.reserved_by = None;
        }
        Ok(())
    }
}
