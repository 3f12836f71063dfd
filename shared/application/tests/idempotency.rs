use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;

use application::idempotency::*;
use chrono::{Duration, Utc};
use testkit::MemoryIdempotencyStore;

fn guard(store: &MemoryIdempotencyStore) -> Idempotency<'_> {
    Idempotency::new(store, Config::new("test", "/id").validate("/data"))
}

#[tokio::test]
async fn a_repeat_returns_the_stored_result_without_running_again() {
    let store = MemoryIdempotencyStore::default();
    let runs = AtomicUsize::new(0);
    let payload = json!({"id": "r-1", "data": {"x": 1}, "noise": "a"});
    let runs = &runs;
    let effect = move || async move {
        runs.fetch_add(1, Ordering::SeqCst);
        Ok::<_, String>(json!({"sent": 42}))
    };
    let first = guard(&store)
        .run(&payload, Utc::now(), effect)
        .await
        .unwrap();
    assert_eq!(first, Outcome::Ran(json!({"sent": 42})));
    // Only the validated part must match: `noise` may differ.
    let again = json!({"id": "r-1", "data": {"x": 1}, "noise": "b"});
    let second = guard(&store).run(&again, Utc::now(), effect).await.unwrap();
    assert_eq!(second, Outcome::Replayed(json!({"sent": 42})));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn missing_key_and_payload_mismatch_are_errors() {
    let store = MemoryIdempotencyStore::default();
    let ok = || async { Ok::<_, String>(1) };
    let err = guard(&store)
        .run(&json!({"data": 1}), Utc::now(), ok)
        .await
        .unwrap_err();
    assert!(matches!(err, IdempotencyError::MissingKey { .. }), "{err}");
    guard(&store)
        .run(&json!({"id": 1, "data": 1}), Utc::now(), ok)
        .await
        .unwrap();
    let err = guard(&store)
        .run(&json!({"id": 1, "data": 2}), Utc::now(), ok)
        .await
        .unwrap_err();
    assert!(
        matches!(err, IdempotencyError::PayloadMismatch { .. }),
        "{err}"
    );
}

#[test]
fn status_follows_expiry_and_deadline() {
    let now = Utc::now();
    let record = Record {
        key: "k".into(),
        status: Status::InProgress,
        expires_at: (now + Duration::hours(1)).timestamp(),
        in_progress_expires_at: Some((now + Duration::seconds(5)).timestamp_millis()),
        payload_hash: String::new(),
        result: None,
    };
    assert_eq!(record.status_at(now), Status::InProgress);
    assert_eq!(
        record.status_at(now + Duration::seconds(6)),
        Status::Expired
    );
    let done = Record {
        status: Status::Completed,
        in_progress_expires_at: None,
        ..record
    };
    assert_eq!(
        done.status_at(now + Duration::minutes(30)),
        Status::Completed
    );
    assert_eq!(done.status_at(now + Duration::hours(2)), Status::Expired);
}
