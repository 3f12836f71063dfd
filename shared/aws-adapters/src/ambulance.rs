//! [`AmbulanceProvider`], simulated: the ambulance dispatch provider deployed today, used
//! locally and wherever no real provider is configured. Its failure rate and delay are
//! configuration; whether a given request fails is decided by the request id, so a rate of
//! 0 or 1 is fully deterministic and any rate in between gives the same answer for the same
//! request every time.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use application::ports::{AmbulanceProvider, DispatchOutcome, PortError};

pub struct SimulatedAmbulance {
    /// 0.0 = every request is dispatched, 1.0 = every request fails.
    pub failure_rate: f64,
    /// How long a dispatch call takes.
    pub delay: Duration,
    /// Calls made, for tests and logs: `dispatch:{id}` / `cancel:{id}`.
    pub calls: Mutex<Vec<String>>,
}

impl SimulatedAmbulance {
    pub fn new(failure_rate: f64, delay: Duration) -> Self {
        SimulatedAmbulance {
            failure_rate: failure_rate.clamp(0.0, 1.0),
            delay,
            calls: Mutex::new(Vec::new()),
        }
    }

    /// A number in [0, 1) derived from the request id.
    fn draw(request_id: &str) -> f64 {
        let digest = Sha256::digest(request_id.as_bytes());
        let n = u16::from_be_bytes([digest[0], digest[1]]);
        f64::from(n) / 65536.0
    }

    fn record(&self, call: String) {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(call);
    }
}

#[async_trait]
impl AmbulanceProvider for SimulatedAmbulance {
    async fn dispatch(
        &self,
        request_id: &str,
        _patient_id: &str,
        village: &str,
    ) -> Result<DispatchOutcome, PortError> {
        self.record(format!("dispatch:{request_id}"));
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        if Self::draw(request_id) < self.failure_rate {
            Ok(DispatchOutcome::Failed {
                reason: format!("no ambulance available for {village} (simulated)"),
            })
        } else {
            Ok(DispatchOutcome::Dispatched)
        }
    }

    async fn cancel(&self, request_id: &str) -> Result<(), PortError> {
        self.record(format!("cancel:{request_id}"));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rate_zero_always_dispatches_and_rate_one_always_fails() {
        let ok = SimulatedAmbulance::new(0.0, Duration::ZERO);
        let bad = SimulatedAmbulance::new(1.0, Duration::ZERO);
        for i in 0..50 {
            let id = format!("r-{i}");
            assert_eq!(
                ok.dispatch(&id, "p", "v").await.unwrap(),
                DispatchOutcome::Dispatched
            );
            assert!(matches!(
                bad.dispatch(&id, "p", "v").await.unwrap(),
                DispatchOutcome::Failed { .. }
            ));
        }
    }

    #[tokio::test]
    async fn the_same_request_gets_the_same_answer() {
        let half = SimulatedAmbulance::new(0.5, Duration::ZERO);
        let mut failures = 0;
        for i in 0..200 {
            let id = format!("r-{i}");
            let a = half.dispatch(&id, "p", "v").await.unwrap();
            assert_eq!(a, half.dispatch(&id, "p", "v").await.unwrap());
            failures += usize::from(a != DispatchOutcome::Dispatched);
        }
        assert!((60..140).contains(&failures), "{failures} of 200 failed");
    }
}
