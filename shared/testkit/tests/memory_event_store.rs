//! The in-memory event store keeps the DynamoDB store's semantics (the same cases run
//! against DynamoDB in `tests/event_store.rs`).

use application::event_store::{Checkpoint, EventStoreError, EventStreams, ExpectedVersion};
use application::ports::Appended;
use serde_json::json;
use testkit::MemoryEventStore;
use testkit::fixtures::stored_event as event;

#[tokio::test]
async fn the_memory_store_keeps_the_dynamodb_semantics() {
    let store = MemoryEventStore::default();
    let a = [event("a-1", json!({})), event("a-2", json!({}))];
    let first = store
        .append("s-1", ExpectedVersion::NoStream, &a)
        .await
        .unwrap();
    assert_eq!(first.outcome, Appended::Written);
    assert_eq!(first.versions, [1, 2]);
    let again = store.append("s-1", ExpectedVersion::Any, &a).await.unwrap();
    assert_eq!(again.outcome, Appended::Duplicate);
    assert_eq!(again.versions, [1, 2]);
    let err = store
        .append("s-1", ExpectedVersion::Exact(1), &[event("b", json!({}))])
        .await
        .unwrap_err();
    assert!(matches!(err, EventStoreError::Conflict { current: 2, .. }));
    let err = store
        .append("s-2", ExpectedVersion::Any, &[event("a-1", json!({}))])
        .await
        .unwrap_err();
    assert!(matches!(err, EventStoreError::DuplicateMismatch { .. }));
    store
        .append("s-2", ExpectedVersion::Any, &[event("c", json!({}))])
        .await
        .unwrap();
    store
        .append("s-1", ExpectedVersion::Exact(2), &[event("d", json!({}))])
        .await
        .unwrap();
    let all = store.read_all(&Checkpoint::start(), 10).await.unwrap();
    let ids: Vec<_> = all
        .events
        .iter()
        .map(|e| e.event.event_id.as_str())
        .collect();
    assert_eq!(ids, ["a-1", "a-2", "c", "d"]);
    assert!(all.done);
    let first = store.read_all(&Checkpoint::start(), 2).await.unwrap();
    assert!(!first.done);
    let page = store.read_all(&first.next, 1).await.unwrap();
    assert_eq!(page.events[0].event.event_id, "c");
    assert_eq!(page.events[0].stream_id, "s-2");
    let rest = store.read_all(&page.next, 10).await.unwrap();
    assert_eq!(rest.events[0].event.event_id, "d");
    assert!(rest.done);
    assert!(matches!(
        store.read_all(&Checkpoint("x".into()), 1).await,
        Err(EventStoreError::InvalidCheckpoint(_))
    ));
    let stream = store.read_stream("s-1", 2, 10).await.unwrap();
    let versions: Vec<_> = stream.iter().map(|e| e.stream_version).collect();
    assert_eq!(versions, [2, 3]);
    assert_eq!(store.stream_version("s-1").await.unwrap(), 3);
}
