//! Detection state per shard (the default layout, docs/detection.md "State per shard"),
//! with the real adapters against the emulator: the snapshot in the state table (every
//! write conditioned on its version) and the stream read back from Kinesis. Two `detect`
//! processes hold the same shard at once (Lambda moved it to a new process while the old
//! one still runs): each alert is stored and published once, no reading is lost.

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_sdk_kinesis::primitives::Blob;
use chrono::{DateTime, Duration, DurationRound, Utc};
use detect::shard::{ShardCache, Shards};
use detect::stream::{handle_stream, sweep_shards};
use devstack::inspect;
use domain::envelope::{Envelope, Lineage};
use domain::reading::{Reading, VitalType};
use e2e::*;
use serde_json::json;
use testkit::{MemoryDeadLetters, MemoryDirectory, MemoryPublisher};

/// A stream of the test's own (the stack's detect does not read it), one shard.
const STREAM: &str = "race-readings";

/// Puts p-race's heart rates (value, seconds after `t`) on the stream and returns them as
/// the Kinesis event Lambda would deliver, and the reading ids.
async fn put(
    kinesis: &aws_sdk_kinesis::Client,
    arn: &str,
    t: DateTime<Utc>,
    beats: &[(f64, i64)],
) -> (KinesisEvent, Vec<String>) {
    let mut records = Vec::new();
    let mut ids = Vec::new();
    for (value, after) in beats {
        let at = t + Duration::seconds(*after);
        let reading = Reading {
            patient_id: "p-race".into(),
            vital: VitalType::HeartRate,
            value: *value,
            unit: "bpm".into(),
            timestamp: at,
            device_id: "dev-race".into(),
        };
        let lineage = Lineage {
            correlation_id: format!("corr-{after}"),
            causation_id: "test".into(),
        };
        ids.push(reading.event_id());
        let data = serde_json::to_vec(&Envelope::new(
            reading.event_id(),
            "ingest",
            lineage,
            at,
            reading,
        ))
        .unwrap();
        let put = kinesis
            .put_record()
            .stream_name(STREAM)
            .partition_key("p-race")
            .data(Blob::new(data.clone()))
            .send()
            .await
            .unwrap();
        records.push(testkit::fixtures::kinesis_record(
            put.shard_id(),
            arn,
            "p-race",
            put.sequence_number(),
            &data,
        ));
    }
    let event = serde_json::from_value(json!({ "Records": records })).unwrap();
    (event, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_holding_one_shard_raise_each_alert_once_and_lose_no_reading() {
    let stack = start_stack("detect_race_shard").await;
    let table = |id: &str| stack.resource(id).unwrap().ref_value.clone();
    let kinesis = aws_sdk_kinesis::Client::new(stack.sdk_config());
    kinesis
        .create_stream()
        .stream_name(STREAM)
        .shard_count(1)
        .send()
        .await
        .unwrap();
    let arn = kinesis
        .describe_stream_summary()
        .stream_name(STREAM)
        .send()
        .await
        .unwrap()
        .stream_description_summary()
        .map(|d| d.stream_arn().to_string())
        .unwrap();

    let store = aws_adapters::DynamoShardStore::new(stack.sdk_config(), table("PatientStateTable"));
    let replay = aws_adapters::KinesisReplay::new(stack.sdk_config());
    let events = aws_adapters::DynamoEventStore::new(stack.sdk_config(), table("EventsTable"));
    let unused =
        aws_adapters::DynamoStateStore::new(stack.sdk_config(), table("PatientStateTable"));
    let (directory, publisher, dead_letters) = (
        MemoryDirectory::default(),
        MemoryPublisher::default(),
        MemoryDeadLetters::default(),
    );
    let (vitals, village_stats) = (
        testkit::MemoryVitals::default(),
        testkit::MemoryVillageStats::default(),
    );
    let rules = detect::default_rules().unwrap();
    let idempotency = testkit::MemoryIdempotencyStore::default();
    let publish_guard = application::idempotency::Idempotency::new(
        &idempotency,
        detect::publish_idempotency_config(),
    );
    let deps = detect::Deps {
        rules: &rules,
        state: &unused,
        events: &events,
        directory: &directory,
        publisher: &publisher,
        dead_letters: &dead_letters,
        publish_guard: &publish_guard,
        auto_dispatch_max_age: chrono::Duration::minutes(15),
        vitals: &vitals,
        village_stats: &village_stats,
    };
    let (old, new) = (ShardCache::default(), ShardCache::default());
    let shards = |cache| Shards {
        store: &store,
        replay: &replay,
        cache,
        buckets: 4,
        flush_interval: Duration::seconds(60),
    };

    // The old process has two fast beats; the new one is given the third while the old
    // one is handed the same batch (Lambda's view of who holds the shard changed).
    let t = Utc::now().duration_trunc(Duration::seconds(1)).unwrap() - Duration::minutes(5);
    let (a, mut ids) = put(&kinesis, &arn, t, &[(121.0, 0), (125.0, 20)]).await;
    let (response, _) = handle_stream(&deps, &shards(&old), &a, t + Duration::seconds(21)).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let (b, more) = put(&kinesis, &arn, t, &[(130.0, 40)]).await;
    ids.extend(more);
    let now = t + Duration::seconds(41);
    let (shards_new, shards_old) = (shards(&new), shards(&old));
    let ((rn, sn), (ro, so)) = tokio::join!(
        handle_stream(&deps, &shards_new, &b, now),
        handle_stream(&deps, &shards_old, &b, now)
    );
    // Both decided the alert; the second bucket write met the first's version, so only
    // one carried it out (the other reports the batch as failed: Lambda retries it).
    assert_eq!(sn.alerts_raised + so.alerts_raised, 1, "{sn:?} {so:?}");
    let failed = [&rn, &ro]
        .iter()
        .filter(|r| !r.batch_item_failures.is_empty())
        .count();
    assert!(failed <= 1, "{rn:?} {ro:?}");
    // Lambda goes on with the new process (the retry of the loser's batch included); a
    // normal reading resolves the run.
    let (response, _) = handle_stream(&deps, &shards(&new), &b, now).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let (c, more) = put(&kinesis, &arn, t, &[(80.0, 60)]).await;
    ids.extend(more);
    let later = t + Duration::minutes(10);
    let (response, sc) = handle_stream(&deps, &shards(&new), &c, later).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(sc.alerts_resolved, 1, "{sc:?}");
    // The old process wakes up with a late batch: it meets the newer snapshot, restores,
    // and raises nothing again.
    let (_, so) = handle_stream(&deps, &shards(&old), &c, later).await;
    let (_, so2) = handle_stream(&deps, &shards(&old), &c, later).await;
    assert_eq!(so.alerts_raised + so2.alerts_raised, 0);

    let alerts = inspect::events_of_type(&stack, "AlertRaised")
        .await
        .unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["data"]["evidence"].as_array().unwrap().len(), 3);
    let resolved = inspect::events_of_type(&stack, "AlertResolved")
        .await
        .unwrap();
    assert_eq!(resolved.len(), 1, "{resolved:?}");
    assert_eq!(publisher.published.lock().unwrap().len(), 1);
    assert_eq!(publisher.resolved.lock().unwrap().len(), 1);

    // The sweep (a third process) writes what is left: every reading is in the snapshot.
    sweep_shards(
        &deps,
        &shards(&ShardCache::default()),
        later + Duration::minutes(3),
    )
    .await
    .unwrap();
    let state = patient_state(&stack, "p-race")
        .await
        .expect("p-race's state");
    let recent: Vec<&str> = state["state"]["recent"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for id in &ids {
        assert!(
            recent.contains(&id.as_str()),
            "{id} missing from {recent:?}"
        );
    }
    assert!(state["state"].get("outbox").is_none(), "{state}");
    stack.shutdown().await.unwrap();
}
