//! The archive (issue 14, docs/archive.md), on one local stack whose archive emulation
//! redelivers every 2nd batch of each shard (at least once, as Firehose is).
//!
//! `every_reading_and_event_is_archived_and_queries_deduplicate`: readings of four patients
//! in two villages (three of them alert: heart rate above 100 three times) are posted in
//! rounds; once the archive has caught up its objects are downloaded from the emulator's
//! S3 and queried with DuckDB (scripts/archive-query.py):
//! - every reading id ingest answered 202 with is in the archive, exactly once after the
//!   query's dedupe, while the raw archive holds duplicates;
//! - every stored event (the events table's event items, a Scan) is in it, once;
//! - alerts per village per week are those of the events table.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, Utc};
use devstack::archive::ArchiveConfig;
use devstack::s3::S3;
use devstack::{Stack, inspect};
use domain::routing::DirectoryEntry;
use e2e::*;
use serde_json::{Value, json};

/// (patient, village, heart rate): 118 alerts (hr-high-3 after three), 72 does not.
const PATIENTS: &[(&str, &str, f64)] = &[
    ("p-arch-1", "Bondo", 118.0),
    ("p-arch-2", "Bondo", 118.0),
    ("p-arch-3", "Usigu", 118.0),
    ("p-arch-4", "Usigu", 72.0),
];
const ROUNDS: i64 = 4;

fn directory_entry(patient: &str, village: &str) -> DirectoryEntry {
    DirectoryEntry {
        patient_id: patient.into(),
        patient_name: format!("Patient {patient}"),
        village: village.into(),
        worker_id: "w-01".into(),
        worker_name: "Worker w-01".into(),
        worker_phone: "+254700000301".into(),
        device_ids: Vec::new(),
    }
}

/// The pinned DuckDB venv (scripts/setup-duckdb.sh; does nothing when it is there).
fn duckdb_python() -> PathBuf {
    let root = workspace_root();
    let status = Command::new(root.join("scripts/setup-duckdb.sh"))
        .status()
        .expect("running scripts/setup-duckdb.sh");
    assert!(status.success(), "scripts/setup-duckdb.sh failed");
    root.join(".local/duckdb/bin/python")
}

/// Rows of a named query of scripts/archive-query.py over `dir`.
fn query(python: &Path, dir: &Path, name: &str) -> Vec<Value> {
    let output = Command::new(python)
        .arg(workspace_root().join("scripts/archive-query.py"))
        .arg(dir)
        .arg(name)
        .output()
        .expect("running scripts/archive-query.py");
    assert!(
        output.status.success(),
        "archive-query.py {name}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON row"))
        .collect()
}

/// Every stored event: the events table's items that have an `eventType` (Scan, all pages;
/// the dedupe items have none).
async fn stored_events(stack: &Stack) -> Vec<Value> {
    let table = stack.resource("EventsTable").expect("events table");
    let client = aws_sdk_dynamodb::Client::new(stack.sdk_config());
    let mut events = Vec::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(&table.ref_value)
            .consistent_read(true)
            .filter_expression("attribute_exists(eventType)")
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scanning the events table");
        for item in page.items() {
            let item: Value = serde_dynamo::from_item(item.clone()).expect("an event item as JSON");
            events.push(item);
        }
        match page.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => return events,
        }
    }
}

