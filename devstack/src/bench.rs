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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use devstack::{Stack, StackConfig, inspect};
use serde_json::{Value, json};

use crate::simulator;

const SPOT_RULE: &str = "spo2-low";
const WEARABLE_RULE: &str = "hr-high-3";
/// Records per GetRecords of the alert watcher, and its pause after a partial page.
const STREAM_PAGE: usize = 1000;
const STREAM_POLL: Duration = Duration::from_millis(250);

/// What the latency is measured to, as printed with the results.
const LATENCY_DEFINITION: &str = "AlertRaised stored (ApproximateCreationDateTime of its INSERT record in the events table's DynamoDB stream, set by moto on write) minus the moment POST /readings returned 202 for the reading that completed the condition; same machine clock";

#[derive(Debug, Clone)]
pub struct Options {
    /// Spot-check patients (one reading each).
    pub spot: usize,
    /// Spot-check readings posted per second.
    pub rate: f64,
    /// How long to wait for spot-check alerts after the last POST, seconds.
    pub spot_wait: u64,
    /// Wearable patients.
    pub wearables: usize,
    /// Seconds between two readings of one wearable.
    pub interval: f64,
    /// How long to wait for a wearable's alert after its 3rd reading, seconds.
    pub wearable_wait: u64,
    /// Print the results as one JSON object.
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
    /// `latency [--spot N] [--rate R] [--spot-wait S] [--wearables N] [--interval S]
    /// [--wearable-wait S] [--json]` (the arguments after `bench`).
    pub fn parse(args: &[String]) -> Result<Options> {
        let usage = "usage: devstack bench latency [--spot N] [--rate PER_SECOND] [--spot-wait SECONDS] [--wearables N] [--interval SECONDS] [--wearable-wait SECONDS] [--json]";
        match args.first().map(String::as_str) {
            Some("latency") => {}
            _ => bail!("{usage}"),
        }
        let mut options = Options::default();
        let mut it = args[1..].iter();
        while let Some(flag) = it.next() {
            if flag == "--json" {
                options.json = true;
                continue;
            }
            let Some(name) = flag.strip_prefix("--") else {
                bail!("unexpected argument {flag:?}; {usage}");
            };
            let value = it
                .next()
                .with_context(|| format!("--{name} needs a value"))?;
            match name {
                "spot" => options.spot = crate::number(name, value)?,
                "rate" => options.rate = crate::number(name, value)?,
                "spot-wait" => options.spot_wait = crate::number(name, value)?,
                "wearables" => options.wearables = crate::number(name, value)?,
                "interval" => options.interval = crate::number(name, value)?,
                "wearable-wait" => options.wearable_wait = crate::number(name, value)?,
                _ => bail!("unknown flag --{name}; {usage}"),
            }
        }
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

/// An `AlertRaised` seen in the events table's stream.
#[derive(Debug, Clone, Copy)]
struct SeenAlert {
    /// When the emulator stored it (the stream record's ApproximateCreationDateTime).
    stored: DateTime<Utc>,
    /// The envelope's `timestamp`: the start of the detect invocation that raised it.
    raised: DateTime<Utc>,
}

/// The first `AlertRaised` of each (patient, rule), filled by [`watch_alerts`].
#[derive(Debug, Clone, Default)]
struct Alerts(Arc<Mutex<HashMap<(String, String), SeenAlert>>>);

impl Alerts {
    fn get(&self, patient: &str, rule: &str) -> Option<SeenAlert> {
        self.0
            .lock()
            .expect("alerts lock")
            .get(&(patient.to_string(), rule.to_string()))
            .copied()
    }

    fn record(&self, patient: String, rule: String, alert: SeenAlert) {
        self.0
            .lock()
            .expect("alerts lock")
            .entry((patient, rule))
            .or_insert(alert);
    }
}

/// Reads the events table's DynamoDB stream from its start, forever (abort the task to stop),
/// recording every `AlertRaised`.
async fn watch_alerts(stack: &Stack, alerts: Alerts) -> Result<tokio::task::JoinHandle<()>> {
    use aws_sdk_dynamodbstreams::types::ShardIteratorType;

    let table = stack.resource("EventsTable")?.ref_value.clone();
    let dynamodb = aws_sdk_dynamodb::Client::new(stack.sdk_config());
    let stream_arn = dynamodb
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .with_context(|| format!("DescribeTable {table}"))?
        .table
        .and_then(|t| t.latest_stream_arn)
        .with_context(|| format!("table {table} has no stream"))?;
    let streams = aws_sdk_dynamodbstreams::Client::new(stack.sdk_config());
    let shards: Vec<String> = streams
        .describe_stream()
        .stream_arn(&stream_arn)
        .send()
        .await
        .with_context(|| format!("DescribeStream {stream_arn}"))?
        .stream_description
        .map(|d| {
            d.shards()
                .iter()
                .filter_map(|s| s.shard_id().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if shards.is_empty() {
        bail!("stream {stream_arn} has no shard");
    }
    Ok(tokio::spawn(async move {
        // Per shard: the current iterator and the last sequence number read.
        let mut cursors: Vec<(String, Option<String>, Option<String>)> =
            shards.into_iter().map(|s| (s, None, None)).collect();
        loop {
            // Poll again at once only after a full page, so the reader adds little load to
            // the emulator (whose DynamoDB requests are serialised) while alerts are raised.
            let mut full_page = false;
            for (shard, iterator, last) in &mut cursors {
                if iterator.is_none() {
                    let request = streams
                        .get_shard_iterator()
                        .stream_arn(&stream_arn)
                        .shard_id(shard.as_str());
                    let request = match last {
                        Some(sequence) => request
                            .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                            .sequence_number(sequence.as_str()),
                        None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
                    };
                    match request.send().await {
                        Ok(out) => *iterator = out.shard_iterator,
                        Err(err) => {
                            tracing::warn!(%shard, "bench: GetShardIterator failed: {err}");
                            continue;
                        }
                    }
                }
                let Some(current) = iterator.clone() else {
                    continue;
                };
                match streams
                    .get_records()
                    .shard_iterator(current)
                    .limit(STREAM_PAGE as i32)
                    .send()
                    .await
                {
                    Ok(out) => {
                        *iterator = out.next_shard_iterator;
                        let records = out.records.unwrap_or_default();
                        full_page |= records.len() >= STREAM_PAGE;
                        for record in records {
                            let Some(change) = record.dynamodb else {
                                continue;
                            };
                            last.clone_from(&change.sequence_number);
                            let (Some(created), Some(image)) =
                                (change.approximate_creation_date_time, change.new_image)
                            else {
                                continue;
                            };
                            let Ok(Some(event)) = aws_adapters::event_from_stream_image(
                                serde_dynamo::Item::from(image),
                            ) else {
                                continue;
                            };
                            if event.event.event_type != "AlertRaised" {
                                continue;
                            }
                            let data = &event.event.data;
                            let (Some(patient), Some(rule)) =
                                (data["patientId"].as_str(), data["ruleId"].as_str())
                            else {
                                continue;
                            };
                            let Some(stored) =
                                DateTime::from_timestamp(created.secs(), created.subsec_nanos())
                            else {
                                continue;
                            };
                            alerts.record(
                                patient.to_string(),
                                rule.to_string(),
                                SeenAlert {
                                    stored,
                                    raised: event.event.timestamp,
                                },
                            );
                        }
                    }
                    Err(err) => {
                        tracing::warn!(%shard, "bench: GetRecords failed: {err}");
                        *iterator = None;
                    }
                }
            }
            if !full_page {
                tokio::time::sleep(STREAM_POLL).await;
            }
        }
    }))
}

/// Posts one reading; returns when the API answered 202, or why not.
async fn post_reading(
    client: &reqwest::Client,
    api_url: &str,
    reading: &Value,
    correlation_id: &str,
) -> Result<DateTime<Utc>> {
    let response = client
        .post(format!("{api_url}/readings"))
        .header("x-correlation-id", correlation_id)
        .json(reading)
        .send()
        .await
        .context("POST /readings")?;
    let answered = Utc::now();
    let status = response.status();
    if status.as_u16() != 202 {
        let body = response.text().await.unwrap_or_default();
        bail!("POST /readings answered {status}: {body}");
    }
    Ok(answered)
}

fn reading(patient: &str, vital: &str, value: f64, unit: &str, device: &str) -> Value {
    json!({
        "patientId": patient,
        "type": vital,
        "value": value,
        "unit": unit,
        "timestamp": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        "deviceId": device,
    })
}

/// The outcome of one scenario.
#[derive(Debug, Default)]
struct Outcome {
    name: &'static str,
    rule: &'static str,
    /// Patients in the scenario.
    count: usize,
    /// Requests posted (202).
    requests: usize,
    /// Patients whose alerting reading(s) could not be posted (not counted as misses).
    post_failures: Vec<String>,
    /// Stored minus 202, ms, per alerted patient.
    stored_ms: Vec<f64>,
    /// Envelope timestamp (detect invocation start) minus 202, ms.
    raised_ms: Vec<f64>,
    /// Patients posted but not alerted within the wait.
    misses: Vec<String>,
    wait_seconds: u64,
    elapsed_seconds: f64,
    /// detect's invocations during the scenario.
    detect: DetectRuns,
}

/// detect's invocations in a span of the run (from the local runner's journal).
#[derive(Debug, Default, Clone, Copy)]
struct DetectRuns {
    invocations: usize,
    /// Errors and timeouts (the batch is then retried).
    failed: usize,
    mean_ms: f64,
    max_ms: f64,
}

impl DetectRuns {
    /// detect's invocations after the first `from`.
    fn since(stack: &Stack, from: usize) -> DetectRuns {
        let records = stack.invocations("DetectFunction");
        let span = records.get(from..).unwrap_or_default();
        let ms: Vec<f64> = span
            .iter()
            .map(|r| r.duration.as_secs_f64() * 1000.0)
            .collect();
        DetectRuns {
            invocations: span.len(),
            failed: span
                .iter()
                .filter(|r| !matches!(r.outcome, devstack::InvokeOutcome::Ok(_)))
                .count(),
            mean_ms: if ms.is_empty() {
                0.0
            } else {
                ms.iter().sum::<f64>() / ms.len() as f64
            },
            max_ms: ms.iter().copied().fold(0.0, f64::max),
        }
    }

    fn json(self) -> Value {
        json!({
            "invocations": self.invocations,
            "failed": self.failed,
            "meanMs": self.mean_ms.round(),
            "maxMs": self.max_ms.round(),
        })
    }
}

impl Outcome {
    /// Records a patient's result: the latency of its alert, or a miss when there is none
    /// or it was stored after the wait (the same bound for every patient).
    fn add(&mut self, patient: String, posted: DateTime<Utc>, alert: Option<SeenAlert>) {
        let wait_ms = self.wait_seconds as f64 * 1000.0;
        match alert {
            Some(alert) if millis(alert.stored, posted) <= wait_ms => {
                self.stored_ms.push(millis(alert.stored, posted));
                self.raised_ms.push(millis(alert.raised, posted));
            }
            _ => self.misses.push(patient),
        }
    }
}

fn millis(later: DateTime<Utc>, earlier: DateTime<Utc>) -> f64 {
    (later - earlier)
        .num_microseconds()
        .map(|us| us as f64 / 1000.0)
        .unwrap_or(f64::NAN)
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[derive(Debug, Clone, Copy)]
struct Stats {
    p50: Option<f64>,
    p99: Option<f64>,
    max: Option<f64>,
}

fn stats(values: &[f64]) -> Stats {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    Stats {
        p50: percentile(&sorted, 50.0),
        p99: percentile(&sorted, 99.0),
        max: sorted.last().copied(),
    }
}

impl Stats {
    fn json(self) -> Value {
        let round = |v: Option<f64>| v.map(|v| (v * 10.0).round() / 10.0);
        json!({"p50": round(self.p50), "p99": round(self.p99), "max": round(self.max)})
    }
}

/// Prints progress to stderr every 10 s while waiting for `pending` alerts.
async fn wait_for_alerts(
    label: &str,
    alerts: &Alerts,
    pending: &[(String, &'static str)],
    deadline: tokio::time::Instant,
) {
    let mut last_report = tokio::time::Instant::now();
    loop {
        let missing = pending
            .iter()
            .filter(|(p, r)| alerts.get(p, r).is_none())
            .count();
        if missing == 0 || tokio::time::Instant::now() >= deadline {
            return;
        }
        if last_report.elapsed() >= Duration::from_secs(10) {
            eprintln!(
                "    {label}: {}/{} alerts stored, waiting up to {:.0} s more",
                pending.len() - missing,
                pending.len(),
                deadline
                    .saturating_duration_since(tokio::time::Instant::now())
                    .as_secs_f64()
            );
            last_report = tokio::time::Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn spot_checks(
    client: &reqwest::Client,
    api_url: &str,
    patients: &[String],
    options: &Options,
    alerts: &Alerts,
) -> Outcome {
    let started = tokio::time::Instant::now();
    eprintln!(
        "==> spot checks: {} patients, one spo2 85 % reading each, {}/s",
        patients.len(),
        options.rate
    );
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / options.rate));
    let mut posts = Vec::new();
    for (i, patient) in patients.iter().enumerate() {
        ticker.tick().await;
        let (client, api_url, patient) = (client.clone(), api_url.to_string(), patient.clone());
        let device = format!("kiosk-{}", i % 4 + 1);
        posts.push(tokio::spawn(async move {
            let body = reading(&patient, "spo2", 85.0, "%", &device);
            let answered =
                post_reading(&client, &api_url, &body, &format!("bench-spot-{patient}")).await;
            (patient, answered)
        }));
    }
    let mut posted = Vec::new();
    let mut outcome = Outcome {
        name: "spot checks",
        rule: SPOT_RULE,
        count: patients.len(),
        wait_seconds: options.spot_wait,
        ..Outcome::default()
    };
    for post in posts {
        match post.await {
            Ok((patient, Ok(at))) => posted.push((patient, at)),
            Ok((patient, Err(err))) => {
                eprintln!("    spot check of {patient} not posted: {err:#}");
                outcome.post_failures.push(patient);
            }
            Err(err) => eprintln!("    a spot-check task failed: {err}"),
        }
    }
    outcome.requests = posted.len();
    eprintln!(
        "    {} readings posted in {:.1} s; waiting up to {} s for their alerts",
        posted.len(),
        started.elapsed().as_secs_f64(),
        options.spot_wait
    );
    let pending: Vec<(String, &'static str)> =
        posted.iter().map(|(p, _)| (p.clone(), SPOT_RULE)).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(options.spot_wait);
    wait_for_alerts("spot checks", alerts, &pending, deadline).await;
    for (patient, at) in posted {
        let alert = alerts.get(&patient, SPOT_RULE);
        outcome.add(patient, at, alert);
    }
    outcome.elapsed_seconds = started.elapsed().as_secs_f64();
    outcome
}

/// One simulated wearable (see [`wearable`]).
struct Wearable {
    client: reqwest::Client,
    api_url: String,
    patient: String,
    device: String,
    start_delay: Duration,
    interval: Duration,
    wait: Duration,
    alerts: Alerts,
}

/// One wearable: 3 readings of 112 bpm, then 80 bpm, one every `interval`, until the alert
/// is stored or `wait` has passed since the 3rd reading's 202. Returns the 3rd reading's
/// 202 time (or why it was not posted) and the number of requests posted.
async fn wearable(w: Wearable) -> (Result<DateTime<Utc>>, usize) {
    let Wearable {
        client,
        api_url,
        patient,
        device,
        start_delay,
        interval,
        wait,
        alerts,
    } = w;
    tokio::time::sleep(start_delay).await;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut third: Option<(DateTime<Utc>, tokio::time::Instant)> = None;
    let mut requests = 0;
    for k in 0usize.. {
        ticker.tick().await;
        if let Some((_, third_at)) = third
            && (alerts.get(&patient, WEARABLE_RULE).is_some() || third_at.elapsed() >= wait)
        {
            break;
        }
        let value = if k < 3 { 112.0 } else { 80.0 };
        let body = reading(&patient, "heart_rate", value, "bpm", &device);
        let correlation = format!("bench-wearable-{patient}-{}", k + 1);
        match post_reading(&client, &api_url, &body, &correlation).await {
            Ok(at) => {
                requests += 1;
                if k == 2 {
                    third = Some((at, tokio::time::Instant::now()));
                }
            }
            Err(err) if k < 3 => return (Err(err.context(format!("reading {}", k + 1))), requests),
            Err(err) => eprintln!("    {patient}: reading {} not posted: {err:#}", k + 1),
        }
    }
    (
        third.map(|(at, _)| at).context("3rd reading not posted"),
        requests,
    )
}

async fn wearables(
    client: &reqwest::Client,
    api_url: &str,
    patients: &[String],
    options: &Options,
    alerts: &Alerts,
) -> Outcome {
    let started = tokio::time::Instant::now();
    eprintln!(
        "==> continuous wearables: {} patients, heart_rate 112 bpm every {} s (3 readings, then 80 bpm until the alert or {} s)",
        patients.len(),
        options.interval,
        options.wearable_wait
    );
    let interval = Duration::from_secs_f64(options.interval);
    let stagger = interval / u32::try_from(patients.len().max(1)).unwrap_or(u32::MAX);
    let tasks: Vec<_> = patients
        .iter()
        .enumerate()
        .map(|(i, patient)| {
            tokio::spawn(wearable(Wearable {
                client: client.clone(),
                api_url: api_url.to_string(),
                patient: patient.clone(),
                device: format!("wearable-{}", i + 1),
                start_delay: stagger * u32::try_from(i).unwrap_or(u32::MAX),
                interval,
                wait: Duration::from_secs(options.wearable_wait),
                alerts: alerts.clone(),
            }))
        })
        .collect();
    let mut outcome = Outcome {
        name: "continuous wearable",
        rule: WEARABLE_RULE,
        count: patients.len(),
        wait_seconds: options.wearable_wait,
        ..Outcome::default()
    };
    let mut progress = tokio::time::interval(Duration::from_secs(10));
    progress.tick().await;
    let all = futures_join(tasks);
    tokio::pin!(all);
    let results = loop {
        tokio::select! {
            results = &mut all => break results,
            _ = progress.tick() => {
                let stored = patients.iter().filter(|p| alerts.get(p, WEARABLE_RULE).is_some()).count();
                eprintln!("    wearables: {stored}/{} alerts stored after {:.0} s", patients.len(), started.elapsed().as_secs_f64());
            }
        }
    };
    for (patient, result) in patients.iter().zip(results) {
        let Ok((third, requests)) = result else {
            eprintln!("    wearable task of {patient} failed");
            outcome.post_failures.push(patient.clone());
            continue;
        };
        outcome.requests += requests;
        match third {
            Ok(at) => outcome.add(patient.clone(), at, alerts.get(patient, WEARABLE_RULE)),
            Err(err) => {
                eprintln!("    wearable {patient} not posted: {err:#}");
                outcome.post_failures.push(patient.clone());
            }
        }
    }
    outcome.elapsed_seconds = started.elapsed().as_secs_f64();
    outcome
}

/// Awaits every task, in order.
async fn futures_join<T>(
    tasks: Vec<tokio::task::JoinHandle<T>>,
) -> Vec<Result<T, tokio::task::JoinError>> {
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        out.push(task.await);
    }
    out
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

    if options.json {
        let scenario = |o: &Outcome| {
            json!({
                "name": o.name,
                "rule": o.rule,
                "count": o.count,
                "requests": o.requests,
                "postFailures": o.post_failures.len(),
                "alerted": o.stored_ms.len(),
                "misses": o.misses.len(),
                "missedPatients": o.misses,
                "waitSeconds": o.wait_seconds,
                "elapsedSeconds": (o.elapsed_seconds * 10.0).round() / 10.0,
                "latencyMs": stats(&o.stored_ms).json(),
                "detectStartMs": stats(&o.raised_ms).json(),
                "detectInvocations": o.detect.json(),
            })
        };
        let out = json!({
            "benchmark": "end-to-end alert latency (issue 10)",
            "command": command,
            "latency": LATENCY_DEFINITION,
            "detectStart": "the alert envelope's timestamp (start of the detect invocation that raised it) minus the same 202",
            "loadAverageBefore": load_before,
            "loadAverageAfter": load_after,
            "scenarios": [scenario(&spot), scenario(&wear)],
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(true);
    }

    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.0}"));
    println!();
    println!("==> end-to-end alert latency (issue 10)");
    println!("    command   {command}");
    println!("    latency   {LATENCY_DEFINITION}");
    println!(
        "    load avg  before {}, after {}",
        load_before.as_deref().unwrap_or("?"),
        load_after.as_deref().unwrap_or("?")
    );
    println!();
    println!(
        "    {:<20} {:<10} {:>5} {:>7} {:>6} {:>9} {:>9} {:>9}   {:>24}",
        "scenario",
        "rule",
        "count",
        "alerted",
        "misses",
        "p50 ms",
        "p99 ms",
        "max ms",
        "detect start p50/p99 ms"
    );
    for o in [&spot, &wear] {
        let stored = stats(&o.stored_ms);
        let raised = stats(&o.raised_ms);
        println!(
            "    {:<20} {:<10} {:>5} {:>7} {:>6} {:>9} {:>9} {:>9}   {:>24}",
            o.name,
            o.rule,
            o.count,
            o.stored_ms.len(),
            o.misses.len(),
            ms(stored.p50),
            ms(stored.p99),
            ms(stored.max),
            format!("{} / {}", ms(raised.p50), ms(raised.p99)),
        );
    }
    println!();
    for o in [&spot, &wear] {
        println!(
            "    {}: {} requests, {:.0} s; detect {} invocations ({} failed or timed out), mean {:.0} ms, max {:.0} ms; misses = no alert within {} s of the 202{}",
            o.name,
            o.requests,
            o.elapsed_seconds,
            o.detect.invocations,
            o.detect.failed,
            o.detect.mean_ms,
            o.detect.max_ms,
            o.wait_seconds,
            if o.post_failures.is_empty() {
                String::new()
            } else {
                format!("; NOT POSTED (excluded): {}", o.post_failures.join(", "))
            }
        );
        if !o.misses.is_empty() {
            let shown: Vec<&str> = o.misses.iter().take(10).map(String::as_str).collect();
            println!(
                "      missed: {}{}",
                shown.join(", "),
                if o.misses.len() > shown.len() {
                    format!(" and {} more", o.misses.len() - shown.len())
                } else {
                    String::new()
                }
            );
        }
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
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the HTTP client")?;
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

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<f64> = (1..=200).map(f64::from).collect();
        let s = stats(&values);
        assert_eq!(
            (s.p50, s.p99, s.max),
            (Some(100.0), Some(198.0), Some(200.0))
        );
        let one = stats(&[7.0]);
        assert_eq!(
            (one.p50, one.p99, one.max),
            (Some(7.0), Some(7.0), Some(7.0))
        );
        assert!(stats(&[]).p50.is_none());
    }

    #[test]
    fn flags_parse_with_defaults() {
        let o = Options::parse(&args("latency --spot 20 --wearables 5 --json")).unwrap();
        assert_eq!((o.spot, o.wearables, o.json), (20, 5, true));
        assert_eq!((o.rate, o.spot_wait, o.wearable_wait), (10.0, 120, 150));
        assert!(Options::parse(&args("latency --rate 0")).is_err());
        assert!(Options::parse(&args("latency --bogus 1")).is_err());
        assert!(Options::parse(&args("throughput")).is_err());
        assert!(Options::parse(&args("latency --spot 900 --wearables 100")).is_err());
    }
}
