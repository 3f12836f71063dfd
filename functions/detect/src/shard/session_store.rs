//! The shard session seen as the per-patient state store that `process_patient` uses:
//! loads and saves go to memory; a save that holds effects writes the patient's bucket
//! first (group-committed, [`ShardSession::flush_patient`]).

use application::ports::{PatientStateStore, PortError, Versioned};
use application::shard_state::ShardStateStore;
use async_trait::async_trait;
use domain::detection::PatientState;
use domain::detection::snapshot::{SnapshotEntry, bucket_of};

use super::{ShardSession, lock, stale_error};

/// The session seen as the per-patient store [`crate::process_patient`] uses.
pub struct SessionStore<'a> {
    pub session: &'a ShardSession,
    pub store: &'a dyn ShardStateStore,
}

#[async_trait]
impl PatientStateStore for SessionStore<'_> {
    async fn load(&self, patient_id: &str) -> Result<Versioned<PatientState>, PortError> {
        let d = lock(&self.session.data);
        if d.stale {
            return Err(stale_error(&self.session.shard));
        }
        let index = bucket_of(patient_id, d.meta.buckets) as usize;
        Ok(d.slots
            .get(index)
            .and_then(|s| s.bucket.patients.get(patient_id))
            .map(|e| Versioned {
                version: e.version,
                value: e.state.clone(),
            })
            .unwrap_or_default())
    }

    async fn save(
        &self,
        patient_id: &str,
        expected_version: u64,
        state: &PatientState,
    ) -> Result<(), PortError> {
        let change = {
            let mut guard = lock(&self.session.data);
            let d = &mut *guard;
            if d.stale {
                return Err(stale_error(&self.session.shard));
            }
            let index = bucket_of(patient_id, d.meta.buckets) as usize;
            let seq = d.seqs.get(patient_id).cloned();
            let slot = d
                .slots
                .get_mut(index)
                .ok_or_else(|| PortError::Backend(format!("no bucket {index}")))?;
            let entry = slot.bucket.patients.entry(patient_id.to_string());
            let entry = entry.or_insert_with(SnapshotEntry::default);
            if entry.version != expected_version {
                return Err(PortError::Conflict {
                    key: patient_id.to_string(),
                    expected: expected_version,
                    actual: Some(entry.version),
                });
            }
            entry.version = expected_version + 1;
            entry.state = state.clone();
            if seq.is_some() {
                entry.seq = seq;
            }
            slot.dirty = true;
            slot.changes += 1;
            slot.changes
        };
        if !state.outbox.is_empty() {
            // Facts before effects: the decision is in the snapshot before it is carried out.
            self.session
                .flush_patient(self.store, patient_id, change)
                .await?;
        }
        Ok(())
    }

    async fn due(
        &self,
        _shard: u32,
        _now_ms: i64,
        _limit: usize,
    ) -> Result<Vec<String>, PortError> {
        Ok(Vec::new())
    }

    /// Closed hours are written with the snapshot ([`ShardSession::flush`]).
    fn defers_vitals(&self) -> bool {
        true
    }
}
