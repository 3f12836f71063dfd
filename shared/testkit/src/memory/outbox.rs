//! [`Outbox`] in memory.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use application::ports::{Claim, Outbox, OutboxEntry, PortError};

use super::lock;

/// One outbox row: the entry, its status (`pending` / `sent`) and provider message id.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    pub entry: OutboxEntry,
    pub status: &'static str,
    pub provider_message_id: Option<String>,
}

/// Outbox rows by notification id.
#[derive(Default)]
pub struct MemoryOutbox {
    pub rows: Mutex<BTreeMap<String, OutboxRow>>,
}

#[async_trait]
impl Outbox for MemoryOutbox {
    async fn claim(&self, entry: &OutboxEntry) -> Result<Claim, PortError> {
        let mut rows = lock(&self.rows);
        match rows.get(&entry.notification_id) {
            Some(row) if row.status == "sent" => Ok(Claim::AlreadySent),
            Some(_) => Ok(Claim::Pending),
            None => {
                rows.insert(
                    entry.notification_id.clone(),
                    OutboxRow {
                        entry: entry.clone(),
                        status: "pending",
                        provider_message_id: None,
                    },
                );
                Ok(Claim::New)
            }
        }
    }

    async fn mark_sent(
        &self,
        notification_id: &str,
        provider_message_id: Option<&str>,
    ) -> Result<(), PortError> {
        let mut rows = lock(&self.rows);
        let row = rows
            .get_mut(notification_id)
            .ok_or_else(|| PortError::Backend(format!("no outbox row {notification_id}")))?;
        row.status = "sent";
        row.provider_message_id = provider_message_id.map(str::to_string);
        Ok(())
    }
}
