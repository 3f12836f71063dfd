//! Recent vitals: the readings `detect` accepted, kept for the dashboard (at least 7 days)
//! within the write budget of the reading path (docs/read-side.md).
//!
//! `detect` saves each patient's [`crate::detection::PatientState`] anyway when it applies
//! the patient's readings. The state carries the accepted readings of the patient's open
//! hour(s) ([`OpenHour`], a compact text encoding, bounded by [`BUFFER_READINGS_BOUND`]),
//! which costs no extra request. When a reading of a later hour arrives, or the sweep
//! visits the patient after the hour ended ([`FLUSH_GRACE_MS`]), each closed hour is
//! written as ONE item ([`HourBlock`]) of the vitals table: about 17 writes per 1,000
//! readings at one reading a minute.
//!
//! A block's sort key is the hour and a digest of its content: a retried flush (same
//! state, same readings) rewrites the same item; late readings of an hour already flushed
//! make a second block of that hour with another digest; nothing is ever overwritten with
//! other content. Readers merge the blocks of an hour and drop repeats by (time, metric,
//! device).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::reading::VitalType;

/// One hour, in Unix milliseconds.
pub const HOUR_MS: i64 = 3_600_000;
/// How long after its end an hour waits for the patient's next reading before the sweep
/// flushes it (a live patient's own next reading flushes it first, at no extra request).
/// Long on purpose: until then the read side serves the hour from the state, and a device
/// uploading a backlog in several batches still makes one block per hour, not one per
/// batch.
pub const FLUSH_GRACE_MS: i64 = 2 * HOUR_MS;
/// The most buffered readings a state keeps (over its open hours); past it, the oldest
/// hour is flushed early (a partial block: its rest makes a second block).
pub const BUFFER_READINGS_BOUND: usize = 480;
/// How long a block is kept (the table's TTL): 8 days after its hour.
pub const RETENTION_MS: i64 = 8 * 24 * HOUR_MS;
/// The longest window `GET /patients/{id}/readings` serves.
pub const MAX_WINDOW_MS: i64 = 7 * 24 * HOUR_MS;

/// The accepted readings of one hour not yet written to the vitals table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OpenHour {
    /// Start of the hour (Unix ms).
    #[serde(rename = "s")]
    pub start: i64,
    /// The devices of the readings (indexed by the encoding).
    #[serde(rename = "d", default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    /// How many readings `readings` holds.
    #[serde(rename = "n")]
    pub count: u32,
    /// The readings, [`encode`]d.
    #[serde(rename = "r")]
    pub readings: String,
}

/// A reading as kept in the vitals table.
#[derive(Debug, Clone, PartialEq)]
pub struct VitalSample {
    /// Reading time (Unix ms).
    pub at: i64,
    pub metric: VitalType,
    pub value: f64,
    pub device: Option<String>,
}

/// A closed hour (or part of one) to write as one item.
#[derive(Debug, Clone, PartialEq)]
pub struct HourBlock {
    pub start: i64,
    pub devices: Vec<String>,
    pub count: u32,
    pub readings: String,
}

/// Why a stored block does not decode.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("malformed vitals entry {entry:?}")]
pub struct DecodeError {
    pub entry: String,
}

/// The start of the hour `at` falls in.
pub fn hour_of(at: i64) -> i64 {
    at.div_euclid(HOUR_MS) * HOUR_MS
}

fn metric_code(metric: VitalType) -> usize {
    VitalType::ALL
        .iter()
        .position(|m| *m == metric)
        .unwrap_or_default()
}

/// Adds an accepted reading to the buffer (hours kept in time order).
pub fn record(buffer: &mut Vec<OpenHour>, at: i64, metric: VitalType, value: f64, device: &str) {
    let start = hour_of(at);
    let index = match buffer.binary_search_by_key(&start, |h| h.start) {
        Ok(i) => i,
        Err(i) => {
            buffer.insert(
                i,
                OpenHour {
                    start,
                    ..OpenHour::default()
                },
            );
            i
        }
    };
    let Some(hour) = buffer.get_mut(index) else {
        return;
    };
    let device_index = match hour.devices.iter().position(|d| d == device) {
        Some(i) => i,
        None => {
            hour.devices.push(device.to_string());
            hour.devices.len() - 1
        }
    };
    if !hour.readings.is_empty() {
        hour.readings.push(';');
    }
    use std::fmt::Write;
    let _ = write!(
        hour.readings,
        "{},{},{},{}",
        at - start,
        metric_code(metric),
        value,
        device_index
    );
    hour.count += 1;
}

