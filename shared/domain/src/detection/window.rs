//! Per-metric reading history and the aggregates windows are computed from.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::config::Aggregate;

/// One evaluated reading of one metric, as kept in a patient's history. Field names are
/// short: this is stored in DynamoDB with the patient's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Reading event id.
    #[serde(rename = "i")]
    pub id: String,
    /// Reading time, Unix milliseconds.
    #[serde(rename = "t")]
    pub at: i64,
    /// The reading's value; for a compacted sample, the mean of the readings it stands for.
    #[serde(rename = "v")]
    pub value: f64,
    /// How many readings the sample stands for: 1, except in compacted history
    /// ([`compact`]), where it is the first reading of a bucket standing for the bucket.
    #[serde(rename = "n", default = "one", skip_serializing_if = "is_one")]
    pub count: u32,
    /// The lowest and highest value of a compacted sample's readings.
    #[serde(rename = "l", default, skip_serializing_if = "Option::is_none")]
    pub low: Option<f64>,
    #[serde(rename = "h", default, skip_serializing_if = "Option::is_none")]
    pub high: Option<f64>,
}

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

impl Sample {
    /// The sample of one reading.
    pub fn reading(id: String, at: i64, value: f64) -> Sample {
        Sample {
            id,
            at,
            value,
            count: 1,
            low: None,
            high: None,
        }
    }

    /// The lowest value the sample stands for.
    pub fn lowest(&self) -> f64 {
        self.low.unwrap_or(self.value)
    }

    /// The highest value the sample stands for.
    pub fn highest(&self) -> f64 {
        self.high.unwrap_or(self.value)
    }

    /// Makes this sample stand for `other`'s readings too (keeping its own id and time):
    /// count, mean, lowest and highest stay exact.
    fn absorb(&mut self, other: &Sample) {
        let (n, m) = (f64::from(self.count), f64::from(other.count));
        self.value = (self.value * n + other.value * m) / (n + m);
        self.low = Some(self.lowest().min(other.lowest()));
        self.high = Some(self.highest().max(other.highest()));
        self.count = self.count.saturating_add(other.count);
    }
}

/// Running aggregate of the samples in a window.
#[derive(Debug, Clone, Copy)]
pub struct Accumulator {
    pub count: u32,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}

