//! Issue 16: a stream that keeps refusing some records is retried (only those records)
//! until shortly before the invocation's deadline, and the caller gets the designed 503,
//! not a Lambda timeout.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use application::ports::{PortError, ReadingSink, StreamRecord};
use application::retry::{RetryPolicy, put_all};
use aws_lambda_events::encodings::Body;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// A Kinesis stand-in behind the real retry loop: `PutRecords` throttles every record of
/// patient `p-1`, every time, and accepts the others.
#[derive(Default)]
struct ThrottlingStream {
    calls: Mutex<Vec<Vec<String>>>,
    written: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl ReadingSink for ThrottlingStream {
    async fn put(
        &self,
        records: Vec<StreamRecord>,
        deadline: Option<DateTime<Utc>>,
    ) -> Result<(), PortError> {
        let policy = RetryPolicy {
            max_attempts: 10_000,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(40),
        };
        put_all(records, &policy, deadline, |batch| {
            let keys: Vec<String> = batch.iter().map(|r| r.partition_key.clone()).collect();
            self.calls.lock().unwrap().push(keys.clone());
            let results = keys
                .into_iter()
                .map(|key| {
                    if key == "p-1" {
                        Some("ProvisionedThroughputExceededException: Rate exceeded".to_string())
                    } else {
                        self.written.lock().unwrap().push(key);
                        None
                    }
                })
                .collect();
            std::future::ready(Ok(results))
        })
        .await
    }
}

fn reading(patient: &str) -> Value {
    json!({"patientId": patient, "type": "heart_rate", "value": 80, "unit": "bpm",
           "timestamp": "2026-11-24T09:59:00Z", "deviceId": "dev-1"})
}

#[tokio::test]
async fn a_stream_refusing_some_records_until_the_deadline_is_a_503_in_time() {
    let stream = ThrottlingStream::default();
    let mut request = testkit::http::operator_post();
    request.body = Some(json!([reading("p-0"), reading("p-1"), reading("p-2")]).to_string());
    let now: DateTime<Utc> = "2026-11-24T10:00:00Z".parse().unwrap();
    // The invocation has 900 ms left (Lambda's context deadline).
    let started = Instant::now();
    let deadline = Utc::now() + chrono::Duration::milliseconds(900);
    let response = ingest::handle_until(
        &stream,
        &testkit::MemoryDirectory::default(),
        &request,
        now,
        Some(deadline),
    )
    .await;
    let elapsed = started.elapsed();

    assert_eq!(response.status_code, 503);
    let Some(Body::Text(body)) = &response.body else {
        panic!("unexpected body {:?}", response.body);
    };
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["error"], "StreamUnavailable");
    // Answered before the deadline, with the reserve left for the answer.
    assert!(elapsed < Duration::from_millis(800), "{elapsed:?}");
    let calls = stream.calls.lock().unwrap();
    assert_eq!(calls[0], ["p-0", "p-1", "p-2"]);
    assert!(
        calls.len() >= 2,
        "the refused record was retried: {calls:?}"
    );
    assert!(
        calls[1..].iter().all(|c| c == &["p-1"]),
        "only the refused record is sent again: {calls:?}"
    );
    // The accepted records were written once (a retry of the request is deduplicated
    // downstream: the readings' ids are deterministic).
    assert_eq!(*stream.written.lock().unwrap(), ["p-0", "p-2"]);
}
