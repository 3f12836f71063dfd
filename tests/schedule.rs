//! Schedules of the template, played by devstack: `SweepFunction` (the detect binary with
//! `DETECT_MODE=sweep`) is invoked by its `Schedule` event with EventBridge's
//! scheduled-event document. Asserts on the invocation journal (payload and source), not on
//! the function's answer.

use std::time::{Duration, Instant};

use e2e::start_stack_configured;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_is_invoked_by_its_schedule_with_the_scheduled_event() {
    let stack = start_stack_configured("schedule", |config| {
        config.schedule_interval = Some(Duration::from_millis(500));
    })
    .await;

    let started = Instant::now();
    let tick = loop {
        let journal = stack.invocations("SweepFunction");
        if let Some(first) = journal.into_iter().next() {
            break first;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "SweepFunction was not invoked by its schedule within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    assert_eq!(tick.source, "schedule:Sweep");
    let account = stack
        .resource("DetectFailureQueue")
        .unwrap()
        .arn
        .as_deref()
        .and_then(|arn| arn.split(':').nth(4))
        .expect("an SQS ARN has the account id")
        .to_string();
    let mut payload = tick.payload.clone();
    let fields = payload.as_object_mut().unwrap();
    let id = fields.remove("id").expect("id");
    assert!(uuid::Uuid::parse_str(id.as_str().unwrap()).is_ok(), "{id}");
    let time = fields.remove("time").expect("time");
    let time = chrono::DateTime::parse_from_rfc3339(time.as_str().unwrap()).expect("RFC 3339");
    let age = chrono::Utc::now().signed_duration_since(time);
    assert!(
        age < chrono::Duration::seconds(60),
        "time {time} is {age} old"
    );
    let rule = format!(
        "arn:aws:events:us-east-1:{account}:rule/{}-SweepFunctionSweep",
        stack.config().stack_name
    );
    assert_eq!(
        payload,
        json!({
            "version": "0",
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": account,
            "region": "us-east-1",
            "resources": [rule],
            "detail": {},
        })
    );
    // The schedule invokes the sweep only, not the stream-triggered detect function.
    assert!(stack.invocations("DetectFunction").is_empty());
    stack.shutdown().await.unwrap();
}
