//! Detection state persisted per stream shard (issue 15): the patients' states of one
//! Kinesis shard are packed into a fixed number of bucket items, written only when dirty
//! and at most once per flush interval (plus once before any alert or resolution is
//! carried out). Each patient entry remembers the sequence number of the last record
//! applied to it, so that a replay of the shard from the snapshot's watermark applies
//! every record exactly once to each patient (docs/detection.md, "State per shard").

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::PatientState;

/// One patient's state in a bucket.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotEntry {
    /// Sequence number (in the shard) of the last record applied to this state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<String>,
    /// Saves of this state (the per-patient optimistic version `detect` checks in memory).
    pub version: u64,
    pub state: PatientState,
}

/// One bucket of a shard: the patients whose id hashes to it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bucket {
    pub index: u32,
    /// Saves of this bucket item (conditional writes: a stale process cannot overwrite a
    /// newer snapshot).
    pub version: u64,
    pub patients: BTreeMap<String, SnapshotEntry>,
}

/// A shard's snapshot header.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardMeta {
    /// Saves of this item.
    pub version: u64,
    /// Every record of the shard up to this sequence number is in the saved buckets
    /// (`None`: replay from the oldest record the stream keeps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<String>,
    /// How many buckets the shard's patients are spread over (fixed for a shard).
    pub buckets: u32,
    /// The stream the shard belongs to (the sweep replays it).
    pub stream_arn: String,
    /// When the sweep must visit the shard (epoch ms), if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<i64>,
}

/// The bucket of a patient among `buckets` (FNV-1a of the id, as [`super::due_shard`]).
pub fn bucket_of(patient_id: &str, buckets: u32) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in patient_id.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    // Murmur3's finaliser: every bit of the id reaches the low bits taken by `%`, so the
    // buckets are even and independent of `due_shard`'s.
    hash ^= hash >> 16;
    hash = hash.wrapping_mul(0x85eb_ca6b);
    hash ^= hash >> 13;
    hash = hash.wrapping_mul(0xc2b2_ae35);
    hash ^= hash >> 16;
    hash % buckets.max(1)
}

/// Orders two Kinesis sequence numbers of one shard (decimal strings of up to 128 bits,
/// which grow with the record's position in the shard).
pub fn compare_seq(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Whether the record `seq` is newer than what `applied` says was applied already.
pub fn is_new(seq: &str, applied: Option<&str>) -> bool {
    applied.is_none_or(|applied| compare_seq(seq, applied) == Ordering::Greater)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_order_by_value() {
        assert_eq!(compare_seq("9", "10"), Ordering::Less);
        assert_eq!(
            compare_seq(
                "49590338271490256608559692538361571095921575989136588898",
                "49590338271490256608559692538361571095921575989136588899"
            ),
            Ordering::Less
        );
        assert_eq!(compare_seq("007", "7"), Ordering::Equal);
        assert!(is_new("5", None));
        assert!(is_new("12", Some("11")));
        assert!(!is_new("11", Some("11")));
        assert!(!is_new("3", Some("11")));
    }

    #[test]
    fn buckets_spread_patients() {
        let mut counts = [0u32; 8];
        for i in 0..800 {
            counts[bucket_of(&format!("p-{i}"), 8) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c > 50), "{counts:?}");
    }
}
