//! [`Parking`] in memory.

use std::sync::Mutex;

use async_trait::async_trait;

use application::ports::{ParkedMessage, Parking, PortError};

use super::lock;

/// Keeps parked messages; fails every call while `fail_with` is set.
#[derive(Default)]
pub struct MemoryParking {
    pub parked: Mutex<Vec<ParkedMessage>>,
    pub fail_with: Mutex<Option<String>>,
}

#[async_trait]
impl Parking for MemoryParking {
    async fn park(&self, message: &ParkedMessage) -> Result<(), PortError> {
        if let Some(problem) = lock(&self.fail_with).clone() {
            return Err(PortError::Backend(problem));
        }
        lock(&self.parked).push(message.clone());
        Ok(())
    }
}
