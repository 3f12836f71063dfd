//! `devstack`: run the pipeline locally.
//!
//! ```text
//! devstack demo [--patients N] [--unwell N] [--rounds N] [--seed N] [--schedule-interval D]
//! devstack up   [--port N] [--schedule-interval D]
//! devstack bench read [--patients N] [--alerts N] [--requests N] [--json]
//! devstack bench load [--rate R] [--duration S] [--patients N] [--unwell F] [--batch B]
//!                     [--latency-ms MS] [--wait S] [--json]
//! devstack bench shard [--latency-ms MS] [--batches N] [--batch RECORDS] [--patients N] [--json]
//! devstack bench coldstart [--starts N] [--json]
//! devstack bench latency [--spot N] [--rate R] [--spot-wait S] [--wearables N]
//!                        [--interval S] [--wearable-wait S] [--json]
//! ```
//! All honour `AWS_ENDPOINT_URL` (alias `DEVSTACK_ENDPOINT`: use a running emulator such as LocalStack instead of
//! starting moto). `--schedule-interval` (default: `DEVSTACK_SCHEDULE_INTERVAL`, else 5s)
//! is how often every schedule of the template fires locally, e.g. `500ms`, `2s`, `1m`, or
//! `template` for the template's own rates.

mod bench;
mod demo;
mod emergency_scenes;
mod simulator;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use devstack::{Stack, StackConfig, TokenSpec, auth};

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `--name value` pairs after the subcommand.
fn flags(args: &[String]) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let Some(name) = flag.strip_prefix("--") else {
            bail!("unexpected argument {flag:?}");
        };
        let value = it
            .next()
            .with_context(|| format!("--{name} needs a value"))?;
        out.push((name.to_string(), value.clone()));
    }
    Ok(out)
}

fn number<T: std::str::FromStr>(name: &str, value: &str) -> Result<T> {
    value
        .parse()
        .map_err(|_| anyhow::anyhow!("--{name} expects a number, got {value:?}"))
}

/// `--schedule-interval`: `template` = the template's rates, else e.g. `500ms`, `2s`, `1m`.
fn interval(name: &str, value: &str) -> Result<Option<Duration>> {
    devstack::stack::parse_schedule_interval(value).with_context(|| format!("--{name}"))
}

async fn run() -> Result<bool> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(command) = args.first() else {
        bail!("usage: devstack demo|up|bench|archive [--flags]; see devstack/src/main.rs");
    };
    let root = workspace_root();
    // An invalid DEVSTACK_SCHEDULE_INTERVAL is an error here (for_workspace only logs it).
    devstack::stack::schedule_interval_from_env()?;
    let mut config = StackConfig::for_workspace(&root);
    config.function_log_dir = Some(root.join(".local/logs"));
    // The archive fills locally in demo and up (docs/archive.md; not in bench, below);
    // DEVSTACK_ARCHIVE=off turns it off.
    config.archive =
        devstack::archive::ArchiveConfig::from_env_or(devstack::archive::ArchiveConfig::on())?;
    match command.as_str() {
        "demo" => {
            let mut options = demo::Options {
                patients: 12,
                abnormal: 4,
                rounds: 6,
                seed: 7,
            };
            for (name, value) in flags(&args[1..])? {
                match name.as_str() {
                    "patients" => options.patients = number(&name, &value)?,
                    "unwell" => options.abnormal = number(&name, &value)?,
                    "rounds" => options.rounds = number(&name, &value)?,
                    "seed" => options.seed = number(&name, &value)?,
                    "schedule-interval" => config.schedule_interval = interval(&name, &value)?,
                    _ => bail!("unknown flag --{name} for demo"),
                }
            }
            demo::run(config, options).await
        }
        "up" => {
            // Function logs go to the terminal while the stack is up.
            config.function_log_dir = None;
            for (name, value) in flags(&args[1..])? {
                match name.as_str() {
                    "port" => config.http_port = number(&name, &value)?,
                    "schedule-interval" => config.schedule_interval = interval(&name, &value)?,
                    _ => bail!("unknown flag --{name} for up"),
                }
            }
            let stack = Stack::start(config).await?;
            // Through the onboarding API (POST /import), as an operator would.
            simulator::onboard(&stack, &simulator::patients(12, 4)).await?;
            println!(
                "local stack up; directory seeded with patients p-001..p-012, workers w-01..w-04, supervisor s-01, devices {} and {}",
                auth::DEMO_KIOSK,
                auth::DEMO_WEARABLE
            );
            println!("  HTTP API  {}  (POST /readings)", stack.api_url());
            if let Some(url) = stack.dashboard_url() {
                println!(
                    "  dashboard {url}  (sign in with the LOCAL-ONLY form: health worker w-01..w-04, supervisor s-01, operator op-1)"
                );
            }
            print_tokens(&stack)?;
            println!(
                "  emulator  {}  (AWS_ENDPOINT_URL for the aws CLI)",
                stack.endpoint_url()
            );
            if let Some(bucket) = stack.archive().and_then(|a| a.bucket()) {
                println!("  archive   s3://{bucket}/  (readings/, events/; docs/archive.md)");
            }
            for (function, event, period) in stack.schedules() {
                match period {
                    Some(period) => {
                        println!("  schedule  {function} ({event}) every {period:?}")
                    }
                    None => println!("  schedule  {function} ({event}) disabled"),
                }
            }
            println!("Ctrl-C to stop");
            tokio::signal::ctrl_c()
                .await
                .context("waiting for Ctrl-C")?;
            let _ = stack.wait_idle(Duration::from_secs(1)).await;
            stack.shutdown().await?;
            Ok(true)
        }
        "bench" if args.get(1).map(String::as_str) == Some("read") => {
            // Query API latency (issue 14); not part of `./dev test`. Latency, not
            // throttling, is measured: the default route limits are lifted.
            let options = bench::read::Options::parse(&args[1..])?;
            for name in ["DefaultThrottleBurst", "DefaultThrottleRate"] {
                config
                    .parameter_overrides
                    .insert(name.to_string(), "100000".to_string());
            }
            // No detection sweep in the request log.
            config.schedule_interval = Some(Duration::from_secs(3600));
            let logs = config.bin_dir.with_file_name("bench-logs");
            let _ = std::fs::remove_dir_all(&logs);
            config.function_log_dir = Some(logs);
            bench::read::run(config, options).await
        }
        // Issue 15 (bench): load test, detect's per-shard throughput; not part of ./dev test.
        "bench" if args.get(1).map(String::as_str) == Some("coldstart") => {
            config.archive = devstack::archive::ArchiveConfig::off();
            config.schedule_interval = Some(Duration::from_secs(3600));
            let logs = config.bin_dir.with_file_name("bench-logs");
            config.function_log_dir = Some(logs);
            bench::coldstart::run(config, bench::coldstart::Options::parse(&args[1..])?).await
        }
        "bench" if matches!(args.get(1).map(String::as_str), Some("load" | "shard")) => {
            readings_bench_stack(&mut config)?;
            // The template's own schedule rates (the sweep every minute), as on AWS.
            config.schedule_interval = None;
            if args[1] == "load" {
                bench::load::run(config, bench::load::Options::parse(&args[1..])?).await
            } else {
                bench::shard::run(config, bench::shard::Options::parse(&args[1..])?).await
            }
        }
        "bench" => {
            // End-to-end alert latency (issue 10); not part of `./dev test`. Logs go under
            // target/ so a run leaves nothing in .local/.
            let options = bench::Options::parse(&args[1..])?;
            readings_bench_stack(&mut config)?;
            bench::run(config, options).await
        }
        "archive" => {
            // Copies a running stack's archive (./dev up prints the emulator and the bucket)
            // to a folder, for scripts/archive-query.py (docs/archive.md).
            let (mut endpoint, mut bucket, mut dir) = (None, None, None);
            for (name, value) in flags(&args[1..])? {
                match name.as_str() {
                    "endpoint" => endpoint = Some(value),
                    "bucket" => bucket = Some(value),
                    "dir" => dir = Some(value),
                    _ => bail!("unknown flag --{name} for archive"),
                }
            }
            let (Some(endpoint), Some(dir)) = (endpoint, dir) else {
                bail!("usage: devstack archive --endpoint URL --dir DIR [--bucket NAME]");
            };
            let bucket = bucket.unwrap_or_else(|| "vitals-local-archivebucket".to_string());
            let files = devstack::s3::S3::new(&endpoint)
                .download(&bucket, "", std::path::Path::new(&dir))
                .await?;
            println!("{} objects of s3://{bucket}/ copied to {dir}", files.len());
            Ok(true)
        }
        other => bail!("unknown command {other:?}; expected demo, up, bench or archive"),
    }
}

