//! Retry with capped exponential backoff and full jitter.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use tokio::time::Instant;

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

/// Time kept back from the invocation's deadline: retrying stops this long before it, so
/// the caller gets the designed answer (ingest's 503) rather than a Lambda timeout.
pub const DEADLINE_RESERVE: Duration = Duration::from_millis(500);

/// When retrying must stop: `reserve` before `deadline`, on tokio's clock (`None`: no
/// deadline, the attempts alone bound the retries).
fn stop_at(deadline: Option<DateTime<Utc>>, reserve: Duration) -> Option<Instant> {
    let deadline = deadline?;
    let left = (deadline - Utc::now()).to_std().unwrap_or(Duration::ZERO);
    Some(Instant::now() + left.saturating_sub(reserve))
}

/// Puts `records` with `put_batch`, which returns, per record sent, `None` for success or
/// `Some(error code)`; only the records that failed are sent again, with backoff, until
/// all are written, the attempts run out, or the next try would pass `deadline` (less
/// [`DEADLINE_RESERVE`]). A whole-call error is retried the same way; a call still
/// running at the deadline is abandoned (the caller retries the request; the readings'
/// ids are deterministic, so whatever that call wrote is deduplicated downstream).
pub async fn put_all<F, Fut>(
    records: Vec<StreamRecord>,
    policy: &RetryPolicy,
    deadline: Option<DateTime<Utc>>,
    put_batch: F,
) -> Result<(), PortError>
where
    F: FnMut(Vec<StreamRecord>) -> Fut,
    Fut: Future<Output = Result<Vec<Option<String>>, PortError>>,
{
    put_all_until(
        records,
        policy,
        stop_at(deadline, DEADLINE_RESERVE),
        put_batch,
    )
    .await
}

async fn put_all_until<F, Fut>(
    records: Vec<StreamRecord>,
    policy: &RetryPolicy,
    stop: Option<Instant>,
    mut put_batch: F,
) -> Result<(), PortError>
where
    F: FnMut(Vec<StreamRecord>) -> Fut,
    Fut: Future<Output = Result<Vec<Option<String>>, PortError>>,
{
    let mut pending = records;
    let mut last_problem = String::new();
    let mut attempts = 0;
    while attempts < policy.max_attempts && !pending.is_empty() {
        attempts += 1;
        let call = put_batch(pending.clone());
        let answer = match stop {
            Some(stop) => match tokio::time::timeout_at(stop, call).await {
                Ok(answer) => answer,
                Err(_) => {
                    last_problem = "the invocation's deadline came during the call".into();
                    break;
                }
            },
            None => call.await,
        };
        match answer {
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
        if pending.is_empty() || attempts == policy.max_attempts {
            break;
        }
        let pause = policy.delay(attempts);
        if stop.is_some_and(|stop| Instant::now() + pause >= stop) {
            last_problem =
                format!("{last_problem} (no time left before the invocation's deadline)");
            break;
        }
        tracing::warn!(
            attempt = attempts,
            failed = pending.len(),
            problem = %last_problem,
            "retrying records the stream did not accept"
        );
        tokio::time::sleep(pause).await;
    }
    if pending.is_empty() {
        Ok(())
    } else {
        Err(PortError::Backend(format!(
            "{} records not accepted after {attempts} attempts: {last_problem}",
            pending.len(),
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
        let result = put_all(records(3), &fast(), None, |batch| {
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
        let result = put_all(records(2), &fast(), None, |_| {
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

    /// A stream that never accepts `p-1` (throttled), and accepts the rest at once.
    fn throttling_p1(
        calls: &Mutex<Vec<Vec<String>>>,
    ) -> impl FnMut(Vec<StreamRecord>) -> std::future::Ready<Result<Vec<Option<String>>, PortError>>
    {
        move |batch| {
            calls
                .lock()
                .unwrap()
                .push(batch.iter().map(|r| r.partition_key.clone()).collect());
            std::future::ready(Ok(batch
                .iter()
                .map(|r| {
                    (r.partition_key == "p-1")
                        .then(|| "ProvisionedThroughputExceededException".to_string())
                })
                .collect()))
        }
    }

    /// Patient enough to outlast any invocation: only the deadline can stop it.
    fn patient() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 10_000,
            base_delay: Duration::from_millis(40),
            max_delay: Duration::from_millis(40),
        }
    }

    #[tokio::test]
    async fn retrying_the_failed_records_stops_before_the_invocation_deadline() {
        let calls = Mutex::new(Vec::new());
        let started = Instant::now();
        // The invocation ends in 800 ms; retrying stops DEADLINE_RESERVE (500 ms) before.
        let deadline = Utc::now() + chrono::Duration::milliseconds(800);
        let result = put_all(
            records(3),
            &patient(),
            Some(deadline),
            throttling_p1(&calls),
        )
        .await;
        let elapsed = started.elapsed();
        let err = result.unwrap_err().to_string();
        assert!(err.contains("1 records not accepted"), "{err}");
        assert!(
            err.contains("no time left before the invocation's deadline"),
            "{err}"
        );
        // Back well before the deadline (generous: the machine may be busy).
        assert!(elapsed < Duration::from_millis(700), "{elapsed:?}");
        let calls = calls.into_inner().unwrap();
        assert_eq!(calls[0], ["p-0", "p-1", "p-2"]);
        assert!(calls.len() >= 2, "retried at least once: {calls:?}");
        assert!(calls[1..].iter().all(|c| c == &["p-1"]), "{calls:?}");
    }

    #[tokio::test]
    async fn a_call_still_running_at_the_deadline_is_abandoned() {
        let started = Instant::now();
        let stop = started + Duration::from_millis(200);
        let result = put_all_until(records(2), &patient(), Some(stop), |_| {
            std::future::pending::<Result<Vec<Option<String>>, PortError>>()
        })
        .await;
        let err = result.unwrap_err().to_string();
        assert!(
            err.contains("2 records not accepted after 1 attempts"),
            "{err}"
        );
        assert!(err.contains("deadline came during the call"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn a_deadline_already_past_costs_one_abandoned_call_at_most() {
        let calls = Mutex::new(Vec::new());
        let deadline = Utc::now() - chrono::Duration::seconds(1);
        let result = put_all(
            records(1),
            &patient(),
            Some(deadline),
            throttling_p1(&calls),
        )
        .await;
        // p-0 is accepted by the one call made (a ready answer wins over the deadline).
        assert_eq!(result, Ok(()));
        assert_eq!(calls.into_inner().unwrap().len(), 1);
    }

    #[test]
    fn delays_grow_and_stay_capped() {
        let policy = RetryPolicy::default();
        for attempt in 1..30 {
            assert!(policy.delay(attempt) <= policy.max_delay);
        }
    }
}
