//! A counting proxy in front of the emulator (issue 15, benches): every AWS request sent to
//! it is counted by (service, operation), optionally delayed by a fixed latency, then
//! forwarded to the emulator unchanged. The benches point the functions'
//! `AWS_ENDPOINT_URL` at it, so it counts the functions' own requests only (not devstack's
//! pollers or the bench's seeding), independently of the functions' metrics.
//!
//! The upstream can be set after the proxy starts ([`Proxy::set_upstream`]): the functions
//! must be told the proxy's address before the stack (and its emulator) exists. Requests
//! that arrive before it is set wait for it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::request_log::{AwsRequest, name_request};

/// Counts by (service, operation).
pub type Counts = BTreeMap<(String, String), u64>;

/// (caller, service, operation, DynamoDB table or "").
pub type Detail = (String, String, String, String);

/// The path prefix that names a caller: `/fn/<name>/...`.
const CALLER_PREFIX: &str = "/fn/";

#[derive(Default)]
struct Shared {
    upstream: Mutex<Option<String>>,
    counts: Mutex<Counts>,
    /// Requests by DynamoDB table, for the writes of the reading path.
    tables: Mutex<BTreeMap<(String, String), u64>>,
    /// Requests by (caller, service, operation, table or ""), the caller named by the
    /// endpoint's path prefix (see [`Proxy::url_for`]).
    detailed: Mutex<BTreeMap<Detail, u64>>,
    /// Total time spent waiting for the emulator, microseconds.
    upstream_micros: Mutex<u128>,
    /// Wall-clock time with at least one request at the emulator (overlapping requests
    /// counted once).
    busy: Mutex<Busy>,
}

/// Requests at the emulator now, since when, and the time with at least one there before.
#[derive(Default)]
struct Busy {
    in_flight: usize,
    since: Option<std::time::Instant>,
    total: Duration,
}

impl Busy {
    fn enter(&mut self, now: std::time::Instant) {
        if self.in_flight == 0 {
            self.since = Some(now);
        }
        self.in_flight += 1;
    }

    fn leave(&mut self, now: std::time::Instant) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if self.in_flight == 0
            && let Some(since) = self.since.take()
        {
            self.total += now.saturating_duration_since(since);
        }
    }

    /// The busy time so far, the current stretch included.
    fn total(&self, now: std::time::Instant) -> Duration {
        self.total
            + self
                .since
                .map_or(Duration::ZERO, |since| now.saturating_duration_since(since))
    }
}

/// A running proxy; dropping it does not stop the server (it ends with the process).
#[derive(Clone)]
pub struct Proxy {
    url: String,
    latency: Duration,
    shared: Arc<Shared>,
    client: reqwest::Client,
}

