//! The layering of the workspace, checked (docs/architecture.md has the picture):
//!
//! - `domain` depends on no AWS, Lambda, async-runtime or logging crate, directly or not
//!   (`cargo tree -p domain`, dev-dependencies included);
//! - each workspace crate depends only on the workspace crates its layer allows, and
//!   `testkit` is only ever a dev-dependency;
//! - no Rust source file is longer than 600 lines, test files aside (files under a
//!   `tests/` folder and `tests.rs` modules).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

fn cargo(args: &[&str]) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(args)
        .current_dir(workspace_root())
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("cargo prints UTF-8")
}

/// Crates the domain must never pull in, by name prefix.
const FORBIDDEN_IN_DOMAIN: [&str; 7] = [
    "aws-",
    "aws_",
    "lambda_",
    "tokio",
    "tracing",
    "hyper",
    "serde_dynamo",
];

#[test]
fn the_domain_depends_on_no_aws_lambda_runtime_or_logging_crate() {
    let tree = cargo(&[
        "tree",
        "-p",
        "domain",
        "--edges",
        "normal,build,dev",
        "--prefix",
        "none",
        "--offline",
    ]);
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        crates.contains(&"chrono"),
        "unexpected cargo tree output:\n{tree}"
    );
    let forbidden: Vec<&&str> = crates
        .iter()
        .filter(|c| FORBIDDEN_IN_DOMAIN.iter().any(|f| c.starts_with(f)))
        .collect();
    assert!(
        forbidden.is_empty(),
        "the domain crate must stay pure; `cargo tree -p domain` shows {forbidden:?}"
    );
}

/// The workspace crates each layer may depend on (normal dependencies).
fn allowed(package: &str) -> Option<&'static [&'static str]> {
    Some(match package {
        "domain-derive" => &[],
        // Lambda plumbing: the HTTP caller is the domain's `access::Caller`.
        "lambda-kit" => &["domain"],
        "domain" => &["domain-derive"],
        "application" => &["domain"],
        "aws-adapters" | "testkit" => &["domain", "application"],
        "ingest" | "detect" | "route" | "notify" | "emergency" | "project" | "query"
        | "directory" => &["domain", "application", "lambda-kit", "aws-adapters"],
        "devstack" => &["domain", "lambda-kit", "aws-adapters"],
        "e2e" => return None,
        _ => &[],
    })
}

#[test]
fn workspace_crates_depend_only_on_the_layers_below_them() {
    let metadata: Value = serde_json::from_str(&cargo(&[
        "metadata",
        "--format-version",
        "1",
        "--no-deps",
        "--offline",
    ]))
    .expect("cargo metadata is JSON");
    let packages = metadata["packages"].as_array().expect("packages");
    let members: Vec<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    let mut problems = BTreeMap::new();
    for package in packages {
        let name = package["name"].as_str().unwrap_or_default();
        for dependency in package["dependencies"].as_array().into_iter().flatten() {
            let dep = dependency["name"].as_str().unwrap_or_default();
            if !members.contains(&dep) {
                continue;
            }
            let dev = dependency["kind"].as_str() == Some("dev");
            let ok = match allowed(name) {
                None => true,
                Some(_) if dep == "testkit" => dev,
                Some(_) if dev => true,
                Some(allowed) => allowed.contains(&dep),
            };
            if !ok {
                problems.insert(format!("{name} -> {dep}"), dev);
            }
        }
    }
    assert!(
        problems.is_empty(),
        "dependencies that break the layering (docs/architecture.md): {problems:#?}"
    );
}

/// The longest a Rust source file may be.
const MAX_LINES: usize = 600;

fn rust_sources(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            // Test folders and build output are not counted.
            if name != "tests" && name != "target" && name != "benches" {
                rust_sources(&path, found);
            }
        } else if path.extension().is_some_and(|e| e == "rs") && name != "tests.rs" {
            found.push(path);
        }
    }
}

#[test]
fn no_source_file_is_longer_than_600_lines() {
    let root = workspace_root();
    let mut files = Vec::new();
    for dir in ["shared", "functions", "devstack"] {
        rust_sources(&root.join(dir), &mut files);
    }
    assert!(files.len() > 50, "found only {} source files", files.len());
    let long: Vec<String> = files
        .iter()
        .filter_map(|path| {
            let lines = std::fs::read_to_string(path).ok()?.lines().count();
            (lines > MAX_LINES).then(|| {
                format!(
                    "{} ({lines} lines)",
                    path.strip_prefix(&root).unwrap_or(path).display()
                )
            })
        })
        .collect();
    assert!(
        long.is_empty(),
        "split these by concern (tests can move to a `tests.rs` module): {long:#?}"
    );
}
