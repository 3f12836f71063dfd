//! [`MessageBus`] in memory.

use std::sync::Mutex;

use async_trait::async_trait;

use application::ports::{Channel, MessageBus, PortError};

use super::lock;

/// Messages sent per channel: `(event type, body, delay seconds)`.
#[derive(Default)]
pub struct MemoryBus {
    pub sent: Mutex<Vec<(Channel, String, String, u32)>>,
}

impl MemoryBus {
    /// Takes every message sent so far to `channel` (body, delay).
    pub fn take(&self, channel: Channel) -> Vec<(String, u32)> {
        let mut sent = lock(&self.sent);
        let (taken, kept): (Vec<_>, Vec<_>) = sent.drain(..).partition(|m| m.0 == channel);
        *sent = kept;
        taken.into_iter().map(|m| (m.2, m.3)).collect()
    }
}

#[async_trait]
impl MessageBus for MemoryBus {
    async fn send(
        &self,
        channel: Channel,
        event_type: &str,
        body: &str,
        delay_seconds: u32,
    ) -> Result<(), PortError> {
        lock(&self.sent).push((
            channel,
            event_type.to_string(),
            body.to_string(),
            delay_seconds,
        ));
        Ok(())
    }
}
