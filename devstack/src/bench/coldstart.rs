//! `devstack bench coldstart` (issue 15): each function's init, from process start to its
//! first poll of the Lambda Runtime API (`GET /2018-06-01/runtime/invocation/next`),
//! against a hello-world `lambda_runtime` binary (`bench-hello`) from the same folder, so
//! built with the same profile.
//!
//! The local stack is started (moto, provisioning) only to give each function the complete
//! environment it has on the stack (template variables resolved, Lambda's own). Then each
//! binary is started `--starts` times (default 30), in turns (one start of each binary per
//! round, so load on the machine spreads over all), with `AWS_LAMBDA_RUNTIME_API` pointing
//! at a tiny fake Runtime API that records the time of the first `next` poll, then killed.
//! Reported: the median and p90 per binary, the ratio of the medians to hello world's
//! (goal <= 1.5x), the binary's size, and its zip's size if `target/lambda/<crate>/
//! bootstrap.zip` exists (`./dev package`: arm64 release, so not the profile measured).
//!
//! Profile: the binaries of `DEVSTACK_PROFILE` (default debug; e.g. `DEVSTACK_PROFILE=ci
//! ./dev bench coldstart` after `cargo build --profile ci --workspace`). Not part of
//! `./dev test`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use devstack::{Stack, StackConfig};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::load_average;

const HELLO: &str = "bench-hello";

/// `devstack bench coldstart`: each function's init (process start to its first poll of
/// the Runtime API) against a hello-world `lambda_runtime` binary.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Starts of each binary (the median is reported).
    #[arg(long, default_value_t = 30)]
    pub starts: usize,
    /// Print the results as one JSON object.
    #[arg(long)]
    pub json: bool,
}

impl Options {
    /// Checks the values clap parsed.
    pub fn validate(self) -> Result<Options> {
        let o = self;
        if o.starts == 0 {
            bail!("--starts must be above 0");
        }
        Ok(o)
    }
}

/// What the fake Runtime API saw of the process being started.
#[derive(Debug)]
enum Seen {
    Polled(Instant),
    InitError(String),
}

type Slot = Arc<Mutex<Option<oneshot::Sender<Seen>>>>;

fn report(slot: &Slot, seen: Seen) {
    if let Some(sender) = slot.lock().ok().and_then(|mut s| s.take()) {
        let _ = sender.send(seen);
    }
}

