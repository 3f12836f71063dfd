//! `PUT /patients/{id}`: the whole patient, replaced (idempotent: the same body twice
//! writes the same items). 201 when the patient was not in the directory, 200 otherwise;
//! the body is the stored patient.

use application::ports::DirectoryWrite;
use domain::access::DeviceBinding;
use domain::onboarding::{FieldError, Patient, PatientInput};
use domain::routing::DirectoryEntry;
use serde_json::json;

use crate::{ApiError, Deps, Reply, binding_conflict, binding_of, port_error};

pub(crate) async fn put(deps: &Deps<'_>, id: &str, input: PatientInput) -> Reply {
    let patient = input.validate(id).map_err(ApiError::invalid)?;
    let mut problems = Vec::new();
    if deps
        .workers
        .get(&patient.worker_id)
        .await
        .map_err(port_error)?
        .is_none()
    {
        problems.push(FieldError::new(
            "workerId",
            format!(
                "no worker {} in the workers table: onboard them first (PUT /workers/{{id}})",
                patient.worker_id
            ),
        ));
    }
    for (i, device) in patient.devices.iter().enumerate() {
        let binding = binding_of(deps, device).await?;
        if let Some(why) = binding_conflict(binding.as_ref(), &patient.patient_id) {
            problems.push(FieldError::new(
                format!("devices[{i}]"),
                format!("{device} {why}"),
            ));
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::invalid(problems));
    }
    let before = deps
        .directory
        .get(&patient.patient_id)
        .await
        .map_err(port_error)?;
    let writes = writes(deps, &patient, before.as_ref()).await?;
    deps.writer.write_all(&writes).await.map_err(port_error)?;
    tracing::info!(patient_id = %patient.patient_id, writes = writes.len(), created = before.is_none(), "patient onboarded");
    let status = if before.is_none() { 201 } else { 200 };
    Ok((status, json!(patient)))
}

/// The writes that make the directory hold `patient` (whose entry was `before`): the entry,
/// the family contact (or its removal), the wearables' bindings, and the removal of the
/// bindings of wearables no longer listed that are still bound to this patient.
pub(crate) async fn writes(
    deps: &Deps<'_>,
    patient: &Patient,
    before: Option<&DirectoryEntry>,
) -> Result<Vec<DirectoryWrite>, ApiError> {
    let mut writes = vec![DirectoryWrite::Patient(patient.entry())];
    writes.push(match patient.family_contact() {
        Some(family) => DirectoryWrite::Family(family),
        None => DirectoryWrite::RemoveFamily(patient.patient_id.clone()),
    });
    for (client_id, binding) in patient.bindings() {
        writes.push(DirectoryWrite::Device { client_id, binding });
    }
    let dropped = before
        .map(|b| b.device_ids.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|d| !patient.devices.contains(d));
    for device in dropped {
        // Only if it is still this patient's (it may have been rebound since).
        if let Some(DeviceBinding::Wearable { bound_patient_id }) = binding_of(deps, device).await?
            && bound_patient_id == patient.patient_id
        {
            writes.push(DirectoryWrite::RemoveDevice(device.clone()));
        }
    }
    Ok(writes)
}
