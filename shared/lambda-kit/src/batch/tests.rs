use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::*;

fn message(id: Option<&str>, body: &str) -> SqsMessage {
    let mut m = SqsMessage::default();
    m.message_id = id.map(str::to_string);
    m.body = Some(body.to_string());
    m
}

fn fifo(id: &str, group: &str, body: &str) -> SqsMessage {
    let mut m = message(Some(id), body);
    m.attributes
        .insert("MessageGroupId".to_string(), group.to_string());
    m
}

fn kinesis_record(seq: &str, data: &str) -> KinesisEventRecord {
    let mut r = KinesisEventRecord::default();
    r.kinesis.sequence_number = seq.to_string();
    *r.kinesis.data = data.as_bytes().to_vec();
    r
}

fn ids(response: &SqsBatchResponse) -> Vec<&str> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect()
}

async fn by_body(m: &SqsMessage) -> Result<(), String> {
    match body(m) {
        b"bad" => Err("bad body".into()),
        b"panic" => panic!("boom in record"),
        _ => Ok(()),
    }
}

#[tokio::test]
async fn standard_sqs_reports_only_failed_and_panicking_messages() {
    let messages = vec![
        message(Some("a"), "ok"),
        message(Some("b"), "bad"),
        message(Some("c"), "ok"),
        message(Some("d"), "panic"),
    ];
    let response = sqs_standard(&messages, 4, by_body).await.unwrap();
    assert_eq!(ids(&response), ["b", "d"]);
}

#[tokio::test]
async fn standard_sqs_runs_messages_concurrently() {
    let running = AtomicUsize::new(0);
    let peak = AtomicUsize::new(0);
    let messages: Vec<_> = (0..6)
        .map(|i| message(Some(&i.to_string()), "ok"))
        .collect();
    let (running, peak) = (&running, &peak);
    let response = sqs_standard(&messages, 3, move |_| async move {
        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
        peak.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(30)).await;
        running.fetch_sub(1, Ordering::SeqCst);
        Ok::<(), String>(())
    })
    .await
    .unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(peak.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn all_messages_failing_are_all_reported() {
    let messages = vec![message(Some("a"), "bad"), message(Some("b"), "panic")];
    let response = sqs_standard(&messages, 2, by_body).await.unwrap();
    assert_eq!(ids(&response), ["a", "b"]);
}

#[tokio::test]
async fn a_message_without_id_fails_the_batch() {
    let messages = vec![message(None, "ok")];
    let result = process_sqs(&messages, |_| async { Ok::<(), String>(()) }).await;
    assert!(result.is_err());
}

#[tokio::test]
async fn fifo_stops_only_the_failing_message_group() {
    let processed = Mutex::new(Vec::new());
    let messages = vec![
        fifo("a1", "A", "ok"),
        fifo("b1", "B", "ok"),
        fifo("a2", "A", "bad"),
        fifo("b2", "B", "ok"),
        fifo("a3", "A", "ok"),
        fifo("c1", "C", "panic"),
        fifo("c2", "C", "ok"),
        fifo("b3", "B", "ok"),
    ];
    let response = sqs_fifo(&messages, |m| {
        processed
            .lock()
            .unwrap()
            .push(m.message_id.clone().unwrap());
        by_body(m)
    })
    .await
    .unwrap();
    assert_eq!(ids(&response), ["a2", "a3", "c1", "c2"]);
    // a3 and c2 were never processed: their group had failed before them.
    assert_eq!(
        *processed.lock().unwrap(),
        ["a1", "b1", "a2", "b2", "c1", "b3"]
    );
}

#[tokio::test]
async fn kinesis_stops_at_the_first_failure_and_reports_its_sequence_number() {
    let processed = Mutex::new(Vec::new());
    let records = vec![
        kinesis_record("100", "ok"),
        kinesis_record("101", "bad"),
        kinesis_record("102", "ok"),
    ];
    let response = kinesis(&records, |r| {
        processed
            .lock()
            .unwrap()
            .push(r.kinesis.sequence_number.clone());
        let bad = r.kinesis.data.0 == b"bad";
        async move { if bad { Err("bad record") } else { Ok(()) } }
    })
    .await
    .unwrap();
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone().unwrap_or_default())
        .collect();
    assert_eq!(failed, ["101"]);
    assert_eq!(*processed.lock().unwrap(), ["100", "101"]);
}

#[tokio::test]
async fn kinesis_reports_a_panic_as_that_records_failure() {
    let records = vec![kinesis_record("7", "ok"), kinesis_record("8", "panic")];
    let response = kinesis(&records, |r| {
        let data = r.kinesis.data.0.clone();
        async move {
            if data == b"panic" {
                panic!("decoder bug");
            }
            Ok::<(), String>(())
        }
    })
    .await
    .unwrap();
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_eq!(
        response.batch_item_failures[0].item_identifier.as_deref(),
        Some("8")
    );
}

#[tokio::test]
async fn dynamodb_stream_stops_at_the_first_failure() {
    let mut records = Vec::new();
    for seq in ["1", "2", "3"] {
        let mut r = DynamoDbRecord::default();
        r.change.sequence_number = Some(seq.to_string());
        records.push(r);
    }
    let count = AtomicUsize::new(0);
    let response = dynamodb_stream(&records, |r| {
        count.fetch_add(1, Ordering::SeqCst);
        let fail = r.change.sequence_number.as_deref() == Some("2");
        async move { if fail { Err("no") } else { Ok(()) } }
    })
    .await
    .unwrap();
    assert_eq!(
        response.batch_item_failures[0].item_identifier.as_deref(),
        Some("2")
    );
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_eq!(count.load(Ordering::SeqCst), 2);
    // A batch where everything succeeds reports nothing.
    let ok = dynamodb_stream(&records[..1], |_| async { Ok::<(), String>(()) })
        .await
        .unwrap();
    assert!(ok.batch_item_failures.is_empty());
}

#[tokio::test]
async fn the_number_of_failed_messages_is_a_metric() {
    let messages = vec![message(Some("a"), "bad"), message(Some("b"), "ok")];
    let (response, recorder) = crate::metrics::capture(
        "route",
        process_sqs(&messages, |m| async move {
            if body(m) == b"bad" {
                Err("bad body")
            } else {
                Ok(())
            }
        }),
    )
    .await;
    assert_eq!(response.unwrap().batch_item_failures.len(), 1);
    assert_eq!(recorder.total(crate::metrics::BATCH_ITEM_FAILURES), 1.0);
}

#[test]
fn fault_injection_panics_only_on_records_with_the_marker() {
    inject_fault(None, b"anything");
    inject_fault(Some("boom-7"), b"a quiet record");
    let caught = std::panic::catch_unwind(|| inject_fault(Some("boom-7"), b"{\"m\":\"boom-7\"}"));
    assert!(caught.is_err());
}
