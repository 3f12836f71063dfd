//! [`AlertPublisher`] in memory.

use std::sync::Mutex;

use async_trait::async_trait;

use application::ports::{AlertPublisher, PortError};
use domain::envelope::Envelope;
use domain::events::{AlertRaised, AlertResolved};

use super::lock;

#[derive(Default)]
pub struct MemoryPublisher {
    pub published: Mutex<Vec<Envelope<AlertRaised>>>,
    pub resolved: Mutex<Vec<Envelope<AlertResolved>>>,
}

#[async_trait]
impl AlertPublisher for MemoryPublisher {
    async fn publish(&self, alert: &Envelope<AlertRaised>) -> Result<(), PortError> {
        lock(&self.published).push(alert.clone());
        Ok(())
    }

    async fn publish_resolved(&self, resolved: &Envelope<AlertResolved>) -> Result<(), PortError> {
        lock(&self.resolved).push(resolved.clone());
        Ok(())
    }
}
