//! Recent vitals in `detect` (docs/read-side.md): the accepted readings of a patient's open
//! hour ride in the state `detect` saves anyway; closed hours are written as one block each
//! to the vitals table BEFORE the state that no longer holds them is saved (a crash between
//! the two: the retry rebuilds the same block, same key, and rewrites the same item). The
//! readings flushed are counted per (village, day) and added to the village statistics
//! once per batch, after the states were saved.

use std::collections::HashMap;

use application::ports::PortError;
use chrono::{DateTime, Utc};
use domain::detection::{PatientState, ReadingInput};
use domain::routing::UNKNOWN_VILLAGE;
use domain::village_stats::{READINGS, StatsDelta};
use domain::vitals::{self, HourBlock};

use crate::{BatchSummary, Deps};

/// Adds the readings the engine accepted (inputs minus its duplicates: redeliveries and
/// repeats within the batch) to the state's buffer.
pub(crate) fn buffer<I: ReadingInput>(
    state: &mut PatientState,
    inputs: &[I],
    duplicates: &[String],
) {
    // Of an id's occurrences, the engine accepts at most the first; `duplicates` names the
    // rest (and all of them when it had the id already).
    let mut accepted: HashMap<&str, usize> = HashMap::new();
    if !duplicates.is_empty() {
        for input in inputs {
            *accepted.entry(input.event_id()).or_default() += 1;
        }
        for id in duplicates {
            if let Some(n) = accepted.get_mut(id.as_str()) {
                *n = n.saturating_sub(1);
            }
        }
    }
    for input in inputs {
        if !duplicates.is_empty() {
            match accepted.get_mut(input.event_id()) {
                Some(n) if *n > 0 => *n = 0,
                _ => continue,
            }
        }
        vitals::record(
            &mut state.vitals,
            input.timestamp().timestamp_millis(),
            input.vital(),
            input.value(),
            input.device_id(),
        );
    }
}

/// When the sweep must next look at the state: the engine's due time, or the end (plus
/// grace) of the oldest buffered hour, whichever comes first.
pub(crate) fn due(engine_due: Option<i64>, state: &PatientState) -> Option<i64> {
    match (engine_due, vitals::flush_due(&state.vitals)) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Writes the buffer's closed hours (one item each) and takes them out of the state.
/// Returns the blocks written, to count once the state is saved.
pub(crate) async fn flush(
    deps: &Deps<'_>,
    patient_id: &str,
    state: &mut PatientState,
    now: DateTime<Utc>,
    summary: &mut BatchSummary,
) -> Result<Vec<HourBlock>, PortError> {
    let closed = vitals::take_closed(&mut state.vitals, now.timestamp_millis());
    for block in &closed {
        deps.vitals.put_block(patient_id, block).await?;
        summary.vitals_writes += 1;
        lambda_kit::fault::crash_point("detect.after_write_vitals");
    }
    Ok(closed)
}

/// Counts the flushed readings of a patient (whose state is now saved) by village and day.
pub(crate) async fn count(
    deps: &Deps<'_>,
    patient_id: &str,
    flushed: &[HourBlock],
    summary: &mut BatchSummary,
) {
    if flushed.is_empty() {
        return;
    }
    let village = match deps.directory.get(patient_id).await {
        Ok(entry) => entry
            .map(|e| e.village)
            .unwrap_or_else(|| UNKNOWN_VILLAGE.to_string()),
        Err(err) => {
            tracing::warn!(patient_id, error = %err, "directory unavailable: flushed readings not counted in the village statistics");
            return;
        }
    };
    for block in flushed {
        *summary
            .village_readings
            .entry((village.clone(), block.day()))
            .or_default() += i64::from(block.count);
    }
}

/// Adds the batch's flushed readings to the village statistics: one `UpdateItem ADD` per
/// (village, day). At most once: a failure here is logged, not retried (the readings are
/// safe in the vitals table; only the daily count misses them).
pub(crate) async fn add_village_readings(deps: &Deps<'_>, summary: &BatchSummary) {
    for ((village, date), count) in &summary.village_readings {
        let delta = StatsDelta {
            village: village.clone(),
            date: date.clone(),
            marker: None,
            counters: [(READINGS.to_string(), *count)].into_iter().collect(),
        };
        if let Err(err) = deps.village_stats.add(&delta).await {
            tracing::warn!(village, date, count, error = %err, "village readings count not added");
        }
    }
}
