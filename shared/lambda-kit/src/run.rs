//! The entry helper every function's `main.rs` calls: [`run`].
//!
//! It does the wiring each function would otherwise repeat: JSON logs
//! ([`telemetry::init`]), building the dependencies once per process (logging the reason
//! when that fails), and per invocation a span naming the request and trace
//! ([`telemetry::invocation_span`]), a fresh metrics recorder, the invocation clock and
//! deadline ([`Invocation`]), and a logged, typed error mapped to Lambda's error response.
//!
//! The runtime is `lambda_runtime::Runtime` without its `TracingLayer`: that layer's span
//! has camelCase fields (`requestId`, `xrayTraceId`), which the JSON logs would flatten onto
//! every line next to our snake_case ones.

use std::future::Future;

use chrono::{DateTime, TimeZone, Utc};
use lambda_runtime::{LambdaEvent, Runtime, service_fn};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::telemetry;

pub use lambda_runtime::{Context, Error};

/// One invocation as a handler sees it.
#[derive(Debug)]
pub struct Invocation<E> {
    /// The event, decoded.
    pub payload: E,
    /// Lambda's context (request id, deadline, ARN).
    pub context: Context,
    /// When the invocation started: the handler's clock.
    pub now: DateTime<Utc>,
}

impl<E> Invocation<E> {
    /// When Lambda stops the invocation (its `deadline`), if it is a valid time after the
    /// invocation started. Lambda's is always ahead; `cargo lambda watch`'s emulator sends a
    /// constant 600000 (ten minutes as a duration, not an epoch time): read as "no
    /// deadline" rather than one long past, which would stop every retry loop at once.
    pub fn deadline(&self) -> Option<DateTime<Utc>> {
        Utc.timestamp_millis_opt(i64::try_from(self.context.deadline).ok()?)
            .single()
            .filter(|deadline| *deadline > self.now)
    }
}

/// Runs the function: initialises JSON logging, builds the dependencies with `deps` (once
/// per process), then serves invocations with `handler` until the runtime stops.
///
/// `function` is the function's short name: the `Function` dimension of its metrics. A
/// handler error is logged (with its sources) and returned to Lambda as the invocation's
/// error, so the event source retries or dead-letters it as configured.
pub async fn run<D, E, R, Err, H>(
    function: &'static str,
    deps: impl Future<Output = Result<D, Error>>,
    handler: H,
) -> Result<(), Error>
where
    E: DeserializeOwned,
    R: Serialize,
    Err: std::error::Error + Send + Sync + 'static,
    H: AsyncFn(&D, Invocation<E>) -> Result<R, Err>,
{
    telemetry::init();
    let deps = match deps.await {
        Ok(deps) => deps,
        Err(error) => {
            tracing::error!(function, error = %error, "initialisation failed");
            return Err(error);
        }
    };
    let (deps, handler) = (&deps, &handler);
    let service = service_fn(move |event: LambdaEvent<E>| {
        let span = telemetry::invocation_span(
            &event.context.request_id,
            event.context.xray_trace_id.as_deref(),
        );
        async move {
            let invocation = Invocation {
                payload: event.payload,
                context: event.context,
                now: Utc::now(),
            };
            let result = telemetry::invocation(function, handler(deps, invocation)).await;
            result.map_err(|error| {
                tracing::error!(function, error = %error_chain(&error), "invocation failed");
                Error::from(error)
            })
        }
        .instrument(span)
    });
    Runtime::new(service).run().await
}

/// `error` and its sources, joined with `: `.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn error_chains_name_every_source_once() {
        let error = Outer(std::io::Error::other("disk full"));
        assert_eq!(error_chain(&error), "outer: disk full");
    }

    #[test]
    fn the_deadline_is_the_contexts() {
        let mut context = Context::default();
        context.deadline = 1_764_500_000_123;
        let invocation = Invocation {
            payload: (),
            context,
            now: Utc::now(),
        };
        assert_eq!(
            invocation.deadline().map(|d| d.timestamp_millis()),
            None,
            "a deadline before the invocation started is no deadline"
        );
        let invocation = Invocation {
            now: Utc.timestamp_millis_opt(1_764_499_990_000).unwrap(),
            ..invocation
        };
        assert_eq!(
            invocation.deadline().map(|d| d.timestamp_millis()),
            Some(1_764_500_000_123)
        );
    }
}
