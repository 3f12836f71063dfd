//! Recent vitals and village statistics on the local stack (issue 14, docs/read-side.md).
//! ONE stack for the whole binary: one test runs the sub-cases in sequence.
//!
//! - the write budget: 20 patients x 50 readings, one a minute each (their clocks spread
//!   over the hour, as a live fleet's are), posted quickly; the emulator's request log counts
//!   the VitalsTable writes (one per closed patient-hour) and every DynamoDB write of the
//!   reading path (reported in docs/performance.md);
//! - the contents: every reading is in a block or in the open hour of the state, exactly
//!   once; the village's day counts the flushed readings.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use application::ports::PatientStateStore;
use application::shard_state::ShardedStates;
use application::vitals::{RecentVitals, VillageStats};
use aws_adapters::{DynamoShardStore, DynamoVillageStats, DynamoVitals};
use chrono::{DateTime, DurationRound, SecondsFormat, Utc};
use devstack::{Stack, inspect, request_log};
use domain::routing::DirectoryEntry;
use domain::vitals::{self, HOUR_MS, hour_of};
use e2e::*;
use serde_json::{Value, json};

const VILLAGE: &str = "Vitalsville";
const PATIENTS: usize = 20;
const PER_PATIENT: i64 = 50;

fn patient(i: usize) -> String {
    format!("pv-{i:02}")
}

fn directory_entry(patient_id: &str, village: &str, worker: &str) -> DirectoryEntry {
    DirectoryEntry {
        device_ids: Vec::new(),
        patient_id: patient_id.into(),
        patient_name: format!("Patient {patient_id}"),
        village: village.into(),
        worker_id: worker.into(),
        worker_name: format!("Worker {worker}"),
        worker_phone: "+254700000399".into(),
    }
}

fn table(stack: &Stack, logical_id: &str) -> String {
    stack
        .resource(logical_id)
        .map(|r| r.ref_value.clone())
        .unwrap_or_else(|err| panic!("{logical_id}: {err:#}"))
}

/// Patient `i`'s readings: one a minute, the last `3 i` minutes before `now` (so the fleet's
/// hour boundaries fall at different readings, as live devices' do).
fn fleet(now: DateTime<Utc>) -> Vec<(DateTime<Utc>, Value)> {
    let mut readings = Vec::new();
    for i in 0..PATIENTS {
        let last = now - chrono::Duration::minutes(3 * i as i64);
        for k in 0..PER_PATIENT {
            let at = last - chrono::Duration::minutes(PER_PATIENT - 1 - k);
            readings.push((
                at,
                json!({
                    "patientId": patient(i),
                    "type": "heart_rate",
                    "value": 70 + k % 9,
                    "unit": "bpm",
                    "timestamp": at.to_rfc3339_opts(SecondsFormat::Secs, true),
                    "deviceId": format!("watch-{i:02}"),
                }),
            ));
        }
    }
    // Posted in time order, as the fleet would send them.
    readings.sort_by_key(|(at, r)| (*at, r["patientId"].as_str().map(str::to_string)));
    readings
}

/// Closed patient-hours of the fleet: each patient's hours but its newest.
fn expected_blocks(readings: &[(DateTime<Utc>, Value)]) -> usize {
    let mut hours: BTreeMap<String, std::collections::BTreeSet<i64>> = BTreeMap::new();
    for (at, r) in readings {
        hours
            .entry(r["patientId"].as_str().unwrap_or_default().to_string())
            .or_default()
            .insert(hour_of(at.timestamp_millis()));
    }
    hours.values().map(|h| h.len() - 1).sum()
}

/// The detection states as the query API reads them (detect keeps them per stream shard,
/// issue 15), the test's own reads counted.
fn states(stack: &Stack) -> ShardedStates<counted::Counted> {
    ShardedStates {
        store: counted::Counted {
            inner: DynamoShardStore::new(stack.sdk_config(), table(stack, "PatientStateTable")),
            gets: Default::default(),
        },
    }
}