/// Takes the hours to write now out of the buffer: every hour older than the newest one
/// buffered (a later reading arrived), every hour that ended [`FLUSH_GRACE_MS`] before
/// `now_ms`, and the oldest hours while the buffer holds more than
/// [`BUFFER_READINGS_BOUND`] readings.
pub fn take_closed(buffer: &mut Vec<OpenHour>, now_ms: i64) -> Vec<HourBlock> {
    let newest = buffer.last().map(|h| h.start);
    let mut total: usize = buffer.iter().map(|h| h.count as usize).sum();
    let mut closed = Vec::new();
    buffer.retain(|hour| {
        let over = total > BUFFER_READINGS_BOUND;
        let close =
            Some(hour.start) != newest || hour.start + HOUR_MS + FLUSH_GRACE_MS <= now_ms || over;
        if close {
            total = total.saturating_sub(hour.count as usize);
            closed.push(HourBlock {
                start: hour.start,
                devices: hour.devices.clone(),
                count: hour.count,
                readings: hour.readings.clone(),
            });
        }
        !close
    });
    closed
}

/// When the sweep must flush the buffer if no later reading comes: the oldest hour's end
/// plus [`FLUSH_GRACE_MS`].
pub fn flush_due(buffer: &[OpenHour]) -> Option<i64> {
    buffer.first().map(|h| h.start + HOUR_MS + FLUSH_GRACE_MS)
}

impl HourBlock {
    /// The block's sort key: the hour (`2026-11-30T22`, sorts as time) and a digest of
    /// its content, so the same content always lands on the same item.
    pub fn sort_key(&self, patient_id: &str) -> String {
        let digest = crate::ids::deterministic_id(&[
            "vitals",
            patient_id,
            &self.start.to_string(),
            &self.devices.join("\u{1e}"),
            &self.readings,
        ]);
        let short: String = digest.chars().filter(|c| *c != '-').take(12).collect();
        format!("{}#{short}", hour_key(self.start))
    }

    /// When the table may forget the block.
    pub fn expires_at_seconds(&self) -> i64 {
        (self.start + HOUR_MS + RETENTION_MS) / 1000
    }

    /// The UTC day of the block (`YYYY-MM-DD`), for village statistics.
    pub fn day(&self) -> String {
        day_key(self.start)
    }

    pub fn samples(&self) -> Result<Vec<VitalSample>, DecodeError> {
        decode(self.start, &self.devices, &self.readings)
    }
}

/// `2026-11-30T22`: the sort-key prefix of an hour.
pub fn hour_key(start: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(start)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H")
        .to_string()
}

/// `2026-11-30`: the UTC day of a time.
pub fn day_key(at: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(at)
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string()
}

/// Decodes the readings of a block (or of an open hour).
pub fn decode(
    start: i64,
    devices: &[String],
    readings: &str,
) -> Result<Vec<VitalSample>, DecodeError> {
    if readings.is_empty() {
        return Ok(Vec::new());
    }
    readings
        .split(';')
        .map(|entry| {
            let bad = || DecodeError {
                entry: entry.to_string(),
            };
            let mut parts = entry.split(',');
            let offset: i64 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
            let metric: usize = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
            let value: f64 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
            let device: usize = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
            if parts.next().is_some() || !(0..HOUR_MS).contains(&offset) {
                return Err(bad());
            }
            let metric = *VitalType::ALL.get(metric).ok_or_else(bad)?;
            Ok(VitalSample {
                at: start + offset,
                metric,
                value,
                device: devices.get(device).cloned(),
            })
        })
        .collect()
}

