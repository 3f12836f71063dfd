//! Time-bounded fuzzing on stable Rust (issue 13), driven by proptest: a target is a
//! check of one input (`Err` or a panic is a crash); [`run`] replays a seed corpus, then
//! feeds the target mutated seeds, random bytes and random JSON until its time is up, and
//! shrinks a crash to a small input.
//!
//! The time comes from `FUZZ_SECONDS` (default [`DEFAULT_SECONDS`], so that a plain
//! `cargo test` stays quick); `scripts/fuzz.sh` runs every target for longer, optimised.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};

/// Seconds a target runs for when `FUZZ_SECONDS` is not set.
pub const DEFAULT_SECONDS: f64 = 5.0;

/// How long each target runs: `FUZZ_SECONDS` (fractions allowed), else [`DEFAULT_SECONDS`].
pub fn budget() -> Duration {
    let seconds = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .unwrap_or(DEFAULT_SECONDS);
    Duration::from_secs_f64(seconds)
}

/// The files of a corpus directory, by name.
pub fn corpus(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .filter(|entry| entry.path().is_file())
        .map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(entry.path()).unwrap_or_default())
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "corpus {} is empty", dir.display());
    files
}

/// Pieces of JSON (and of broken JSON) that mutations insert.
const TOKENS: &[&str] = &[
    "\"",
    "\\",
    "\\u0000",
    "\\ud800",
    "\\\"",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "null",
    "true",
    "false",
    "0",
    "-0",
    "1e999",
    "-1e-999",
    "1.5e3",
    "NaN",
    "Infinity",
    "18446744073709551616",
    "\"value\":250,",
    "\"patientId\":\"p-1\",",
    "\"x\":1,",
    "\u{feff}",
    "é",
    "\u{7}",
    " ",
    "\n",
    "\"\"",
    "{}",
    "[]",
    "\"2026-11-24T09:59:00Z\"",
    "\"heart_rate\"",
    "\"bpm\"",
];

/// One change to an input.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(Index, u8),
    Insert(Index, Vec<u8>),
    InsertToken(Index, Index),
    Delete(Index, usize),
    Truncate(Index),
    /// Copies a slice elsewhere (a key twice, a reading twice...).
    Duplicate(Index, usize, Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<Index>(), proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<Index>(), any::<Index>()).prop_map(|(i, t)| Mutation::InsertToken(i, t)),
        (any::<Index>(), 1usize..32).prop_map(|(i, n)| Mutation::Delete(i, n)),
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), 1usize..64, any::<Index>())
            .prop_map(|(i, n, to)| Mutation::Duplicate(i, n, to)),
    ]
}

fn apply(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len();
        let at = |i: &Index| if len == 0 { 0 } else { i.index(len + 1) };
        match m {
            Mutation::Flip(i, b) => {
                if len > 0 {
                    let k = i.index(len);
                    bytes[k] ^= b | 1;
                }
            }
            Mutation::Insert(i, b) => {
                let k = at(i);
                bytes.splice(k..k, b.iter().copied());
            }
            Mutation::InsertToken(i, t) => {
                let k = at(i);
                bytes.splice(k..k, TOKENS[t.index(TOKENS.len())].bytes());
            }
            Mutation::Delete(i, n) => {
                let k = at(i).min(len);
                bytes.drain(k..(k + n).min(len));
            }
            Mutation::Truncate(i) => bytes.truncate(at(i)),
            Mutation::Duplicate(i, n, to) => {
                let k = at(i).min(len);
                let chunk: Vec<u8> = bytes[k..(k + n).min(len)].to_vec();
                let dest = at(to).min(len);
                bytes.splice(dest..dest, chunk);
            }
        }
    }
    bytes
}

