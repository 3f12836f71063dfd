//! [`NotificationQueue`] in memory.

use std::sync::Mutex;

use async_trait::async_trait;

use application::ports::{NotificationQueue, PortError};
use domain::envelope::Envelope;
use domain::events::NotificationRequested;

use super::lock;

#[derive(Default)]
pub struct MemoryQueue {
    pub sent: Mutex<Vec<Envelope<NotificationRequested>>>,
}

#[async_trait]
impl NotificationQueue for MemoryQueue {
    async fn send(&self, request: &Envelope<NotificationRequested>) -> Result<(), PortError> {
        lock(&self.sent).push(request.clone());
        Ok(())
    }
}
