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

use super::state::{DeviceClock, PatientState};

/// The progress the readings of a batch show, gathered per run of readings from one device
/// (a batch usually holds one device's readings) and written to the state by
/// [`Observed::flush`].
#[derive(Debug, Default)]
pub(super) struct Observed {
    device: Option<String>,
    progress: i64,
    seen: i64,
}

impl Observed {
    /// Records a new reading's time (`at`) and arrival (`received`) in the patient's and
    /// its device's progress: its time, but never later than its arrival.
    pub(super) fn observe(
        &mut self,
        state: &mut PatientState,
        device: &str,
        at: i64,
        received: i64,
    ) {
        let clamped = at.min(received);
        state.watermark = Some(state.watermark.map_or(at, |w| w.max(at)));
        state.progress = Some(state.progress.map_or(clamped, |p| p.max(clamped)));
        if self.device.as_deref() != Some(device) {
            self.flush(state);
            self.device = Some(device.to_string());
            self.progress = clamped;
            self.seen = received;
        } else {
            self.progress = self.progress.max(clamped);
            self.seen = self.seen.max(received);
        }
    }

    /// Writes the gathered device progress into the state.
    pub(super) fn flush(&mut self, state: &mut PatientState) {
        let Some(device) = self.device.take() else {
            return;
        };
        match state.devices.get_mut(&device) {
            Some(clock) => {
                clock.progress = clock.progress.max(self.progress);
                clock.seen = clock.seen.max(self.seen);
            }
            None => {
                state.devices.insert(
                    device,
                    DeviceClock {
                        progress: self.progress,
                        seen: self.seen,
                    },
                );
            }
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
    let waited = |device: &str| {
        state
            .pending
            .iter()
            .filter(|p| p.received <= active_since && *p.device == *device)
            .map(|p| p.at)
            .max()
    };
    // No active device: everything pending is final.
    let target = state
        .devices
        .iter()
        .map(|(device, clock)| clock.progress.max(waited(device).unwrap_or(i64::MIN)))
        .min()
        .unwrap_or(watermark);
    if state.frontier.is_none_or(|f| target > f) {
        state.frontier = Some(target);
    }
    pruned
}
