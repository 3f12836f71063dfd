//! `PUT /workers/{id}`: the worker's item in the workers table (a reservation held by an
//! emergency is kept) and their place on the village rosters, in one transaction. The same
//! body twice writes the same items (the roster is unchanged the second time). 201 when the
//! worker was not in the workers table, 200 otherwise; the body is the stored worker.

use std::collections::BTreeMap;

use application::ports::{DirectoryWrite, PortError};
use domain::escalation::{VillageRoster, Worker};
use domain::onboarding::{WorkerInput, WorkerRecord, WorkerRole, plan_rosters};
use serde_json::json;

use crate::{ApiError, Deps, Reply, port_error};

/// Attempts when a roster changes between its read and the write (another operator).
const ATTEMPTS: usize = 3;

pub(crate) async fn put(deps: &Deps<'_>, id: &str, input: WorkerInput) -> Reply {
    let record = input.validate(id).map_err(ApiError::invalid)?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let before = deps
            .workers
            .get(&record.worker_id)
            .await
            .map_err(port_error)?;
        let current = read_rosters(deps, std::slice::from_ref(&record), before.iter()).await?;
        let changed = plan_rosters(&current, std::slice::from_ref(&record));
        let mut writes = vec![DirectoryWrite::Worker(record.worker())];
        let mut rosters = current.clone();
        for (roster, previous) in changed {
            rosters.insert(roster.village.clone(), Some(roster.clone()));
            writes.push(DirectoryWrite::Roster { roster, previous });
        }
        match deps.writer.write_all(&writes).await {
            Ok(()) => {
                tracing::info!(worker_id = %record.worker_id, writes = writes.len(), created = before.is_none(), "worker onboarded");
                let status = if before.is_none() { 201 } else { 200 };
                return Ok((status, stored(&record, &rosters)));
            }
            Err(PortError::Conflict { .. }) if attempt < ATTEMPTS => continue,
            Err(err) => return Err(port_error(err)),
        }
    }
}

/// The rosters the workers' writes touch, as stored (`None`: no roster): each worker's
/// village, the villages they supervise, and the village they were in (`before`).
pub(crate) async fn read_rosters<'w>(
    deps: &Deps<'_>,
    records: &[WorkerRecord],
    before: impl Iterator<Item = &'w Worker>,
) -> Result<BTreeMap<String, Option<VillageRoster>>, ApiError> {
    let mut villages: Vec<String> = records
        .iter()
        .flat_map(|r| std::iter::once(r.village.clone()).chain(r.supervises.iter().cloned()))
        .chain(before.map(|w| w.village.clone()))
        .collect();
    villages.sort();
    villages.dedup();
    let mut rosters = BTreeMap::new();
    for village in villages {
        let roster = deps.contacts.roster(&village).await.map_err(port_error)?;
        rosters.insert(village, roster);
    }
    Ok(rosters)
}

/// The worker as stored: its record with its actual roster position.
fn stored(
    record: &WorkerRecord,
    rosters: &BTreeMap<String, Option<VillageRoster>>,
) -> serde_json::Value {
    let mut record = record.clone();
    record.roster_position = match record.role {
        WorkerRole::Supervisor => None,
        WorkerRole::HealthWorker => rosters
            .get(&record.village)
            .and_then(Option::as_ref)
            .and_then(|r| r.worker_ids.iter().position(|id| *id == record.worker_id))
            .map(|p| p as u32 + 1),
    };
    json!(record)
}
