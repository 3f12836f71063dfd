//! `devstack bench latency`: end-to-end alert latency on the local stack (issue 10).
//!
//! Starts its own stack (moto, every function, from infra/template.yaml), seeds a directory,
//! then runs two scenarios one after the other:
//!
//! - **spot checks**: single SpO2 readings of 85 % (rule `spo2-low`), one per patient, one
//!   per request, at a steady rate, then silence;
//! - **continuous wearable**: each patient's device sends heart rate 112 bpm every few
//!   seconds, one reading per request; the 3rd completes `hr-high-3`. The device then keeps
//!   sending normal values (80 bpm) until that alert is stored or the wait runs out.
//!
//! Latency = when the `AlertRaised` event was stored minus when the POST that completed its
//! condition returned 202. The store time is the `ApproximateCreationDateTime` of the event's
//! INSERT record in the events table's DynamoDB stream, which moto sets from the machine's
//! clock when it writes the item (the bench reads the stream itself; its polling delay is not
//! counted). The envelope `timestamp` of the alert (the start of the detect invocation that
//! raised it) is reported too. Alerts not stored within the wait are misses.
//!
//! Not part of `./dev test`: run it with `./dev bench latency [flags]`.
//!
//! - this module: the flags and the run (stack, seeding, the two scenarios in turn);
//! - `workload`: the readings posted (spot checks, wearables);
//! - `alerts`: the alerts seen in the events table's stream;
//! - `measure`: latencies, misses and detect's invocations per scenario;
//! - `report`: the results, as a table or JSON.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use devstack::{Stack, StackConfig, inspect};

use crate::simulator;

mod alerts;
// Issue 15 (bench): cold start, the load test and detect's per-shard throughput.
pub mod coldstart;
pub mod load;
mod measure;
pub mod read;
mod report;
pub mod shard;
mod workload;

use alerts::{Alerts, watch_alerts};
use measure::{DetectRuns, Outcome};
use workload::{spot_checks, wearables};

const SPOT_RULE: &str = "spo2-low";
const WEARABLE_RULE: &str = "hr-high-3";

/// `devstack bench latency`: end-to-end alert latency (spot checks and wearables).
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Spot-check patients (one reading each).
    #[arg(long, default_value_t = Options::default().spot)]
    pub spot: usize,
    /// Spot-check readings posted per second.
    #[arg(long, default_value_t = Options::default().rate)]
    pub rate: f64,
    /// How long to wait for spot-check alerts after the last POST, seconds.
    #[arg(long, default_value_t = Options::default().spot_wait)]
    pub spot_wait: u64,
    /// Wearable patients.
    #[arg(long, default_value_t = Options::default().wearables)]
    pub wearables: usize,
    /// Seconds between two readings of one wearable.
    #[arg(long, default_value_t = Options::default().interval)]
    pub interval: f64,
    /// How long to wait for a wearable's alert after its 3rd reading, seconds.
    #[arg(long, default_value_t = Options::default().wearable_wait)]
    pub wearable_wait: u64,
    /// Print the results as one JSON object.
    #[arg(long)]
    pub json: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            spot: 200,
            rate: 10.0,
            spot_wait: 120,
            wearables: 50,
            interval: 5.0,
            wearable_wait: 150,
            json: false,
        }
    }
}

impl Options {
    /// Checks the values clap parsed.
    pub fn validate(self) -> Result<Options> {
        let options = self;
        if !(options.rate > 0.0 && options.rate.is_finite()) {
            bail!("--rate must be above 0");
        }
        if !(options.interval > 0.0 && options.interval.is_finite()) {
            bail!("--interval must be above 0");
        }
        if options.spot + options.wearables > 999 {
            bail!("--spot + --wearables must be at most 999 (patient ids p-001..p-999)");
        }
        Ok(options)
    }

    fn as_flags(&self) -> String {
        format!(
            "--spot {} --rate {} --spot-wait {} --wearables {} --interval {} --wearable-wait {}{}",
            self.spot,
            self.rate,
            self.spot_wait,
            self.wearables,
            self.interval,
            self.wearable_wait,
            if self.json { " --json" } else { "" }
        )
    }
}

/// Parses `line` (flags only) into a bench's options, as the CLI does (tests).
#[cfg(test)]
pub(crate) fn parse_args<O: clap::Args + clap::FromArgMatches>(line: &str) -> Result<O> {
    let command = O::augment_args(clap::Command::new("bench").no_binary_name(true));
    let matches = command.try_get_matches_from(line.split_whitespace())?;
    Ok(O::from_arg_matches(&matches)?)
}

