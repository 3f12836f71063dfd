//! Decode + evaluate throughput of `detect`, on one core, without I/O.
//!
//! Input: Kinesis record payloads as Lambda hands them over (base64 of the JSON envelope
//! `ingest` writes), in batches of 100 records. Each batch goes through the handler's own
//! functions: base64 decoding as the Lambda event's deserialisation does it
//! (`detect::kinesis::decode_data`), envelope decoding and checks (`detect::decode_record`),
//! grouping by patient (`detect::group_by_patient`), and each patient's readings applied
//! to the patient's state with all default rules (`functions/detect/rules.yaml`). States
//! are kept in a map, as the handler keeps them in DynamoDB; every iteration starts from
//! empty states.
//!
//! Mix: 500 patients, 40 rounds one minute apart, 5 vitals per round (100,000 readings);
//! one patient in ten is unwell (fast heart, low SpO2, fever, falling blood pressure), so
//! every rule kind is exercised, alerts are raised and resolved. The mix and the batch
//! processing live in `benches/mix/`, shared with `examples/profile_detect.rs`, which runs
//! one iteration for instruction counts under callgrind.
//!
//! Side by side (issue 15), in the same run: the handler's path from the invocation JSON
//! (`detect::kinesis::Event`, `decode_record`, `group_by_patient`, the engine) and a
//! baseline written the obvious way (`aws_lambda_events::KinesisEvent` + `serde_json` into
//! `Envelope<Reading>`, a `BTreeMap` of owned patient ids, the same engine), over the same
//! mix; the ratio of the two criterion estimates is printed at the end.
//!
//! Run: `cargo bench -p detect --bench detect`. Results: `docs/performance.md`.

use std::collections::HashMap;

use criterion::{BatchSize, Criterion, Throughput, criterion_group};

mod mix;

use mix::{
    PATIENTS, ROUNDS, baseline_path, dataset, decode_all, handler_path, invocations, run_all,
    run_invocations,
};

const SIDE_BY_SIDE: &str = "detect-side-by-side";
const HANDLER: &str = "handler path (invocation JSON)";
const BASELINE: &str = "baseline (aws_lambda_events + serde_json)";

fn bench(c: &mut Criterion) {
    let rules = detect::default_rules().expect("the embedded rules are valid");
    let data = dataset();
    let readings = (PATIENTS * ROUNDS * 5) as u64;

    // Sanity: the mix raises alerts of several rules.
    let (alerts, _) = run_all(&rules, &data, HashMap::new());
    assert!(alerts > 0);

    let mut group = c.benchmark_group("detect");
    group.sample_size(10);
    group.throughput(Throughput::Elements(readings));
    group.bench_function("decode+evaluate (all default rules)", |b| {
        b.iter_batched(
            HashMap::new,
            |states| run_all(&rules, &data, states),
            BatchSize::LargeInput,
        )
    });
    group.bench_function("decode only", |b| b.iter(|| decode_all(&data)));
    group.finish();

    // Side by side: the same mix from the invocation JSON, through the handler's path and
    // through the baseline; both must find the same alerts.
    let json = invocations(&data);
    let (ours, _) = run_invocations(&rules, &json, HashMap::new(), handler_path);
    let (theirs, _) = run_invocations(&rules, &json, HashMap::new(), baseline_path);
    assert_eq!(ours, theirs, "both paths raise and resolve the same alerts");
    assert_eq!(ours, alerts);
    let mut group = c.benchmark_group(SIDE_BY_SIDE);
    group.sample_size(10);
    group.throughput(Throughput::Elements(readings));
    group.bench_function(HANDLER, |b| {
        b.iter_batched(
            HashMap::new,
            |states| run_invocations(&rules, &json, states, handler_path),
            BatchSize::LargeInput,
        )
    });
    group.bench_function(BASELINE, |b| {
        b.iter_batched(
            HashMap::new,
            |states| run_invocations(&rules, &json, states, baseline_path),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

/// The mean estimate (ns per iteration) criterion saved for `name` in this run (found by
/// the `function_id` of each benchmark folder of the group).
fn estimate(name: &str) -> Option<f64> {
    let target = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../target").to_string());
    let group = std::path::Path::new(&target)
        .join("criterion")
        .join(SIDE_BY_SIDE);
    let read = |path: std::path::PathBuf| -> Option<serde_json::Value> {
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
    };
    std::fs::read_dir(group).ok()?.flatten().find_map(|entry| {
        let new = entry.path().join("new");
        let id = read(new.join("benchmark.json"))?;
        if id["function_id"].as_str() != Some(name) {
            return None;
        }
        read(new.join("estimates.json"))?["mean"]["point_estimate"].as_f64()
    })
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    match (estimate(HANDLER), estimate(BASELINE)) {
        (Some(ours), Some(theirs)) => println!(
            "side by side, this run: baseline {:.1} ms, handler path {:.1} ms per 100,000 readings: the handler path is {:.2}x faster",
            theirs / 1e6,
            ours / 1e6,
            theirs / ours
        ),
        _ => println!("side by side: no estimates found under target/criterion (filtered out?)"),
    }
}
