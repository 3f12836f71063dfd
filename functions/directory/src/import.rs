//! `POST /import`: a CSV of patients and workers (format: `domain::onboarding::csv`,
//! docs/onboarding.md). Every line is validated first, the file as a whole too (duplicate
//! ids, a wearable listed twice, an assigned worker in neither the file nor the workers
//! table); one bad line and nothing is written: a 422 lists every bad line (line, column,
//! reason).
//!
//! A good file is written in transactions of at most 100 items, in dependency order:
//! workers, then the rosters, then the patients (a patient's items always in one
//! transaction). Each transaction is all or nothing; the file is not one transaction. Every
//! write sets the items to what the file says (puts, worker updates, rosters conditional on
//! what was read), so the same file sent again after a failure part-way (a crash, a
//! timeout, a 503) writes the same items and completes the import; what was written before
//! the failure never references anything unwritten (patients come last).

use std::collections::{BTreeMap, BTreeSet};

use application::ports::{DirectoryWrite, MAX_DIRECTORY_WRITES};
use domain::onboarding::csv::{self, LineError, Row};
use domain::onboarding::{FieldError, Patient, WorkerRecord, plan_rosters};
use lambda_kit::http::HttpError;
use serde_json::{Map, json};

use crate::{ApiError, Deps, Reply, binding_conflict, binding_of, patients, port_error, workers};

/// The largest import file (bytes).
pub const MAX_IMPORT_BYTES: usize = 1024 * 1024;
/// The most data lines (patients and workers) of an import file.
pub const MAX_IMPORT_ROWS: usize = 1000;

