//! `devstack`: run the pipeline locally. `devstack --help` (or `./dev <command> --help`)
//! lists the commands; every command has its own `--help`.
//!
//! All honour `AWS_ENDPOINT_URL` (alias `DEVSTACK_ENDPOINT`): use a running emulator such
//! as LocalStack instead of starting moto. `--schedule-interval` (default:
//! `DEVSTACK_SCHEDULE_INTERVAL`, else 5s) is how often every schedule of the template fires
//! locally, e.g. `500ms`, `2s`, `1m`, or `template` for the template's own rates.

mod bench;
mod demo;
mod emergency_scenes;
mod simulator;
mod up;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use devstack::StackConfig;

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Runs the health-alerting pipeline locally: an AWS-API emulator provisioned from
/// infra/template.yaml, the real function binaries behind a local Lambda, the event
/// sources, schedules and the HTTP API.
#[derive(Debug, Parser)]
#[command(name = "devstack", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole pipeline with simulated patients, print a summary and stop.
    Demo(DemoArgs),
    /// Start the local stack and keep it running; prints ready-to-paste exports.
    Up(up::UpArgs),
    /// Print the hops of one alert (every invocation that handled a correlation id), from
    /// the POST to the SMS, asking a running `devstack up`.
    Trace(up::TraceArgs),
    /// Replay the shard ranges of DetectFailureQueue's messages through detect, on a
    /// running `devstack up`; a replayed message is deleted.
    Replay(up::ReplayArgs),
    /// Benchmarks (not part of ./dev test; docs/performance.md).
    Bench {
        #[command(subcommand)]
        bench: Bench,
    },
    /// Copy a running stack's archive (S3) to a folder, for scripts/archive-query.py.
    Archive(ArchiveArgs),
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Query API latency with 10,000 patients (issue 14).
    Read(bench::read::Options),
    /// End-to-end alert latency: spot checks and continuous wearables (issue 10).
    Latency(bench::Options),
    /// Load test at a fixed rate with AWS requests counted by a proxy (issue 15).
    Load(bench::load::Options),
    /// Detect's readings/s for one shard, with latency per AWS call (issue 15).
    Shard(bench::shard::Options),
    /// Each function's init against a hello-world lambda_runtime binary (issue 15).
    Coldstart(bench::coldstart::Options),
}

#[derive(Debug, clap::Args)]
struct DemoArgs {
    /// Simulated patients.
    #[arg(long, default_value_t = 12)]
    patients: usize,
    /// How many of them are unwell.
    #[arg(long = "unwell", default_value_t = 4)]
    abnormal: usize,
    /// Rounds of readings.
    #[arg(long, default_value_t = 6)]
    rounds: usize,
    /// Seed of the simulation.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// How often the template's schedules fire (`500ms`, `2s`, `1m`, `template`).
    #[arg(long)]
    schedule_interval: Option<String>,
}

#[derive(Debug, clap::Args)]
struct ArchiveArgs {
    /// The emulator's URL (`devstack up` prints it).
    #[arg(long)]
    endpoint: String,
    /// The folder to copy to.
    #[arg(long)]
    dir: PathBuf,
    /// The archive bucket.
    #[arg(long, default_value = "vitals-local-archivebucket")]
    bucket: String,
}

/// `--schedule-interval`: `template` = the template's rates, else e.g. `500ms`, `2s`, `1m`.
fn interval(value: &str) -> Result<Option<Duration>> {
    devstack::stack::parse_schedule_interval(value).context("--schedule-interval")
}

async fn run(cli: Cli) -> Result<bool> {
    let root = workspace_root();
    // An invalid DEVSTACK_SCHEDULE_INTERVAL is an error here (for_workspace only logs it).
    devstack::stack::schedule_interval_from_env()?;
    let mut config = StackConfig::for_workspace(&root);
    config.function_log_dir = Some(root.join(".local/logs"));
    // The archive fills locally in demo and up (docs/archive.md; not in bench, below);
    // DEVSTACK_ARCHIVE=off turns it off.
    config.archive =
        devstack::archive::ArchiveConfig::from_env_or(devstack::archive::ArchiveConfig::on())?;
    match cli.command {
        Command::Demo(args) => {
            if let Some(value) = &args.schedule_interval {
                config.schedule_interval = interval(value)?;
            }
            let options = demo::Options {
                patients: args.patients,
                abnormal: args.abnormal,
                rounds: args.rounds,
                seed: args.seed,
            };
            demo::run(config, options).await
        }
        Command::Up(args) => {
            if let Some(value) = &args.schedule_interval {
                config.schedule_interval = interval(value)?;
            }
            up::run(config, &root, args).await
        }
        Command::Trace(args) => up::trace(&root, args).await,
        Command::Replay(args) => up::replay(&root, args).await,
        Command::Bench { bench } => run_bench(config, bench).await,
        Command::Archive(args) => {
            // Copies a running stack's archive (./dev up prints the emulator and the bucket)
            // to a folder, for scripts/archive-query.py (docs/archive.md).
            let files = devstack::s3::S3::new(&args.endpoint)
                .download(&args.bucket, "", &args.dir)
                .await?;
            println!(
                "{} objects of s3://{}/ copied to {}",
                files.len(),
                args.bucket,
                args.dir.display()
            );
            Ok(true)
        }
    }
}

async fn run_bench(mut config: StackConfig, bench: Bench) -> Result<bool> {
    match bench {
        Bench::Read(options) => {
            // Query API latency (issue 14). Latency, not throttling, is measured: the
            // default route limits are lifted.
            let options = options.validate()?;
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
        Bench::Coldstart(options) => {
            let options = options.validate()?;
            config.archive = devstack::archive::ArchiveConfig::off();
            config.schedule_interval = Some(Duration::from_secs(3600));
            let logs = config.bin_dir.with_file_name("bench-logs");
            config.function_log_dir = Some(logs);
            bench::coldstart::run(config, options).await
        }
        Bench::Load(options) => {
            let options = options.validate()?;
            readings_bench_stack(&mut config)?;
            // The template's own schedule rates (the sweep every minute), as on AWS.
            config.schedule_interval = None;
            bench::load::run(config, options).await
        }
        Bench::Shard(options) => {
            let options = options.validate()?;
            readings_bench_stack(&mut config)?;
            config.schedule_interval = None;
            bench::shard::run(config, options).await
        }
        Bench::Latency(options) => {
            // End-to-end alert latency (issue 10). Logs go under target/ so a run leaves
            // nothing in .local/.
            let options = options.validate()?;
            readings_bench_stack(&mut config)?;
            bench::run(config, options).await
        }
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

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DEVSTACK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("devstack: {err:#}");
            ExitCode::FAILURE
        }
    }
}