/// Samples in time order (then metric), repeats (same time, metric and device, from blocks
/// written twice by a raced flush) dropped.
pub fn merge(mut samples: Vec<VitalSample>) -> Vec<VitalSample> {
    samples.sort_by(|a, b| {
        (a.at, metric_code(a.metric), &a.device).cmp(&(b.at, metric_code(b.metric), &b.device))
    });
    let mut seen = BTreeSet::new();
    samples.retain(|s| seen.insert((s.at, metric_code(s.metric), s.device.clone())));
    samples
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 1_764_540_000_000; // 2025-11-30T22:00Z

    #[test]
    fn an_hour_round_trips_through_the_encoding() {
        let mut buffer = Vec::new();
        record(&mut buffer, H + 1_000, VitalType::HeartRate, 72.0, "d-1");
        record(&mut buffer, H + 61_000, VitalType::Spo2, 97.5, "d-2");
        assert_eq!(buffer.len(), 1);
        let hour = &buffer[0];
        assert_eq!(hour.count, 2);
        let samples = decode(hour.start, &hour.devices, &hour.readings).unwrap();
        assert_eq!(samples[0].at, H + 1_000);
        assert_eq!(samples[1].metric, VitalType::Spo2);
        assert_eq!(samples[1].value, 97.5);
        assert_eq!(samples[1].device.as_deref(), Some("d-2"));
    }

    #[test]
    fn a_later_hour_closes_the_earlier_one() {
        let mut buffer = Vec::new();
        record(
            &mut buffer,
            H + 59 * 60_000,
            VitalType::HeartRate,
            70.0,
            "d",
        );
        assert!(take_closed(&mut buffer, H + 59 * 60_000).is_empty());
        record(
            &mut buffer,
            H + 60 * 60_000,
            VitalType::HeartRate,
            71.0,
            "d",
        );
        let closed = take_closed(&mut buffer, H + 60 * 60_000);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].start, H);
        assert_eq!(buffer.len(), 1);
        assert_eq!(buffer[0].start, H + HOUR_MS);
        assert_eq!(flush_due(&buffer), Some(H + 2 * HOUR_MS + FLUSH_GRACE_MS));
    }

    #[test]
    fn the_sweep_flushes_an_hour_after_the_grace() {
        let mut buffer = Vec::new();
        record(&mut buffer, H, VitalType::HeartRate, 70.0, "d");
        assert!(take_closed(&mut buffer, H + HOUR_MS + FLUSH_GRACE_MS - 1).is_empty());
        assert_eq!(
            take_closed(&mut buffer, H + HOUR_MS + FLUSH_GRACE_MS).len(),
            1
        );
        assert!(buffer.is_empty());
    }

    #[test]
    fn a_late_reading_of_a_flushed_hour_makes_a_second_block_with_another_key() {
        let mut buffer = Vec::new();
        record(&mut buffer, H + 10, VitalType::HeartRate, 70.0, "d");
        record(&mut buffer, H + HOUR_MS, VitalType::HeartRate, 70.0, "d");
        let first = take_closed(&mut buffer, H + HOUR_MS);
        record(&mut buffer, H + 20, VitalType::HeartRate, 80.0, "d");
        let second = take_closed(&mut buffer, H + HOUR_MS);
        assert_eq!(second.len(), 1);
        let (a, b) = (first[0].sort_key("p"), second[0].sort_key("p"));
        assert_ne!(a, b);
        assert!(a.starts_with("2025-11-30T22#") && b.starts_with("2025-11-30T22#"));
        // The same content gives the same key (a retried flush rewrites the same item).
        assert_eq!(first[0].sort_key("p"), a);
    }

    #[test]
    fn the_buffer_is_bounded() {
        let mut buffer = Vec::new();
        for i in 0..=BUFFER_READINGS_BOUND as i64 {
            record(&mut buffer, H + i, VitalType::HeartRate, 70.0, "d");
        }
        let closed = take_closed(&mut buffer, H);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].count as usize, BUFFER_READINGS_BOUND + 1);
        assert!(buffer.is_empty());
    }

    #[test]
    fn merge_sorts_and_drops_repeats() {
        let s = |at, v| VitalSample {
            at,
            metric: VitalType::HeartRate,
            value: v,
            device: Some("d".into()),
        };
        let merged = merge(vec![s(3, 1.0), s(1, 2.0), s(3, 1.0)]);
        assert_eq!(merged, vec![s(1, 2.0), s(3, 1.0)]);
    }

    #[test]
    fn malformed_entries_are_errors() {
        assert!(decode(H, &[], "1,0,70").is_err());
        assert!(decode(H, &[], "1,9,70,0").is_err());
        assert!(decode(H, &[], "3600000,0,70,0").is_err());
        assert_eq!(decode(H, &[], "1,0,70,0").unwrap()[0].device, None);
    }
}