impl Default for Accumulator {
    fn default() -> Self {
        Accumulator {
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }
}

impl Accumulator {
    pub fn add(&mut self, value: f64) {
        self.count += 1;
        self.sum += value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    /// Adds every reading `sample` stands for.
    pub fn add_sample(&mut self, sample: &Sample) {
        self.count = self.count.saturating_add(sample.count);
        self.sum += sample.value * f64::from(sample.count);
        self.min = self.min.min(sample.lowest());
        self.max = self.max.max(sample.highest());
    }

    /// The aggregate, or `None` when the window is empty (except `count`, which is 0).
    pub fn value(&self, aggregate: Aggregate) -> Option<f64> {
        match (aggregate, self.count) {
            (Aggregate::Count, n) => Some(f64::from(n)),
            (_, 0) => None,
            (Aggregate::Avg, n) => Some(self.sum / f64::from(n)),
            (Aggregate::Min, _) => Some(self.min),
            (Aggregate::Max, _) => Some(self.max),
        }
    }
}

/// Aggregates the samples with `from <= at < to` (the history is in reading-time order).
pub fn aggregate_range(history: &VecDeque<Sample>, from: i64, to: i64) -> Accumulator {
    let mut acc = Accumulator::default();
    for s in history.iter().rev() {
        if s.at < from {
            break;
        }
        if s.at < to {
            acc.add_sample(s);
        }
    }
    acc
}

/// The samples with `from <= at < to`, newest last, at most `limit` (the newest ones).
pub fn samples_in(history: &VecDeque<Sample>, from: i64, to: i64, limit: usize) -> Vec<&Sample> {
    let mut out: Vec<&Sample> = history
        .iter()
        .rev()
        .take_while(|s| s.at >= from)
        .filter(|s| s.at < to)
        .take(limit)
        .collect();
    out.reverse();
    out
}

/// Start of the tumbling window of `size_ms` that contains `at` (aligned on the epoch).
pub fn bucket_start(at: i64, size_ms: i64) -> i64 {
    at.div_euclid(size_ms) * size_ms
}

/// Bucket widths [`compact`] tries, smallest first. Each divides the next and every
/// tumbling window of whole minutes up to 5 minutes (and 10, 30, 60): buckets never
/// straddle such a window's boundary, so its aggregates stay exact.
const COMPACT_BUCKETS_MS: [i64; 10] = [
    1_000, 2_000, 5_000, 10_000, 30_000, 60_000, 300_000, 600_000, 1_800_000, 3_600_000,
];

/// Compacts `history` to at most `cap` samples: the newest `keep` stay as they are (the
/// timeline rules evaluate reading by reading); older ones are merged per bucket of time
/// (aligned on the epoch) of the smallest width that fits, each bucket into its first
/// sample ([`Sample::count`], mean, lowest, highest: window aggregates stay exact but for
/// the bucket's position at a sliding window's edge). If even hour buckets do not fit, the
/// oldest are dropped. Returns whether anything changed.
pub fn compact(history: &mut VecDeque<Sample>, keep: usize, cap: usize) -> bool {
    if history.len() <= cap {
        return false;
    }
    let keep = keep.min(cap);
    let older = history.len() - keep;
    let allowed = cap - keep;
    let buckets = |width: i64| {
        let mut count = 0usize;
        let mut last = None;
        for s in history.iter().take(older) {
            let b = bucket_start(s.at, width);
            if last != Some(b) {
                count += 1;
                last = Some(b);
            }
        }
        count
    };
    let width = COMPACT_BUCKETS_MS
        .iter()
        .copied()
        .find(|&w| buckets(w) <= allowed)
        .unwrap_or(COMPACT_BUCKETS_MS[COMPACT_BUCKETS_MS.len() - 1]);
    let mut merged: VecDeque<Sample> = VecDeque::with_capacity(cap);
    let mut rest = std::mem::take(history).into_iter();
    for s in rest.by_ref().take(older) {
        match merged.back_mut() {
            Some(last) if bucket_start(last.at, width) == bucket_start(s.at, width) => {
                last.absorb(&s)
            }
            _ => merged.push_back(s),
        }
    }
    while merged.len() > allowed {
        merged.pop_front();
    }
    merged.extend(rest);
    *history = merged;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(points: &[(i64, f64)]) -> VecDeque<Sample> {
        points
            .iter()
            .map(|(at, value)| Sample::reading(format!("r{at}"), *at, *value))
            .collect()
    }

    #[test]
    fn aggregates_a_half_open_range() {
        let h = history(&[(0, 1.0), (10, 2.0), (20, 3.0), (30, 10.0)]);
        let acc = aggregate_range(&h, 10, 30);
        assert_eq!(acc.value(Aggregate::Count), Some(2.0));
        assert_eq!(acc.value(Aggregate::Avg), Some(2.5));
        assert_eq!(acc.value(Aggregate::Min), Some(2.0));
        assert_eq!(acc.value(Aggregate::Max), Some(3.0));
        let empty = aggregate_range(&h, 100, 200);
        assert_eq!(empty.value(Aggregate::Avg), None);
        assert_eq!(empty.value(Aggregate::Count), Some(0.0));
    }

    #[test]
    fn buckets_align_on_the_epoch_also_before_it() {
        assert_eq!(bucket_start(0, 600_000), 0);
        assert_eq!(bucket_start(599_999, 600_000), 0);
        assert_eq!(bucket_start(600_000, 600_000), 600_000);
        assert_eq!(bucket_start(-1, 600_000), -600_000);
    }

    #[test]
    fn compaction_keeps_the_newest_and_the_aggregates_of_whole_buckets() {
        // 1 Hz for 10 minutes: 600 samples into at most 100, the newest 32 untouched.
        let points: Vec<(i64, f64)> = (0..600).map(|i| (i * 1000, (i % 13) as f64)).collect();
        let mut h = history(&points);
        let before = h.clone();
        assert!(compact(&mut h, 32, 100));
        assert!(h.len() <= 100, "{}", h.len());
        assert_eq!(
            h.iter().rev().take(32).collect::<Vec<_>>(),
            before.iter().rev().take(32).collect::<Vec<_>>()
        );
        assert_eq!(h.iter().map(|s| s.count).sum::<u32>(), 600);
        // A 5-minute tumbling window's aggregates are exact.
        for (from, to) in [(0, 300_000), (300_000, 600_000)] {
            let (a, b) = (
                aggregate_range(&before, from, to),
                aggregate_range(&h, from, to),
            );
            for agg in [
                Aggregate::Count,
                Aggregate::Avg,
                Aggregate::Min,
                Aggregate::Max,
            ] {
                let (x, y) = (a.value(agg).unwrap(), b.value(agg).unwrap());
                assert!((x - y).abs() < 1e-9, "{agg:?}: {x} vs {y}");
            }
        }
        // Stored and read back alike; compacting again changes nothing.
        let text = serde_json::to_string(&h).unwrap();
        assert_eq!(serde_json::from_str::<VecDeque<Sample>>(&text).unwrap(), h);
        assert!(!compact(&mut h, 32, 100));
        // Plain samples are stored as before: no count, low or high.
        assert_eq!(
            serde_json::to_string(&before[0]).unwrap(),
            r#"{"i":"r0","t":0,"v":0.0}"#
        );
    }

    #[test]
    fn samples_in_keeps_the_newest_up_to_the_limit() {
        let h = history(&[(0, 1.0), (10, 2.0), (20, 3.0)]);
        let ids: Vec<_> = samples_in(&h, 0, 21, 2).iter().map(|s| s.at).collect();
        assert_eq!(ids, [10, 20]);
    }
}