impl Proxy {
    /// Starts the proxy on a free port of 127.0.0.1; each request is delayed by `latency`
    /// before it is forwarded.
    pub async fn start(latency: Duration) -> Result<Proxy> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the counting proxy")?;
        let url = format!("http://{}", listener.local_addr()?);
        let proxy = Proxy {
            url,
            latency,
            shared: Arc::new(Shared::default()),
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .context("the proxy's HTTP client")?,
        };
        let router = axum::Router::new()
            .fallback(forward)
            .with_state(proxy.clone());
        tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, router).await {
                tracing::error!("counting proxy stopped: {err}");
            }
        });
        Ok(proxy)
    }

    /// The proxy's base URL (give it to the functions as `AWS_ENDPOINT_URL`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The proxy's URL for one caller: its requests are counted under `caller` as well
    /// (the SDK keeps the endpoint's path as a prefix; the proxy strips it).
    pub fn url_for(&self, caller: &str) -> String {
        format!("{}{CALLER_PREFIX}{caller}", self.url)
    }

    /// Requests by (caller, service, operation, table or "").
    pub fn detailed_counts(&self) -> BTreeMap<Detail, u64> {
        self.shared
            .detailed
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    /// Where requests are forwarded, e.g. the emulator's endpoint.
    pub fn set_upstream(&self, upstream: &str) {
        if let Ok(mut slot) = self.shared.upstream.lock() {
            *slot = Some(upstream.trim_end_matches('/').to_string());
        }
    }

    /// The requests counted so far.
    pub fn counts(&self) -> Counts {
        self.shared
            .counts
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    /// Requests by (table, operation) of DynamoDB single-table requests.
    pub fn table_counts(&self) -> BTreeMap<(String, String), u64> {
        self.shared
            .tables
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    /// Total time the emulator took to answer, over every request counted.
    pub fn upstream_time(&self) -> Duration {
        let micros = self.shared.upstream_micros.lock().map(|m| *m).unwrap_or(0);
        Duration::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
    }

    /// Wall-clock time during which at least one request was waiting for the emulator
    /// (overlapping requests counted once), since the proxy started. Unlike
    /// [`Proxy::upstream_time`], this can be subtracted from a wall-clock interval.
    pub fn upstream_busy(&self) -> Duration {
        let now = std::time::Instant::now();
        self.shared
            .busy
            .lock()
            .map(|b| b.total(now))
            .unwrap_or_default()
    }

    /// Clears the counts.
    pub fn reset(&self) {
        if let Ok(mut c) = self.shared.counts.lock() {
            c.clear();
        }
        if let Ok(mut c) = self.shared.tables.lock() {
            c.clear();
        }
        if let Ok(mut c) = self.shared.detailed.lock() {
            c.clear();
        }
        if let Ok(mut m) = self.shared.upstream_micros.lock() {
            *m = 0;
        }
    }

    fn count(&self, caller: &str, request: &AwsRequest) {
        if let Ok(mut detailed) = self.shared.detailed.lock() {
            *detailed
                .entry((
                    caller.to_string(),
                    request.service.clone(),
                    request.operation.clone(),
                    request.table.clone().unwrap_or_default(),
                ))
                .or_default() += 1;
        }
        if let Ok(mut counts) = self.shared.counts.lock() {
            *counts
                .entry((request.service.clone(), request.operation.clone()))
                .or_default() += 1;
        }
        if let (Some(table), Ok(mut tables)) = (&request.table, self.shared.tables.lock()) {
            *tables
                .entry((table.clone(), request.operation.clone()))
                .or_default() += 1;
        }
    }

    async fn upstream(&self) -> Option<String> {
        for _ in 0..600 {
            if let Some(upstream) = self.shared.upstream.lock().ok().and_then(|u| u.clone()) {
                return Some(upstream);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }
}

/// One request at the emulator, from [`BusyGuard::enter`] until dropped.
struct BusyGuard<'a>(&'a Shared);

impl<'a> BusyGuard<'a> {
    fn enter(shared: &'a Shared, now: std::time::Instant) -> BusyGuard<'a> {
        if let Ok(mut busy) = shared.busy.lock() {
            busy.enter(now);
        }
        BusyGuard(shared)
    }
}

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut busy) = self.0.busy.lock() {
            busy.leave(std::time::Instant::now());
        }
    }
}

/// Headers not copied across the proxy (hop-by-hop, or set by the HTTP client).
const SKIPPED: &[&str] = &[
    "host",
    "content-length",
    "connection",
    "transfer-encoding",
    "keep-alive",
];

async fn forward(
    State(proxy): State<Proxy>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (caller, path) = split_caller(uri.path_and_query().map_or("/", |p| p.as_str()));
    let url = path.clone();
    proxy.count(
        &caller,
        &name_request(
            header("authorization"),
            header("x-amz-target"),
            method.as_str(),
            &url,
            std::str::from_utf8(&body).unwrap_or_default(),
        ),
    );
    if !proxy.latency.is_zero() {
        tokio::time::sleep(proxy.latency).await;
    }
    let Some(upstream) = proxy.upstream().await else {
        return (StatusCode::SERVICE_UNAVAILABLE, "proxy: no upstream").into_response();
    };
    let mut request = proxy.client.request(method, format!("{upstream}{path}"));
    for (name, value) in &headers {
        if !SKIPPED.contains(&name.as_str()) {
            request = request.header(name, value);
        }
    }
    let started = std::time::Instant::now();
    // Left when dropped: also when the caller hangs up (a function process killed at its
    // timeout) and this future is dropped before the emulator answers.
    let _busy = BusyGuard::enter(&proxy.shared, started);
    let answer = request.body(body).send().await;
    let result = match answer {
        Ok(response) => {
            let status = response.status();
            let mut out_headers = HeaderMap::new();
            for (name, value) in response.headers() {
                if !SKIPPED.contains(&name.as_str()) {
                    out_headers.append(name, value.clone());
                }
            }
            match response.bytes().await {
                Ok(bytes) => (status, out_headers, bytes).into_response(),
                Err(err) => (StatusCode::BAD_GATEWAY, format!("proxy: {err}")).into_response(),
            }
        }
        Err(err) => (StatusCode::BAD_GATEWAY, format!("proxy: {err}")).into_response(),
    };
    if let Ok(mut micros) = proxy.shared.upstream_micros.lock() {
        *micros += started.elapsed().as_micros();
    }
    result
}

/// The caller named by a `/fn/<name>` prefix ("" without one) and the path without it.
fn split_caller(path: &str) -> (String, String) {
    let Some(rest) = path.strip_prefix(CALLER_PREFIX) else {
        return (String::new(), path.to_string());
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (caller, tail) = rest.split_at(end);
    let tail = if tail.starts_with('/') {
        tail.to_string()
    } else {
        format!("/{tail}")
    };
    (caller.to_string(), tail)
}

/// Counts per 1,000 readings, by "service operation".
pub fn per_thousand(counts: &Counts, readings: u64) -> BTreeMap<String, f64> {
    counts
        .iter()
        .map(|((service, operation), n)| {
            let per = if readings == 0 {
                0.0
            } else {
                *n as f64 * 1000.0 / readings as f64
            };
            (format!("{service} {operation}"), per)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_time_counts_overlapping_requests_once() {
        let t0 = std::time::Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut busy = Busy::default();
        // [0, 30) and [10, 20) overlap: 30 ms; then [50, 60): 10 ms more.
        busy.enter(at(0));
        busy.enter(at(10));
        busy.leave(at(20));
        assert_eq!(busy.total(at(25)), Duration::from_millis(25));
        busy.leave(at(30));
        busy.enter(at(50));
        busy.leave(at(60));
        assert_eq!(busy.total(at(100)), Duration::from_millis(40));
    }

    #[tokio::test]
    async fn counts_by_service_and_operation_and_forwards() {
        // An upstream that answers every request with its path.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = format!("http://{}", listener.local_addr().unwrap());
        let router = axum::Router::new().fallback(async |uri: Uri| uri.to_string());
        tokio::spawn(async move { axum::serve(listener, router).await });

        let proxy = Proxy::start(Duration::from_millis(5)).await.unwrap();
        proxy.set_upstream(&upstream);
        let client = reqwest::Client::new();
        let auth = |service: &str| {
            format!("AWS4-HMAC-SHA256 Credential=test/20261201/us-east-1/{service}/aws4_request")
        };
        for _ in 0..3 {
            let answer = client
                .post(format!("{}/", proxy.url()))
                .header("authorization", auth("dynamodb"))
                .header("x-amz-target", "DynamoDB_20120810.PutItem")
                .body(r#"{"TableName":"t-state"}"#)
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), 200);
        }
        let answer = client
            .post(format!("{}/?x=1", proxy.url()))
            .header("authorization", auth("sns"))
            .body("Action=Publish&Version=2010-03-31")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.text().await.unwrap(), "/?x=1");

        let answer = client
            .post(format!("{}/?Action=Query", proxy.url_for("DetectFunction")))
            .header("authorization", auth("dynamodb"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.text().await.unwrap(), "/?Action=Query");
        let detailed = proxy.detailed_counts();
        let key = |c: &str, s: &str, o: &str, t: &str| (c.into(), s.into(), o.into(), t.into());
        assert_eq!(detailed[&key("DetectFunction", "dynamodb", "Query", "")], 1);
        assert_eq!(detailed[&key("", "dynamodb", "PutItem", "t-state")], 3);
        assert_eq!(split_caller("/fn/X"), ("X".to_string(), "/".to_string()));
        assert_eq!(
            split_caller("/fn/X?a=1"),
            ("X".to_string(), "/?a=1".to_string())
        );

        let counts = proxy.counts();
        assert_eq!(counts[&("dynamodb".into(), "PutItem".into())], 3);
        assert_eq!(counts[&("sns".into(), "Publish".into())], 1);
        assert_eq!(
            proxy.table_counts()[&("t-state".into(), "PutItem".into())],
            3
        );
        assert!(proxy.upstream_time() > Duration::ZERO);
        assert!(proxy.upstream_busy() > Duration::ZERO);
        let per = per_thousand(&counts, 500);
        assert_eq!(per["dynamodb PutItem"], 6.0);
        proxy.reset();
        assert!(proxy.counts().is_empty());
    }
}
