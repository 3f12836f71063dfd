//! What a scenario measured: latency per alerted patient, misses, and detect's invocations;
//! nearest-rank percentiles.

use chrono::{DateTime, Utc};
use devstack::Stack;
use serde_json::{Value, json};

use super::alerts::SeenAlert;

/// The outcome of one scenario.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    pub(super) name: &'static str,
    pub(super) rule: &'static str,
    /// Patients in the scenario.
    pub(super) count: usize,
    /// Requests posted (202).
    pub(super) requests: usize,
    /// Patients whose alerting reading(s) could not be posted (not counted as misses).
    pub(super) post_failures: Vec<String>,
    /// Stored minus 202, ms, per alerted patient.
    pub(super) stored_ms: Vec<f64>,
    /// Envelope timestamp (detect invocation start) minus 202, ms.
    pub(super) raised_ms: Vec<f64>,
    /// Patients posted but not alerted within the wait.
    pub(super) misses: Vec<String>,
    pub(super) wait_seconds: u64,
    pub(super) elapsed_seconds: f64,
    /// detect's invocations during the scenario.
    pub(super) detect: DetectRuns,
}

/// detect's invocations in a span of the run (from the local runner's journal).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct DetectRuns {
    pub(super) invocations: usize,
    /// Errors and timeouts (the batch is then retried).
    pub(super) failed: usize,
    pub(super) mean_ms: f64,
    pub(super) max_ms: f64,
}

impl DetectRuns {
    /// detect's invocations after the first `from`.
    pub(super) fn since(stack: &Stack, from: usize) -> DetectRuns {
        let records = stack.invocations("DetectFunction");
        let span = records.get(from..).unwrap_or_default();
        let ms: Vec<f64> = span
            .iter()
            .map(|r| r.duration.as_secs_f64() * 1000.0)
            .collect();
        DetectRuns {
            invocations: span.len(),
            failed: span
                .iter()
                .filter(|r| !matches!(r.outcome, devstack::InvokeOutcome::Ok(_)))
                .count(),
            mean_ms: if ms.is_empty() {
                0.0
            } else {
                ms.iter().sum::<f64>() / ms.len() as f64
            },
            max_ms: ms.iter().copied().fold(0.0, f64::max),
        }
    }

    pub(super) fn json(self) -> Value {
        json!({
            "invocations": self.invocations,
            "failed": self.failed,
            "meanMs": self.mean_ms.round(),
            "maxMs": self.max_ms.round(),
        })
    }
}

impl Outcome {
    /// Records a patient's result: the latency of its alert, or a miss when there is none
    /// or it was stored after the wait (the same bound for every patient).
    pub(super) fn add(&mut self, patient: String, posted: DateTime<Utc>, alert: Option<SeenAlert>) {
        let wait_ms = self.wait_seconds as f64 * 1000.0;
        match alert {
            Some(alert) if millis(alert.stored, posted) <= wait_ms => {
                self.stored_ms.push(millis(alert.stored, posted));
                self.raised_ms.push(millis(alert.raised, posted));
            }
            _ => self.misses.push(patient),
        }
    }
}

pub(super) fn millis(later: DateTime<Utc>, earlier: DateTime<Utc>) -> f64 {
    (later - earlier)
        .num_microseconds()
        .map(|us| us as f64 / 1000.0)
        .unwrap_or(f64::NAN)
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Stats {
    pub(super) p50: Option<f64>,
    pub(super) p99: Option<f64>,
    pub(super) max: Option<f64>,
}

pub(super) fn stats(values: &[f64]) -> Stats {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    Stats {
        p50: percentile(&sorted, 50.0),
        p99: percentile(&sorted, 99.0),
        max: sorted.last().copied(),
    }
}

impl Stats {
    pub(super) fn json(self) -> Value {
        let round = |v: Option<f64>| v.map(|v| (v * 10.0).round() / 10.0);
        json!({"p50": round(self.p50), "p99": round(self.p99), "max": round(self.max)})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<f64> = (1..=200).map(f64::from).collect();
        let s = stats(&values);
        assert_eq!(
            (s.p50, s.p99, s.max),
            (Some(100.0), Some(198.0), Some(200.0))
        );
        let one = stats(&[7.0]);
        assert_eq!(
            (one.p50, one.p99, one.max),
            (Some(7.0), Some(7.0), Some(7.0))
        );
        assert!(stats(&[]).p50.is_none());
    }
}