/// The stack of a bench that posts readings: no archive (its stream readers would load the
/// emulator being measured), the readings route's throttling lifted (latency and load are
/// measured, not throttling), function logs in target/bench-logs (a run leaves nothing in
/// .local/).
fn readings_bench_stack(config: &mut StackConfig) -> Result<()> {
    config.archive =
        devstack::archive::ArchiveConfig::from_env_or(devstack::archive::ArchiveConfig::off())?;
    for name in ["ReadingsThrottleBurst", "ReadingsThrottleRate"] {
        config
            .parameter_overrides
            .insert(name.to_string(), "100000".to_string());
    }
    let logs = config.bin_dir.with_file_name("bench-logs");
    let _ = std::fs::remove_dir_all(&logs);
    config.function_log_dir = Some(logs);
    Ok(())
}

/// Ready-made tokens of the local issuer (valid 12 h) and a curl example.
fn print_tokens(stack: &Stack) -> Result<()> {
    const LIFETIME: i64 = 12 * 3600;
    let tokens = [
        ("health worker w-01", TokenSpec::health_worker("w-01")),
        ("supervisor s-01", TokenSpec::supervisor("s-01")),
        ("operator op-1", TokenSpec::operator("op-1")),
        ("kiosk (Kisumu)", TokenSpec::device(auth::DEMO_KIOSK)),
        ("wearable (p-001)", TokenSpec::device(auth::DEMO_WEARABLE)),
    ];
    println!(
        "  tokens    issuer {}, JWKS {}{} (valid 12 h)",
        stack.token_issuer().issuer(),
        stack.api_url(),
        devstack::http_api::JWKS_PATH
    );
    let mut operator = String::new();
    for (who, spec) in tokens {
        let token = stack.issue_token(&spec.with_lifetime_seconds(LIFETIME))?;
        println!("    {who}:\n      {token}");
        if who.starts_with("operator") {
            operator = token;
        }
    }
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    println!("  try:");
    println!(
        "    curl -i -X POST {}/readings -H 'Authorization: Bearer {operator}' -H 'content-type: application/json' -d '[{{\"patientId\":\"p-001\",\"deviceId\":\"{}\",\"type\":\"heart_rate\",\"value\":72,\"unit\":\"bpm\",\"timestamp\":\"{now}\"}}]'",
        stack.api_url(),
        auth::DEMO_WEARABLE
    );
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DEVSTACK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("devstack: {err:#}");
            ExitCode::FAILURE
        }
    }
}