async fn wait_until_processed(
    states: &ShardedStates<counted::Counted>,
    last: &BTreeMap<String, i64>,
) {
    let deadline = Instant::now() + DRAIN;
    'wait: loop {
        assert!(
            Instant::now() < deadline,
            "detect did not process every reading in time"
        );
        for (patient_id, at) in last {
            let state = states.load(patient_id).await.expect("loading a state");
            if state.value.watermark != Some(*at) {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue 'wait;
            }
        }
        return;
    }
}

/// Returns the readings flushed to the vitals table.
async fn vitals_writes_per_1000_readings(stack: &Stack) -> i64 {
    let entries: Vec<DirectoryEntry> = (0..PATIENTS)
        .map(|i| directory_entry(&patient(i), VILLAGE, "w-31"))
        .collect();
    inspect::seed_directory(stack, &entries)
        .await
        .expect("seeding the directory");
    let now = Utc::now()
        .duration_trunc(chrono::Duration::seconds(1))
        .expect("a time")
        - chrono::Duration::seconds(5);
    let readings = fleet(now);
    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    for (at, r) in &readings {
        last.insert(
            r["patientId"].as_str().unwrap_or_default().to_string(),
            at.timestamp_millis(),
        );
    }
    let expected = expected_blocks(&readings);

    request_log::start(stack).await.expect("recording requests");
    for chunk in readings.chunks(500) {
        let body: Vec<Value> = chunk.iter().map(|(_, r)| r.clone()).collect();
        let (status, answer) = post(stack, &Value::Array(body), None).await;
        assert_eq!(status, 202, "{answer}");
    }
    let states = states(stack);
    wait_until_processed(&states, &last).await;
    let requests = request_log::requests(stack).await.expect("the request log");
    let own_gets = states.store.gets.load(std::sync::atomic::Ordering::Relaxed);

    let vitals_table = table(stack, "VitalsTable");
    let state_table = table(stack, "PatientStateTable");
    let stats_table = table(stack, "VillageStatsTable");
    let writes = |name: Option<&str>| {
        requests
            .iter()
            .filter(|r| r.service == "dynamodb" && r.is_write())
            .filter(|r| name.is_none_or(|n| r.table.as_deref() == Some(n)))
            .count()
    };
    let (vitals_writes, state_writes, stats_writes, all_writes) = (
        writes(Some(&vitals_table)),
        writes(Some(&state_table)),
        writes(Some(&stats_table)),
        writes(None),
    );
    let per_1000 = |n: usize| n as f64 * 1000.0 / readings.len() as f64;
    println!(
        "recent vitals: {} readings ({PATIENTS} patients x {PER_PATIENT}, one a minute): \
         VitalsTable {vitals_writes} writes ({:.1} per 1,000; {expected} closed patient-hours), \
         VillageStatsTable {stats_writes} ({:.1}), PatientStateTable {state_writes} ({:.1}), \
         all DynamoDB writes {all_writes} ({:.1} per 1,000)",
        readings.len(),
        per_1000(vitals_writes),
        per_1000(stats_writes),
        per_1000(state_writes),
        per_1000(all_writes),
    );
    assert_eq!(vitals_writes, expected, "one write per closed patient-hour");
    assert!(per_1000(vitals_writes) <= 30.0);
    // issue 15 (detect-state): the reading path's DynamoDB requests per 1,000 readings.
    // Reads: every DynamoDB read but the test's own polling of the state, the sweep's
    // queries of the due index (16 a run, whatever the traffic: per time, not per reading)
    // and the event sources' DynamoDB Streams polling.
    let sweep_queries = requests
        .iter()
        .filter(|r| r.service == "dynamodb" && r.operation == "Query")
        .filter(|r| r.table.as_deref() == Some(state_table.as_str()))
        .count();
    // DynamoDB Streams requests (signed `dynamodb` too) are the event sources' polling,
    // Lambda's part (free on AWS), not the functions'.
    const STREAMS: &[&str] = &[
        "GetRecords",
        "GetShardIterator",
        "DescribeStream",
        "ListStreams",
    ];
    let all_reads = requests
        .iter()
        .filter(|r| r.service == "dynamodb" && !r.is_write())
        .filter(|r| !STREAMS.contains(&r.operation.as_str()))
        .count();
    let reads = all_reads - own_gets - sweep_queries;
    let mut by_operation: BTreeMap<(String, Option<String>), usize> = BTreeMap::new();
    for r in requests.iter().filter(|r| r.service == "dynamodb") {
        *by_operation
            .entry((r.operation.clone(), r.table.clone()))
            .or_default() += 1;
    }
    println!(
        "reading path per 1,000 readings: DynamoDB writes {:.1}, reads {:.1} \
         ({reads} = {all_reads} - {own_gets} the test's own - {sweep_queries} sweep index queries); \
         by operation and table: {by_operation:?}",
        per_1000(all_writes),
        per_1000(reads),
    );
    assert!(
        per_1000(all_writes) <= 30.0,
        "DynamoDB writes per 1,000 readings"
    );
    assert!(per_1000(reads) <= 30.0, "DynamoDB reads per 1,000 readings");
    assert!(
        !requests.iter().any(|r| r.operation == "Scan"),
        "no Scan on the reading path"
    );

    // Every reading is kept exactly once: in a block or in the open hour of the state.
    let store = DynamoVitals::new(stack.sdk_config(), vitals_table);
    let mut flushed = 0i64;
    for i in 0..PATIENTS {
        let id = patient(i);
        let page = store
            .blocks(
                &id,
                hour_of(now.timestamp_millis()) - 3 * HOUR_MS,
                hour_of(now.timestamp_millis()),
                None,
                100,
            )
            .await
            .expect("querying the vitals table");
        let mut samples = Vec::new();
        for stored in &page.blocks {
            flushed += i64::from(stored.block.count);
            samples.extend(stored.block.samples().expect("a block decodes"));
        }
        let state = states.load(&id).await.expect("the state").value;
        for hour in &state.vitals {
            samples.extend(
                vitals::decode(hour.start, &hour.devices, &hour.readings)
                    .expect("the open hour decodes"),
            );
        }
        let merged = vitals::merge(samples.clone());
        assert_eq!(
            samples.len(),
            PER_PATIENT as usize,
            "{id}: every reading once"
        );
        assert_eq!(merged.len(), PER_PATIENT as usize);
        assert_eq!(merged[0].value, 70.0);
        assert_eq!(
            merged[0].device.as_deref(),
            Some(format!("watch-{i:02}").as_str())
        );
    }
    // The village's days count the flushed readings.
    let stats = DynamoVillageStats::new(stack.sdk_config(), table(stack, "VillageStatsTable"));
    let days = stats
        .days(VILLAGE, "2000-01-01", "2999-12-31")
        .await
        .expect("village days");
    let counted: i64 = days
        .iter()
        .map(|(_, c)| c.get("readings").copied().unwrap_or_default())
        .sum();
    assert_eq!(counted, flushed);
    flushed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recent_vitals_and_village_statistics() {
    // issue 15 (detect-state): detection state per stream shard (the default layout) in 2
    // buckets, written at most every 20 s (the sweep, every 5 s locally, writes a silent
    // shard's, 40 s on).
    let stack = start_stack_with(
        "read_side",
        &[("DetectFlushSeconds", "20"), ("DetectStateBuckets", "2")],
    )
    .await;
    let flushed = vitals_writes_per_1000_readings(&stack).await;
    routes::patient_readings_and_village_routes(&stack, flushed).await;
}

#[path = "read_side/routes.rs"]
mod routes;

#[path = "read_side/counted.rs"]
mod counted;
