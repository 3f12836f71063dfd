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
    #[serde(rename = "v")]
    pub value: f64,
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
            acc.add(s.value);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn history(points: &[(i64, f64)]) -> VecDeque<Sample> {
        points
            .iter()
            .map(|(at, value)| Sample {
                id: format!("r{at}"),
                at: *at,
                value: *value,
            })
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
    fn samples_in_keeps_the_newest_up_to_the_limit() {
        let h = history(&[(0, 1.0), (10, 2.0), (20, 3.0)]);
        let ids: Vec<_> = samples_in(&h, 0, 21, 2).iter().map(|s| s.at).collect();
        assert_eq!(ids, [10, 20]);
    }
}
