//! How far a patient's readings have progressed, and the frontier: the reading time up to
//! which evaluation is final.
//!
//! - Each reading moves its device's progress and the patient's to its own time, but no
//!   further than when it arrived (ingest's clock): a device whose clock runs ahead cannot
//!   make another device's correct readings late. A reading is late only when a reading
//!   that arrived before it was taken after it.
//! - The frontier moves (only while readings wait) to the progress of the slowest device
//!   that sent within the allowed lateness (counting its own readings that have waited the
//!   allowed lateness since they arrived, for a device whose clock runs ahead); when no
//!   device has sent within the allowed lateness, to the newest reading. So one device
//!   sending in its own order is evaluated on arrival; several devices wait for the
//!   slowest, at most the allowed lateness after it falls silent (in a later batch, or by
//!   the sweep); and a phone uploading a visit holds the others back until its whole upload
//!   is in, whatever batches it was cut into.

use std::collections::BTreeMap;

use super::state::{DeviceClock, PatientState};

/// Records a new reading's time (`at`) and arrival (`received`) in the patient's and its
/// device's progress.
pub(super) fn observe(state: &mut PatientState, device: &str, at: i64, received: i64) {
    let clamped = at.min(received);
    state.watermark = Some(state.watermark.map_or(at, |w| w.max(at)));
    state.progress = Some(state.progress.map_or(clamped, |p| p.max(clamped)));
    match state.devices.get_mut(device) {
        Some(clock) => {
            clock.progress = clock.progress.max(clamped);
            clock.seen = clock.seen.max(received);
        }
        None => {
            state.devices.insert(
                device.to_string(),
                DeviceClock {
                    progress: clamped,
                    seen: received,
                },
            );
        }
    }
}

/// Forgets devices silent for longer than the allowed lateness and moves the frontier.
/// Returns whether a device was forgotten.
pub(super) fn advance(state: &mut PatientState, lateness_ms: i64, now_ms: i64) -> bool {
    let active_since = now_ms.saturating_sub(lateness_ms);
    let before = state.devices.len();
    state.devices.retain(|_, clock| clock.seen >= active_since);
    let pruned = state.devices.len() != before;
    let (Some(watermark), false) = (state.watermark, state.pending.is_empty()) else {
        return pruned;
    };
    // Each active device's progress, and its own readings that have waited the allowed
    // lateness (a device whose clock runs ahead).
    let mut reached: BTreeMap<&str, i64> = state
        .devices
        .iter()
        .map(|(device, clock)| (device.as_str(), clock.progress))
        .collect();
    for p in state.pending.iter().filter(|p| p.received <= active_since) {
        if let Some(at) = reached.get_mut(p.device.as_str()) {
            *at = (*at).max(p.at);
        }
    }
    // No active device: everything pending is final.
    let target = reached.values().copied().min().unwrap_or(watermark);
    if state.frontier.is_none_or(|f| target > f) {
        state.frontier = Some(target);
    }
    pruned
}