/// A Runtime API that records the first `next` poll (and never answers it) or an init error.
async fn fake_runtime_api(slot: Slot) -> Result<String> {
    use axum::routing::{get, post};
    let polled = slot.clone();
    let failed = slot;
    let router = axum::Router::new()
        .route(
            "/2018-06-01/runtime/invocation/next",
            get(async move || {
                report(&polled, Seen::Polled(Instant::now()));
                std::future::pending::<()>().await;
            }),
        )
        .route(
            "/2018-06-01/runtime/init/error",
            post(async move |body: String| {
                report(&failed, Seen::InitError(body));
                "{}"
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?.to_string();
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(address)
}

struct Binary {
    name: String,
    path: std::path::PathBuf,
    environment: BTreeMap<String, String>,
    starts_ms: Vec<f64>,
    errors: Vec<String>,
}

/// One start: spawn, wait for the first poll (or an init error, or 20 s), kill.
async fn start_once(binary: &Binary, api: &str, slot: &Slot) -> Result<f64> {
    let (sender, receiver) = oneshot::channel();
    if let Ok(mut s) = slot.lock() {
        *s = Some(sender);
    }
    let mut command = tokio::process::Command::new(&binary.path);
    command
        .env_clear()
        .envs(&binary.environment)
        .env("AWS_LAMBDA_RUNTIME_API", api)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let started = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {}", binary.path.display()))?;
    let seen = tokio::time::timeout(Duration::from_secs(20), receiver).await;
    let _ = child.kill().await;
    match seen {
        Ok(Ok(Seen::Polled(at))) => Ok(at.duration_since(started).as_secs_f64() * 1000.0),
        Ok(Ok(Seen::InitError(body))) => bail!("init error: {body}"),
        _ => bail!("no poll of the Runtime API within 20 s"),
    }
}

fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

fn file_size(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.len())
}

pub async fn run(config: StackConfig, options: Options) -> Result<bool> {
    let load_before = load_average();
    let bin_dir = config.bin_dir.clone();
    let workspace = config
        .template
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let hello = bin_dir.join(HELLO);
    if !hello.is_file() {
        bail!(
            "{} not found: build it with the functions' profile (cargo build -p {HELLO}, or --profile <p>)",
            hello.display()
        );
    }
    eprintln!("==> starting the local stack for the functions' environments");
    let stack = Stack::start(config).await?;
    let mut binaries = Vec::new();
    let mut hello_env = BTreeMap::new();
    for spec in stack.function_specs() {
        hello_env =
            devstack::lambda::lambda_environment(HELLO, spec.memory_mb, stack.endpoint_url());
        binaries.push(Binary {
            name: spec.logical_id.clone(),
            path: spec.binary.clone(),
            environment: spec.environment.clone(),
            starts_ms: Vec::new(),
            errors: Vec::new(),
        });
    }
    binaries.insert(
        0,
        Binary {
            name: HELLO.to_string(),
            path: hello,
            environment: hello_env,
            starts_ms: Vec::new(),
            errors: Vec::new(),
        },
    );
    let slot: Slot = Arc::default();
    let api = fake_runtime_api(slot.clone()).await?;
    eprintln!(
        "==> {} starts of each of {} binaries from {}",
        options.starts,
        binaries.len(),
        bin_dir.display()
    );
    for _ in 0..options.starts {
        for binary in &mut binaries {
            match start_once(binary, &api, &slot).await {
                Ok(ms) => binary.starts_ms.push(ms),
                Err(err) => binary.errors.push(format!("{err:#}")),
            }
        }
    }
    stack.shutdown().await?;

    let hello_median = median(&binaries[0].starts_ms);
    let rows: Vec<Value> = binaries
        .iter()
        .map(|b| {
            let med = median(&b.starts_ms);
            let mut sorted = b.starts_ms.clone();
            sorted.sort_by(f64::total_cmp);
            let p90 = sorted
                .get(((sorted.len() as f64 * 0.9).ceil() as usize).saturating_sub(1))
                .copied();
            let crate_name = b.path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let zip = workspace
                .join("target/lambda")
                .join(crate_name)
                .join("bootstrap.zip");
            json!({
                "function": b.name,
                "binary": crate_name,
                "starts": b.starts_ms.len(),
                "errors": b.errors.len(),
                "firstError": b.errors.first(),
                "medianMs": med.map(|v| (v * 100.0).round() / 100.0),
                "p90Ms": p90.map(|v| (v * 100.0).round() / 100.0),
                "ratioToHello": med.zip(hello_median).map(|(m, h)| (m / h * 100.0).round() / 100.0),
                "binaryBytes": file_size(&b.path),
                "zipBytes": file_size(&zip),
            })
        })
        .collect();
    let out = json!({
        "benchmark": "cold start: process start to first Runtime API poll (issue 15)",
        "command": format!("./dev bench coldstart --starts {}", options.starts),
        "binaries": bin_dir.display().to_string(),
        "goal": "median <= 1.5x hello world's",
        "loadAverageBefore": load_before,
        "loadAverageAfter": load_average(),
        "rows": rows,
    });
    if options.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!();
        println!("==> cold start (issue 15): process start -> first GET .../invocation/next");
        println!(
            "    command  {}  (binaries from {})",
            out["command"].as_str().unwrap_or(""),
            bin_dir.display()
        );
        println!(
            "    {:<30} {:>6} {:>10} {:>10} {:>8} {:>12} {:>12}",
            "function", "starts", "median ms", "p90 ms", "x hello", "binary B", "zip B"
        );
        for r in &rows {
            println!(
                "    {:<30} {:>6} {:>10} {:>10} {:>8} {:>12} {:>12}",
                r["function"].as_str().unwrap_or(""),
                r["starts"].to_string(),
                r["medianMs"].to_string(),
                r["p90Ms"].to_string(),
                r["ratioToHello"].to_string(),
                r["binaryBytes"].to_string(),
                r["zipBytes"].to_string().replace("null", "-")
            );
            if let Some(err) = r["firstError"].as_str() {
                println!("      ({} failed starts; first: {err})", r["errors"]);
            }
        }
        println!(
            "    load average before {}, after {}",
            out["loadAverageBefore"], out["loadAverageAfter"]
        );
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }
}
