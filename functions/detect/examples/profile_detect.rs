//! Runs one iteration of the `detect` benchmark mix (`benches/detect.rs`), for instruction
//! counts under callgrind, which are repeatable where wall-clock time on a shared machine
//! is not:
//!
//! ```text
//! CARGO_PROFILE_BENCH_DEBUG=line-tables-only CARGO_PROFILE_BENCH_STRIP=false \
//!     cargo build --profile bench -p detect --example profile_detect
//! valgrind --tool=callgrind --dump-instr=no --toggle-collect='*profile_detect::measured*' \
//!     target/release/examples/profile_detect [evaluate|decode]
//! ```
//!
//! `--toggle-collect` leaves out building the data set; divide the total by 100,000
//! readings.

use std::collections::HashMap;
use std::hint::black_box;

use domain::detection::PatientState;

#[path = "../benches/mix/mod.rs"]
mod mix;

#[inline(never)]
fn measured(
    rules: &domain::detection::RuleSet,
    data: &[(Vec<String>, chrono::DateTime<chrono::Utc>)],
    decode_only: bool,
) -> (usize, HashMap<String, PatientState>) {
    if decode_only {
        mix::decode_all(data);
        (0, HashMap::new())
    } else {
        // The states are dropped by the caller, outside the measurement, as in the benchmark.
        mix::run_all(rules, data, HashMap::new())
    }
}

fn main() {
    let decode_only = std::env::args().nth(1).as_deref() == Some("decode");
    let rules = detect::default_rules().expect("the embedded rules are valid");
    let data = mix::dataset();
    let (alerts, states) = black_box(measured(&rules, &data, decode_only));
    drop(states);
    println!(
        "{} readings, {alerts} alerts + resolutions",
        mix::PATIENTS * mix::ROUNDS * 5
    );
}