pub(crate) async fn import(deps: &Deps<'_>, text: &str) -> Reply {
    let (rows, mut errors) =
        csv::parse(text).map_err(|e| ApiError::from(HttpError::new(400, "InvalidFile", e.0)))?;
    let lines: BTreeSet<usize> = rows
        .iter()
        .map(|r| r.line)
        .chain(errors.iter().map(|e| e.line))
        .collect();
    if lines.len() > MAX_IMPORT_ROWS {
        return Err(HttpError::new(
            413,
            "PayloadTooLarge",
            format!(
                "{} lines; at most {MAX_IMPORT_ROWS} per file: split it",
                lines.len()
            ),
        )
        .into());
    }
    if lines.is_empty() {
        return Err(
            HttpError::new(400, "InvalidFile", "the file has no patient or worker line").into(),
        );
    }
    // Every worker id of the file, good lines or not: a patient of a bad worker line is
    // reported once (on the worker's line), not again as "no such worker".
    let file_workers: BTreeSet<String> = rows
        .iter()
        .filter_map(|l| match &l.row {
            Row::Worker { id, .. } => Some(id.clone()),
            Row::Patient { .. } => None,
        })
        .collect();
    let mut patients_in: Vec<(usize, Patient)> = Vec::new();
    let mut workers_in: Vec<(usize, WorkerRecord)> = Vec::new();
    let mut first_line: BTreeMap<(bool, String), usize> = BTreeMap::new();
    let mut device_line: BTreeMap<String, usize> = BTreeMap::new();
    let bad = |line: usize, e: FieldError| LineError {
        line,
        field: csv::column_of(&e.field),
        reason: e.reason,
    };
    for l in rows {
        let (is_patient, id, validated) = match l.row {
            Row::Patient { id, input } => (true, id.clone(), input.validate(&id).map(Ok)),
            Row::Worker { id, input } => (false, id.clone(), input.validate(&id).map(Err)),
        };
        if let Some(first) = first_line.get(&(is_patient, id.clone())) {
            let kind = if is_patient { "patient" } else { "worker" };
            errors.push(bad(
                l.line,
                FieldError::new("id", format!("{kind} {id} is also on line {first}")),
            ));
            continue;
        }
        first_line.insert((is_patient, id), l.line);
        match validated {
            Err(fields) => errors.extend(fields.into_iter().map(|e| bad(l.line, e))),
            Ok(Ok(patient)) => {
                for device in &patient.devices {
                    if let Some(first) = device_line.insert(device.clone(), l.line) {
                        errors.push(bad(
                            l.line,
                            FieldError::new(
                                "devices",
                                format!("{device} is also listed on line {first}"),
                            ),
                        ));
                    }
                }
                patients_in.push((l.line, patient));
            }
            Ok(Err(worker)) => workers_in.push((l.line, worker)),
        }
    }
    // Whole-file checks against the tables: assigned workers exist, wearables are free.
    let mut known: BTreeMap<String, bool> = BTreeMap::new();
    for (line, patient) in &patients_in {
        let exists = match known.get(&patient.worker_id) {
            Some(exists) => *exists,
            None if file_workers.contains(&patient.worker_id) => true,
            None => {
                let exists = deps
                    .workers
                    .get(&patient.worker_id)
                    .await
                    .map_err(port_error)?
                    .is_some();
                known.insert(patient.worker_id.clone(), exists);
                exists
            }
        };
        if !exists {
            errors.push(bad(
                *line,
                FieldError::new(
                    "workerId",
                    format!(
                        "no worker {} in the file or the workers table",
                        patient.worker_id
                    ),
                ),
            ));
        }
        for device in &patient.devices {
            let binding = binding_of(deps, device).await?;
            if let Some(why) = binding_conflict(binding.as_ref(), &patient.patient_id) {
                errors.push(bad(
                    *line,
                    FieldError::new("devices", format!("{device} {why}")),
                ));
            }
        }
    }
    if !errors.is_empty() {
        errors.sort_by_key(|e| e.line);
        let bad_lines: BTreeSet<usize> = errors.iter().map(|e| e.line).collect();
        return Err(ApiError {
            error: HttpError::new(
                422,
                "ImportRejected",
                format!(
                    "{} bad line(s): nothing was written; fix them and send the whole file again",
                    bad_lines.len()
                ),
            ),
            extra: Map::from_iter([("lines".to_string(), json!(errors))]),
        });
    }
    let records: Vec<WorkerRecord> = workers_in.into_iter().map(|(_, w)| w).collect();
    let transactions = plan(deps, &records, &patients_in).await?;
    let total: usize = transactions.iter().map(Vec::len).sum();
    for (done, transaction) in transactions.iter().enumerate() {
        if let Err(err) = deps.writer.write_all(transaction).await {
            let mut failure = port_error(err);
            failure.error.message = format!(
                "{} ({done} of {} transactions were written; send the same file again to complete the import)",
                failure.error.message,
                transactions.len()
            );
            failure
                .extra
                .insert("transactionsWritten".into(), json!(done));
            return Err(failure);
        }
    }
    tracing::info!(
        patients = patients_in.len(),
        workers = records.len(),
        writes = total,
        transactions = transactions.len(),
        "import written"
    );
    Ok((
        200,
        json!({
            "patients": patients_in.len(),
            "workers": records.len(),
            "writes": total,
            "transactions": transactions.len(),
        }),
    ))
}

/// The transactions of a good file, in order: workers, rosters, then patients (each
/// patient's writes together), packed up to [`MAX_DIRECTORY_WRITES`] each.
async fn plan(
    deps: &Deps<'_>,
    records: &[WorkerRecord],
    patients_in: &[(usize, Patient)],
) -> Result<Vec<Vec<DirectoryWrite>>, ApiError> {
    let mut before = Vec::new();
    for record in records {
        before.extend(
            deps.workers
                .get(&record.worker_id)
                .await
                .map_err(port_error)?,
        );
    }
    let current = workers::read_rosters(deps, records, before.iter()).await?;
    let mut groups: Vec<Vec<DirectoryWrite>> = records
        .iter()
        .map(|r| vec![DirectoryWrite::Worker(r.worker())])
        .collect();
    groups.extend(
        plan_rosters(&current, records)
            .into_iter()
            .map(|(roster, previous)| vec![DirectoryWrite::Roster { roster, previous }]),
    );
    for (_, patient) in patients_in {
        let entry = deps
            .directory
            .get(&patient.patient_id)
            .await
            .map_err(port_error)?;
        groups.push(patients::writes(deps, patient, entry.as_ref()).await?);
    }
    let mut transactions: Vec<Vec<DirectoryWrite>> = Vec::new();
    for group in groups {
        match transactions.last_mut() {
            Some(last) if last.len() + group.len() <= MAX_DIRECTORY_WRITES => last.extend(group),
            _ => transactions.push(group),
        }
    }
    Ok(transactions)
}
