//! [`MessageSender`] in memory.

use std::sync::Mutex;

use async_trait::async_trait;

use application::ports::{MessageSender, PortError};

use super::lock;

/// Records messages instead of sending them.
#[derive(Default)]
pub struct MemorySender {
    pub sent: Mutex<Vec<(String, String)>>,
}

#[async_trait]
impl MessageSender for MemorySender {
    fn channel(&self) -> &'static str {
        "memory"
    }

    async fn send(&self, phone: &str, message: &str) -> Result<Option<String>, PortError> {
        let mut sent = lock(&self.sent);
        sent.push((phone.to_string(), message.to_string()));
        Ok(Some(format!("msg-{}", sent.len())))
    }
}
