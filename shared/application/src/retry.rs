//! Retry with capped exponential backoff and full jitter.

use std::future::Future;
use std::time::Duration;

use rand::Rng;

use crate::ports::{PortError, StreamRecord};

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// The pause before attempt `attempt + 1` (attempt counts from 1): random in
    /// `0..=min(max_delay, base_delay * 2^(attempt-1))`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let cap = exp.min(self.max_delay);
        let millis = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(0..=millis))
    }
}

/// Puts `records` with `put_batch`, which returns, per record sent, `None` for success or
/// `Some(error code)`; records that failed are sent again with backoff until all are
/// written or the attempts run out. A whole-call error is retried the same way.
pub async fn put_all<F, Fut>(
    records: Vec<StreamRecord>,
    policy: &RetryPolicy,
    mut put_batch: F,
) -> Result<(), PortError>
where
    F: FnMut(Vec<StreamRecord>) -> Fut,
    Fut: Future<Output = Result<Vec<Option<String>>, PortError>>,
{
    let mut pending = records;
    let mut last_problem = String::new();
    for attempt in 1..=policy.max_attempts {
        if pending.is_empty() {
            return Ok(());
        }
        match put_batch(pending.clone()).await {
            Ok(results) if results.len() == pending.len() => {
                let mut failed = Vec::new();
                for (record, result) in pending.into_iter().zip(results) {
                    if let Some(code) = result {
                        last_problem = code;
                        failed.push(record);
                    }
                }
                pending = failed;
            }
            Ok(results) => {
                last_problem = format!(
                    "the stream answered {} results for {} records",
                    results.len(),
                    pending.len()
                );
            }
            Err(err) => last_problem = err.to_string(),
        }
        if !pending.is_empty() && attempt < policy.max_attempts {
            tracing::warn!(
                attempt,
                failed = pending.len(),
                problem = %last_problem,
                "retrying records the stream did not accept"
            );
            tokio::time::sleep(policy.delay(attempt)).await;
        }
    }
    if pending.is_empty() {
        Ok(())
    } else {
        Err(PortError::Backend(format!(
            "{} records not accepted after {} attempts: {last_problem}",
            pending.len(),
            policy.max_attempts
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn records(n: usize) -> Vec<StreamRecord> {
        (0..n)
            .map(|i| StreamRecord {
                partition_key: format!("p-{i}"),
                data: vec![i as u8],
            })
            .collect()
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        }
    }

    #[tokio::test]
    async fn retries_only_the_records_that_failed() {
        let calls = Mutex::new(Vec::new());
        let result = put_all(records(3), &fast(), |batch| {
            let n = {
                let mut calls = calls.lock().unwrap();
                calls.push(
                    batch
                        .iter()
                        .map(|r| r.partition_key.clone())
                        .collect::<Vec<_>>(),
                );
                calls.len()
            };
            async move {
                // First call: the middle record is throttled; later calls succeed.
                Ok(batch
                    .iter()
                    .map(|r| {
                        (n == 1 && r.partition_key == "p-1")
                            .then(|| "ProvisionedThroughputExceededException".to_string())
                    })
                    .collect())
            }
        })
        .await;
        assert_eq!(result, Ok(()));
        let calls = calls.into_inner().unwrap();
        assert_eq!(calls, vec![vec!["p-0", "p-1", "p-2"], vec!["p-1"]]);
    }

    #[tokio::test]
    async fn gives_up_after_max_attempts_naming_the_problem() {
        let attempts = Mutex::new(0);
        let result = put_all(records(2), &fast(), |_| {
            *attempts.lock().unwrap() += 1;
            async { Err(PortError::Backend("network down".into())) }
        })
        .await;
        let err = result.unwrap_err().to_string();
        assert!(
            err.contains("2 records not accepted after 4 attempts"),
            "{err}"
        );
        assert!(err.contains("network down"));
        assert_eq!(*attempts.lock().unwrap(), 4);
    }

    #[test]
    fn delays_grow_and_stay_capped() {
        let policy = RetryPolicy::default();
        for attempt in 1..30 {
            assert!(policy.delay(attempt) <= policy.max_delay);
        }
    }
}
