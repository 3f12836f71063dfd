//! Fuzzing detect's reader of Kinesis records (issue 13): whatever a record's data, the
//! handler does not panic; a record that does not decode becomes exactly one poison record
//! whose reason is the decode error (non-empty), and is not retried; the fast reader
//! ([`detect::decode_record`]) reads exactly what serde_json reads. `FUZZ_SECONDS` sets the
//! time (testkit::fuzz); the seeds are in `fuzz-corpus/`. `scripts/fuzz.sh` runs it longer.

use std::path::Path;

use application::idempotency::Idempotency;
use aws_lambda_events::event::kinesis::KinesisEvent;
use chrono::{DateTime, Utc};
use detect::{Deps, ReadingView, decode_record, default_rules, handle_batch};
use domain::detection::RuleSet;
use domain::envelope::decode_borrowed;
use domain::reading::Reading;
use serde_json::json;
use testkit::*;

/// A one-record Kinesis event carrying `data`.
fn event(data: &[u8]) -> Result<KinesisEvent, String> {
    serde_json::from_value(json!({"Records": [fixtures::kinesis_record(
        "shardId-000000000000",
        fixtures::READINGS_STREAM_ARN,
        "pk",
        "00000000000000000001",
        data,
    )]}))
    .map_err(|e| format!("event: {e}"))
}

/// The fast reader against serde_json's: the same envelope, or both errors.
fn same_as_serde(data: &[u8]) -> Result<Option<String>, String> {
    let fast = decode_record(data);
    let reference = decode_borrowed::<Reading>(data).map(|e| e.map_data(ReadingView::from));
    match (fast, reference) {
        (Ok(a), Ok(b)) if a == b => Ok(None),
        (Ok(a), Ok(b)) => Err(format!("fast {a:?} vs serde_json {b:?}")),
        (Ok(a), Err(e)) => Err(format!(
            "the fast reader took what serde_json refuses ({e}): {a:?}"
        )),
        (Err(e), Ok(_)) => Err(format!(
            "the fast reader refused what serde_json reads: {e}"
        )),
        (Err(e), Err(_)) => Ok(Some(e.to_string())),
    }
}

fn check(runtime: &tokio::runtime::Runtime, rules: &RuleSet, data: &[u8]) -> Result<(), String> {
    let refused = same_as_serde(data)?;
    let now: DateTime<Utc> = "2026-11-24T09:00:00Z".parse().map_err(|e| format!("{e}"))?;
    let state = MemoryStateStore::default();
    let events = MemoryEventStore::default();
    let directory = MemoryDirectory::default();
    let publisher = MemoryPublisher::default();
    let dead_letters = MemoryDeadLetters::default();
    let idempotency = MemoryIdempotencyStore::default();
    let guard = Idempotency::new(&idempotency, detect::publish_idempotency_config());
    let deps = Deps {
        rules,
        state: &state,
        events: &events,
        directory: &directory,
        publisher: &publisher,
        dead_letters: &dead_letters,
        publish_guard: &guard,
        auto_dispatch_max_age: chrono::Duration::minutes(15),
        vitals: &testkit::MemoryVitals::default(),
        village_stats: &testkit::MemoryVillageStats::default(),
    };
    let (response, summary) = runtime.block_on(handle_batch(&deps, &event(data)?, now));
    let poison = dead_letters.records.lock().map_err(|e| e.to_string())?;
    match refused {
        Some(reason) => {
            if summary.poison != 1 || poison.len() != 1 {
                return Err(format!("{} poison records for {reason}", poison.len()));
            }
            if poison[0].reason.trim().is_empty() || poison[0].reason != reason {
                return Err(format!(
                    "poison reason {:?}, expected {reason:?}",
                    poison[0].reason
                ));
            }
            if !response.batch_item_failures.is_empty() {
                return Err("a poison record is retried".into());
            }
        }
        None => {
            if summary.poison != 0 || !poison.is_empty() {
                return Err(format!("a decodable record went to poison: {poison:?}"));
            }
        }
    }
    Ok(())
}

#[test]
fn fuzz_detect_record_reader() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let rules = default_rules().expect("the embedded rules are valid");
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz-corpus");
    let report = testkit::fuzz::run("detect", &corpus, |data| check(&runtime, &rules, data));
    assert_eq!(report.crashes, 0, "{:?}", report.crash);
}