/// An HTTP client that posts as an operator (who may post readings for any patient,
/// docs/security.md).
pub(crate) fn operator_client(stack: &Stack, timeout: Duration) -> Result<reqwest::Client> {
    let bearer = stack.bearer(&devstack::TokenSpec::operator("op-bench"))?;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(&bearer).context("the bench token")?,
    );
    reqwest::Client::builder()
        .timeout(timeout)
        .default_headers(headers)
        .build()
        .context("building the HTTP client")
}

/// Prints "AWS requests ... per 1,000 readings" of a bench's JSON, then its load averages.
pub(crate) fn print_requests_and_load(title: &str, out: &serde_json::Value) {
    println!("    {title}");
    if let Some(per) = out["awsRequestsPer1000Readings"].as_object() {
        for (name, n) in per {
            println!("      {name:<40} {:>10.1}", n.as_f64().unwrap_or(0.0));
        }
    }
    println!(
        "    load average before {}, after {}",
        out["loadAverageBefore"], out["loadAverageAfter"]
    );
}

fn load_average() -> Option<String> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

/// Runs the benchmark; `Ok(true)` when it ran to the end (misses are results, not failures).
pub async fn run(config: StackConfig, options: Options) -> Result<bool> {
    let command = format!("./dev bench latency {}", options.as_flags());
    let load_before = load_average();
    eprintln!(
        "==> starting the local stack (emulator, provisioning from {})",
        config.template.display()
    );
    let log_dir = config.function_log_dir.clone();
    let stack = Stack::start(config).await?;
    if let Some(dir) = &log_dir {
        eprintln!("    function logs in {}/<Function>.log", dir.display());
    }
    let result = bench(&stack, &options).await;
    stack.shutdown().await?;
    let (spot, wear) = result?;
    let load_after = load_average();

    let load = report::LoadAverage {
        before: load_before.as_deref(),
        after: load_after.as_deref(),
    };
    if options.json {
        report::print_json(&command, load, &spot, &wear)?;
    } else {
        report::print_table(&command, load, &spot, &wear);
    }
    Ok(true)
}

async fn bench(stack: &Stack, options: &Options) -> Result<(Outcome, Outcome)> {
    let everyone = simulator::patients(options.spot + options.wearables, 0);
    let entries: Vec<_> = everyone.iter().map(|p| p.entry.clone()).collect();
    inspect::seed_directory(stack, &entries).await?;
    let (workers, rosters, families) = simulator::emergency_contacts(&everyone);
    inspect::seed_workers(stack, &workers).await?;
    inspect::seed_contacts(stack, &rosters, &families).await?;
    eprintln!(
        "==> seeded the directory: {} patients, {} workers",
        everyone.len(),
        workers.len()
    );
    let ids: Vec<String> = everyone
        .iter()
        .map(|p| p.entry.patient_id.clone())
        .collect();
    let (spot_ids, wearable_ids) = ids.split_at(options.spot);

    let alerts = Alerts::default();
    let watcher = watch_alerts(stack, alerts.clone()).await?;
    let client = operator_client(stack, Duration::from_secs(30))?;
    let api_url = stack.api_url();

    let from = stack.invocations("DetectFunction").len();
    let mut spot = spot_checks(&client, &api_url, spot_ids, options, &alerts).await;
    spot.detect = DetectRuns::since(stack, from);
    // Let what the spot checks started (routing, notifications, emergencies, escalations)
    // finish before the next scenario, so it does not compete with it.
    if let Err(err) = stack.wait_idle(Duration::from_secs(120)).await {
        eprintln!("    (the stack did not settle before the wearables: {err:#})");
    }
    let from = stack.invocations("DetectFunction").len();
    let mut wear = wearables(&client, &api_url, wearable_ids, options, &alerts).await;
    wear.detect = DetectRuns::since(stack, from);
    watcher.abort();
    Ok((spot, wear))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_with_defaults() {
        let parse = |line: &str| parse_args::<Options>(line)?.validate();
        let o = parse("--spot 20 --wearables 5 --json").unwrap();
        assert_eq!((o.spot, o.wearables, o.json), (20, 5, true));
        assert_eq!((o.rate, o.spot_wait, o.wearable_wait), (10.0, 120, 150));
        assert!(parse("--rate 0").is_err());
        assert!(parse("--bogus 1").is_err());
        assert!(parse("throughput").is_err());
        assert!(parse("--spot 900 --wearables 100").is_err());
    }
}