fn json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("patientId"),
            Just("type"),
            Just("value"),
            Just("heart_rate"),
            Just("p-1")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 48, 8, |inner| {
        let key = prop_oneof![
            Just("patientId".to_string()),
            Just("type".to_string()),
            Just("value".to_string()),
            Just("unit".to_string()),
            Just("timestamp".to_string()),
            Just("deviceId".to_string()),
            Just("data".to_string()),
            Just("eventType".to_string()),
            "\\PC{0,6}",
        ];
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(key, inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Inputs for a target: mostly mutated seeds, some random bytes and random JSON.
pub fn inputs(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    assert!(!seeds.is_empty(), "no seeds");
    let mutated = (
        proptest::sample::select(seeds),
        proptest::collection::vec(mutation(), 0..6),
    )
        .prop_map(|(seed, mutations)| apply(seed, &mutations));
    prop_oneof![
        6 => mutated,
        1 => proptest::collection::vec(any::<u8>(), 0..256),
        2 => json().prop_map(|v| v.to_string().into_bytes()),
    ]
}

/// What a run did.
#[derive(Debug)]
pub struct Report {
    pub cases: u64,
    pub crashes: u64,
    /// The smallest crashing input found and why, if any.
    pub crash: Option<(Vec<u8>, String)>,
}

/// Checks one input, a panic counting as a failure.
fn guarded(check: &impl Fn(&[u8]) -> Result<(), String>, input: &[u8]) -> Result<(), String> {
    match catch_unwind(AssertUnwindSafe(|| check(input))) {
        Ok(result) => result,
        Err(panic) => Err(format!(
            "panicked: {}",
            panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)")
        )),
    }
}

/// Runs `check` on every file of `corpus_dir`, then on generated inputs (seeded from the
/// corpus) for [`budget`]; prints one summary line.
pub fn run(name: &str, corpus_dir: &Path, check: impl Fn(&[u8]) -> Result<(), String>) -> Report {
    let files = corpus(corpus_dir);
    let mut report = Report {
        cases: 0,
        crashes: 0,
        crash: None,
    };
    for (file, bytes) in &files {
        report.cases += 1;
        if let Err(why) = guarded(&check, bytes) {
            report.crashes += 1;
            report.crash = Some((bytes.clone(), format!("corpus file {file}: {why}")));
            return report;
        }
    }
    let budget = budget();
    let started = Instant::now();
    let strategy = inputs(files.into_iter().map(|(_, bytes)| bytes).collect());
    let cases = AtomicU64::new(0);
    while started.elapsed() < budget {
        let mut runner = TestRunner::new(Config {
            cases: 256,
            failure_persistence: None,
            max_shrink_iters: 4096,
            ..Config::default()
        });
        let result = runner.run(&strategy, |input| {
            cases.fetch_add(1, Ordering::Relaxed);
            guarded(&check, &input).map_err(TestCaseError::fail)
        });
        if let Err(TestError::Fail(why, input)) = result {
            report.crashes += 1;
            report.crash = Some((input, why.to_string()));
            break;
        }
    }
    report.cases += cases.load(Ordering::Relaxed);
    eprintln!(
        "fuzz {name}: {} cases in {:.1} s, {} crashes",
        report.cases,
        started.elapsed().as_secs_f64(),
        report.crashes
    );
    if let Some((input, why)) = &report.crash {
        eprintln!(
            "fuzz {name}: crash: {why}\n  input: {:?}",
            String::from_utf8_lossy(input)
        );
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_is_found_shrunk_and_reported() {
        let dir = std::env::temp_dir().join(format!("fuzz-corpus-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("seed.json"), br#"{"a": [1, 2]}"#).unwrap();
        // A target that panics on a `!` and fails on a `?`: both are crashes.
        let report = run("self-test", &dir, |input| {
            assert!(!input.contains(&b'!'), "a bang");
            if input.contains(&b'?') {
                return Err("a question".into());
            }
            Ok(())
        });
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(report.crashes, 1);
        let (input, why) = report.crash.unwrap();
        assert!(
            why.contains("a bang") || why.contains("a question"),
            "{why}"
        );
        assert!(input.len() <= 2, "not shrunk: {input:?}");
    }

    proptest! {
        #[test]
        fn mutations_stay_in_bounds(
            seed in proptest::collection::vec(any::<u8>(), 0..4),
            mutations in proptest::collection::vec(mutation(), 0..16),
        ) {
            apply(seed, &mutations);
        }
    }
}
