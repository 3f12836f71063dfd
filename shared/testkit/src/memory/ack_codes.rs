//! [`AckCodes`] in memory.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use application::ports::{AckCodes, PortError, Registered};
use domain::ack::{AckCode, AckTarget};

use super::lock;

/// Codes and their targets; a code never changes target, as with the conditional put of
/// the DynamoDB adapter.
#[derive(Default)]
pub struct MemoryAckCodes {
    pub codes: Mutex<BTreeMap<AckCode, AckTarget>>,
}

impl MemoryAckCodes {
    /// The code registered for `target`, if any.
    pub fn code_of(&self, target: &AckTarget) -> Option<AckCode> {
        lock(&self.codes)
            .iter()
            .find(|(_, t)| *t == target)
            .map(|(c, _)| c.clone())
    }
}

#[async_trait]
impl AckCodes for MemoryAckCodes {
    async fn register(&self, code: &AckCode, target: &AckTarget) -> Result<Registered, PortError> {
        let mut codes = lock(&self.codes);
        match codes.get(code) {
            Some(existing) if existing == target => Ok(Registered::Existing),
            Some(_) => Ok(Registered::Taken),
            None => {
                codes.insert(code.clone(), target.clone());
                Ok(Registered::New)
            }
        }
    }

    async fn resolve(&self, code: &AckCode) -> Result<Option<AckTarget>, PortError> {
        Ok(lock(&self.codes).get(code).cloned())
    }
}
