//! How far a patient's readings have progressed, and the frontier: the reading time up to
//! which evaluation is final.
//!
//! - Each reading moves its device's progress and the patient's to its own time, but no
//!   further than when it arrived (ingest's clock): a device whose clock runs ahead cannot
//!   make another device's correct readings late. A reading is late only when a reading
//!   that arrived before it was taken after it.
//! - The frontier moves (only while readings wait) to the largest of
//!   - the progress of the slowest device that sent within the allowed lateness, so one
//!     device sending in its own order is evaluated on arrival;
//!   - the patient's progress minus the allowed lateness;
//!   - the clock minus the allowed lateness, capped at the newest reading time, so
//!     readings never wait longer than the allowed lateness by the clock (in a later batch,
//!     or by the sweep when the patient has gone silent).

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
    let progress = state.progress.unwrap_or(watermark);
    let by_progress = progress.saturating_sub(lateness_ms);
    let by_clock = now_ms.saturating_sub(lateness_ms).min(watermark);
    let by_devices = state
        .devices
        .values()
        .map(|clock| clock.progress)
        .min()
        .unwrap_or(i64::MIN);
    let target = by_progress.max(by_clock).max(by_devices);
    if state.frontier.is_none_or(|f| target > f) {
        state.frontier = Some(target);
    }
    pruned
}
