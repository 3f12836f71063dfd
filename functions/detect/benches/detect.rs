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
//! Run: `cargo bench -p detect --bench detect`. Results: `docs/performance.md`.

use std::collections::HashMap;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

mod mix;

use mix::{PATIENTS, ROUNDS, dataset, decode_all, run_all};

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
}

criterion_group!(benches, bench);
criterion_main!(benches);