/// Monday of the week of an RFC 3339 time, as `YYYY-MM-DD`.
fn week_of(timestamp: &str) -> String {
    let at: DateTime<Utc> = DateTime::parse_from_rfc3339(timestamp)
        .expect("an RFC 3339 event timestamp")
        .with_timezone(&Utc);
    let monday =
        at.date_naive() - chrono::Duration::days(i64::from(at.weekday().num_days_from_monday()));
    monday.format("%Y-%m-%d").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_reading_and_event_is_archived_and_queries_deduplicate() {
    let started = Instant::now();
    let python = duckdb_python();
    let stack = start_stack_configured("archive", |config| {
        config.archive = ArchiveConfig::redelivering(2);
    })
    .await;
    let entries: Vec<DirectoryEntry> = PATIENTS
        .iter()
        .map(|(patient, village, _)| directory_entry(patient, village))
        .collect();
    inspect::seed_directory(&stack, &entries)
        .await
        .expect("seeding the directory");

    // Rounds more than a buffer interval (1 s) apart: several batches per shard, so some
    // are redelivered.
    let mut accepted = BTreeSet::new();
    for round in 0..ROUNDS {
        let readings: Vec<Value> = PATIENTS
            .iter()
            .flat_map(|(patient, _, heart_rate)| {
                [
                    reading(patient, "heart_rate", *heart_rate, 10 - round),
                    reading(patient, "spo2", 97.0, 10 - round),
                ]
            })
            .collect();
        let (status, body) = post(&stack, &json!(readings), None).await;
        assert_eq!(status, 202, "{body}");
        for id in body["eventIds"].as_array().expect("eventIds") {
            accepted.insert(id.as_str().expect("an id").to_string());
        }
        tokio::time::sleep(Duration::from_millis(1300)).await;
    }
    assert_eq!(accepted.len(), PATIENTS.len() * 2 * ROUNDS as usize);

    stack
        .wait_archived(Duration::from_secs(45))
        .await
        .expect("the archive caught up");
    let archive = stack.archive().expect("archive on");
    let bucket = archive.bucket().expect("an archive bucket").to_string();
    assert_eq!(bucket, stack.resource("ArchiveBucket").unwrap().ref_value);
    let dir = std::env::temp_dir().join(format!("vitals-archive-{}", uuid::Uuid::new_v4()));
    let files = S3::new(stack.endpoint_url())
        .download(&bucket, "", &dir)
        .await
        .expect("downloading the archive");
    let prefix = format!("{}-ReadingsArchive-1-", stack.config().stack_name);
    let today = Utc::now().format("%Y-%m-%d").to_string();
    assert!(
        files.iter().any(|f| {
            let key = f.strip_prefix(&dir).unwrap().to_string_lossy().to_string();
            key.starts_with(&format!("readings/dt={today}/{prefix}")) && key.ends_with(".gz")
        }),
        "Firehose-style keys: {files:?}"
    );

    // (a) Every accepted reading, once per id after the dedupe; the raw archive had copies.
    let readings = query(&python, &dir, "readings");
    let mut copies: BTreeMap<String, usize> = BTreeMap::new();
    for row in &readings {
        *copies
            .entry(row["eventId"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let archived: BTreeSet<String> = copies.keys().cloned().collect();
    assert_eq!(
        archived, accepted,
        "the archive holds exactly the accepted readings"
    );
    assert!(copies.values().all(|&n| n == 1), "{copies:?}");
    let duplicates = query(&python, &dir, "duplicates");
    let raw = duplicates
        .iter()
        .find(|row| row["archive"] == "readings")
        .expect("readings row");
    assert_eq!(raw["ids"], json!(accepted.len()));
    assert!(
        raw["records"].as_u64().unwrap() > accepted.len() as u64,
        "the raw archive must hold redelivered copies: {duplicates:?}"
    );
    assert!(
        archive
            .stats()
            .redelivered_batches
            .load(std::sync::atomic::Ordering::SeqCst)
            > 0
    );

    // (b) Every stored event, once.
    let stored = stored_events(&stack).await;
    let stored_ids: BTreeSet<String> = stored
        .iter()
        .map(|e| e["eventId"].as_str().expect("eventId").to_string())
        .collect();
    let events = query(&python, &dir, "events");
    let archived_events: Vec<&str> = events
        .iter()
        .map(|row| row["eventId"].as_str().unwrap())
        .collect();
    assert_eq!(
        archived_events.len(),
        archived_events.iter().collect::<BTreeSet<_>>().len()
    );
    assert_eq!(
        archived_events
            .iter()
            .map(|id| id.to_string())
            .collect::<BTreeSet<_>>(),
        stored_ids,
        "the archive holds exactly the stored events"
    );

    // (c) Alerts per village per week, as the events table has them.
    let mut expected: BTreeMap<(String, String), u64> = BTreeMap::new();
    for event in stored.iter().filter(|e| e["eventType"] == "AlertRaised") {
        let village = event["data"]["village"].as_str().unwrap().to_string();
        let week = week_of(event["timestamp"].as_str().unwrap());
        *expected.entry((village, week)).or_default() += 1;
    }
    let per_village: BTreeMap<&str, u64> =
        expected
            .iter()
            .fold(BTreeMap::new(), |mut totals, ((village, _), n)| {
                *totals.entry(village.as_str()).or_default() += n;
                totals
            });
    assert_eq!(
        per_village,
        BTreeMap::from([("Bondo", 2), ("Usigu", 1)]),
        "one alert per unwell patient"
    );
    let answered: BTreeMap<(String, String), u64> =
        query(&python, &dir, "alerts-per-village-per-week")
            .iter()
            .map(|row| {
                (
                    (
                        row["village"].as_str().unwrap().to_string(),
                        row["week"].as_str().unwrap().to_string(),
                    ),
                    row["alerts"].as_u64().unwrap(),
                )
            })
            .collect();
    assert_eq!(answered, expected);

    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "archive: {} readings, {} events, raw reading records {}, {:?} in all",
        accepted.len(),
        stored_ids.len(),
        raw["records"],
        started.elapsed()
    );
    stack.shutdown().await.expect("shutdown");
}
