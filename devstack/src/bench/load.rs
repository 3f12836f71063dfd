//! `devstack bench load` (issue 15): drives the local stack at a fixed rate of readings and
//! reports the throughput held, alert latencies (POST -> `AlertRaised` stored, POST ->
//! `NotificationSent` stored), dead-letter counts, and the functions' AWS requests per 1,000
//! readings counted by a proxy in front of the emulator (`devstack::proxy`).
//!
//! Workload: `--patients` patients (default 1,000), `--unwell` of them (default 10 %) unwell.
//! Readings are heart rates, one after another over the patients (reading *i* is patient
//! *i* mod N's), so each patient sends one every N / rate seconds; healthy patients send
//! 60-84 bpm, unwell ones 112 bpm, so each unwell patient's 3rd reading completes
//! `hr-high-3` (a warning: routed and notified). Device pattern `--batch B`: B consecutive
//! readings per `POST /readings` (B patients' readings, as a gateway or kiosk uploads them),
//! requests every B / rate seconds. Latency is measured from the 202 of the request that
//! carried the completing reading.
//!
//! Not part of `./dev test`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use devstack::proxy::{Proxy, per_thousand};
use devstack::template::Template;
use devstack::{Stack, StackConfig, inspect};
use serde_json::{Value, json};

use super::alerts::{Alerts, wait_for_alerts, watch_alerts};
use super::load_average;
use super::measure::{millis, stats};
use crate::simulator;

const RULE: &str = "hr-high-3";
/// Requests in flight at most (the rest wait: the rate is then not held).
const MAX_IN_FLIGHT: usize = 256;

/// `devstack bench load`: drives the local stack at a fixed rate and reports throughput,
/// latencies, DLQs and AWS requests per 1,000 readings (counted by a proxy).
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Readings posted per second.
    #[arg(long, default_value_t = Options::default().rate)]
    pub rate: f64,
    /// Seconds of posting.
    #[arg(long, default_value_t = Options::default().duration)]
    pub duration: f64,
    /// Patients the readings go round.
    #[arg(long, default_value_t = Options::default().patients)]
    pub patients: usize,
    /// Fraction of the patients whose readings are abnormal.
    #[arg(long, default_value_t = Options::default().unwell)]
    pub unwell: f64,
    /// Readings per request (1..=500).
    #[arg(long, default_value_t = Options::default().batch)]
    pub batch: usize,
    /// Latency the counting proxy adds to every AWS call, ms.
    #[arg(long, default_value_t = Options::default().latency_ms)]
    pub latency_ms: u64,
    /// Seconds to wait for the pipeline to drain after the last POST.
    #[arg(long, default_value_t = Options::default().wait)]
    pub wait: u64,
    /// Print the results as one JSON object.
    #[arg(long)]
    pub json: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            rate: 200.0,
            duration: 60.0,
            patients: 1000,
            unwell: 0.1,
            batch: 1,
            latency_ms: 0,
            wait: 180,
            json: false,
        }
    }
}

impl Options {
    /// Checks the values clap parsed.
    pub fn validate(self) -> Result<Options> {
        let o = self;
        if !(o.rate > 0.0 && o.rate.is_finite() && o.duration > 0.0 && o.duration.is_finite()) {
            bail!("--rate and --duration must be above 0");
        }
        if o.patients == 0 || !(0.0..=1.0).contains(&o.unwell) {
            bail!("--patients must be above 0 and --unwell between 0 and 1");
        }
        if o.batch == 0 || o.batch > 500 {
            bail!("--batch must be 1..=500 (ingest's limit per request)");
        }
        Ok(o)
    }

    fn command(&self) -> String {
        format!(
            "./dev bench load --rate {} --duration {} --patients {} --unwell {} --batch {} --latency-ms {} --wait {}{}",
            self.rate,
            self.duration,
            self.patients,
            self.unwell,
            self.batch,
            self.latency_ms,
            self.wait,
            if self.json { " --json" } else { "" }
        )
    }
}

/// Points every function of the template (or only `only`) at the proxy for its AWS calls,
/// each with its own path prefix, so the proxy counts by function as well.
pub(super) fn route_functions_through(
    config: &mut StackConfig,
    proxy: &Proxy,
    only: Option<&str>,
) -> Result<()> {
    let template = Template::load(&config.template)?;
    for resource in &template.resources {
        if resource.resource_type == "AWS::Serverless::Function"
            && only.is_none_or(|id| id == resource.logical_id)
        {
            config
                .function_environment
                .entry(resource.logical_id.clone())
                .or_default()
                .insert(
                    "AWS_ENDPOINT_URL".to_string(),
                    proxy.url_for(&resource.logical_id),
                );
        }
    }
    Ok(())
}

/// Memory (MB) of each function of the template, by logical id (Globals merged).
fn memory_by_function(config: &StackConfig) -> Result<BTreeMap<String, u64>> {
    let template = Template::load(&config.template)?;
    Ok(template
        .resources
        .iter()
        .filter(|r| r.resource_type == "AWS::Serverless::Function")
        .map(|r| {
            let mb = r
                .properties
                .get("MemorySize")
                .and_then(|v| {
                    v.as_u64()
                        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                })
                .unwrap_or(128);
            (r.logical_id.clone(), mb)
        })
        .collect())
}

pub async fn run(mut config: StackConfig, options: Options) -> Result<bool> {
    let load_before = load_average();
    let proxy = Proxy::start(Duration::from_millis(options.latency_ms)).await?;
    route_functions_through(&mut config, &proxy, None)?;
    let memory = memory_by_function(&config)?;
    eprintln!(
        "==> starting the local stack; the functions' AWS calls go through {}",
        proxy.url()
    );
    let stack = Stack::start(config).await?;
    proxy.set_upstream(stack.endpoint_url());
    let result = load(&stack, &proxy, &options, &memory).await;
    stack.shutdown().await?;
    let mut out = result?;
    out["command"] = json!(options.command());
    out["loadAverageBefore"] = json!(load_before);
    out["loadAverageAfter"] = json!(load_average());
    if options.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_table(&out);
    }
    Ok(true)
}

fn reading(patient: &str, bpm: f64, now: DateTime<Utc>) -> Value {
    json!({
        "patientId": patient,
        "type": "heart_rate",
        "value": bpm,
        "unit": "bpm",
        "timestamp": now.to_rfc3339_opts(SecondsFormat::Millis, true),
        "deviceId": format!("band-{patient}"),
    })
}

async fn load(
    stack: &Stack,
    proxy: &Proxy,
    options: &Options,
    memory: &BTreeMap<String, u64>,
) -> Result<Value> {
    let unwell = (options.patients as f64 * options.unwell).round() as usize;
    let everyone = simulator::patients(options.patients, unwell);
    let entries: Vec<_> = everyone.iter().map(|p| p.entry.clone()).collect();
    eprintln!("==> seeding the directory: {} patients", entries.len());
    inspect::seed_directory(stack, &entries).await?;
    let (workers, rosters, families) = simulator::emergency_contacts(&everyone);
    inspect::seed_workers(stack, &workers).await?;
    inspect::seed_contacts(stack, &rosters, &families).await?;
    let ids: Arc<Vec<String>> = Arc::new(
        everyone
            .iter()
            .map(|p| p.entry.patient_id.clone())
            .collect(),
    );

    let alerts = Alerts::default();
    let watcher = watch_alerts(stack, alerts.clone()).await?;
    let client = super::operator_client(stack, Duration::from_secs(60))?;
    let api_url = stack.api_url();

    let _ = stack.wait_idle(Duration::from_secs(30)).await;
    proxy.reset();
    let invocations_before: BTreeMap<String, usize> = memory
        .keys()
        .map(|id| (id.clone(), stack.invocations(id).len()))
        .collect();

    let total = (options.rate * options.duration).round() as usize;
    let requests = total.div_ceil(options.batch);
    eprintln!(
        "==> posting {total} readings in {requests} requests of {} at {}/s for {} s",
        options.batch, options.rate, options.duration
    );
    let mut ticker =
        tokio::time::interval(Duration::from_secs_f64(options.batch as f64 / options.rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let started = Instant::now();
    let mut posts = Vec::with_capacity(requests);
    for k in 0..requests {
        ticker.tick().await;
        let permit = slots
            .clone()
            .acquire_owned()
            .await
            .context("in-flight limit")?;
        let (client, url, ids) = (client.clone(), format!("{api_url}/readings"), ids.clone());
        let first = k * options.batch;
        let last = (first + options.batch).min(total);
        posts.push(tokio::spawn(async move {
            let now = Utc::now();
            let mut completing = Vec::new();
            let body: Vec<Value> = (first..last)
                .map(|i| {
                    let p = i % ids.len();
                    let round = i / ids.len();
                    let sick = p < unwell;
                    if sick && round == 2 {
                        completing.push(ids[p].clone());
                    }
                    let bpm = if sick {
                        112.0
                    } else {
                        60.0 + (i * 7 % 25) as f64
                    };
                    reading(&ids[p], bpm, now)
                })
                .collect();
            let answer = client
                .post(url)
                .header("x-correlation-id", format!("bench-load-{k}"))
                .json(&body)
                .send()
                .await;
            let answered = Utc::now();
            drop(permit);
            let ok = matches!(&answer, Ok(r) if r.status().as_u16() == 202);
            if let Ok(r) = answer
                && r.status().as_u16() != 202
            {
                let status = r.status();
                eprintln!(
                    "    request {k}: {status} {}",
                    r.text().await.unwrap_or_default()
                );
            }
            (ok, last - first, answered, completing)
        }));
    }
    let mut accepted = 0usize;
    let mut failed_requests = 0usize;
    let mut completed_at: Vec<(String, DateTime<Utc>)> = Vec::new();
    for post in posts {
        match post.await {
            Ok((true, n, at, completing)) => {
                accepted += n;
                completed_at.extend(completing.into_iter().map(|p| (p, at)));
            }
            Ok((false, ..)) => failed_requests += 1,
            Err(err) => eprintln!("    a request task failed: {err}"),
        }
    }
    let post_seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "    {accepted} readings accepted in {post_seconds:.1} s ({:.0}/s); {failed_requests} requests failed",
        accepted as f64 / post_seconds
    );
    let pending: Vec<(String, &'static str)> = completed_at
        .iter()
        .map(|(p, _)| (p.clone(), RULE))
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(options.wait);
    wait_for_alerts("load", &alerts, &pending, deadline).await;
    let idle = stack.wait_idle(Duration::from_secs(options.wait)).await;
    let drain_seconds = started.elapsed().as_secs_f64();
    if let Err(err) = &idle {
        eprintln!("    (the stack did not settle: {err:#})");
    }
    // Notifications follow their alerts; give the last ones a moment.
    tokio::time::sleep(Duration::from_secs(2)).await;
    watcher.abort();

    let (mut stored_ms, mut notified_ms, mut misses) = (Vec::new(), Vec::new(), 0usize);
    for (patient, at) in &completed_at {
        match alerts.get(patient, RULE) {
            Some(alert) => {
                stored_ms.push(millis(alert.stored, *at));
                if let Some(sent) = alerts.notified(&alert.alert_id) {
                    notified_ms.push(millis(sent, *at));
                }
            }
            None => misses += 1,
        }
    }

    let counts = proxy.counts();
    let readings = accepted as u64;
    let mut by_service: BTreeMap<String, Value> = BTreeMap::new();
    for ((service, operation), n) in &counts {
        by_service.insert(format!("{service} {operation}"), json!(n));
    }
    let mut tables: BTreeMap<String, Value> = BTreeMap::new();
    for ((table, operation), n) in proxy.table_counts() {
        tables.insert(format!("{table} {operation}"), json!(n));
    }
    let mut functions = serde_json::Map::new();
    for (id, mb) in memory {
        let from = invocations_before.get(id).copied().unwrap_or(0);
        let records = stack.invocations(id);
        let span = records.get(from..).unwrap_or_default();
        let seconds: f64 = span.iter().map(|r| r.duration.as_secs_f64()).sum::<f64>() + 0.0;
        let failed = span
            .iter()
            .filter(|r| !matches!(r.outcome, devstack::InvokeOutcome::Ok(_)))
            .count();
        functions.insert(
            id.clone(),
            json!({
                "invocations": span.len(),
                "failed": failed,
                "seconds": (seconds * 1000.0).round() / 1000.0,
                "memoryMb": mb,
                "gbSeconds": seconds * *mb as f64 / 1024.0,
            }),
        );
    }
    let detailed = proxy.detailed_counts();
    let path = reading_path(&detailed);
    let per = |n: u64| {
        if readings == 0 {
            0.0
        } else {
            n as f64 * 1000.0 / readings as f64
        }
    };
    let by_function: serde_json::Map<String, Value> = detailed
        .iter()
        .map(|((caller, service, operation, table), n)| {
            (
                format!("{caller} {service} {operation} {table}")
                    .trim_end()
                    .to_string(),
                json!(n),
            )
        })
        .collect();
    let dlq = dead_letters(stack).await;
    Ok(json!({
        "benchmark": "load (issue 15)",
        "pattern": {"readingsPerRequest": options.batch, "patients": options.patients, "unwell": unwell},
        "targetRate": options.rate,
        "durationSeconds": options.duration,
        "readingsAccepted": accepted,
        "requestsFailed": failed_requests,
        "postSeconds": (post_seconds * 10.0).round() / 10.0,
        "ingestRateHeld": (accepted as f64 / post_seconds).round(),
        "drainSeconds": (drain_seconds * 10.0).round() / 10.0,
        // Only when the whole stack went idle within the wait (else it is an upper bound).
        "pipelineRateHeld": idle.is_ok().then(|| (accepted as f64 / drain_seconds).round()),
        "settled": idle.is_ok(),
        "latencyMs": {
            "alertRaisedStored": stats(&stored_ms).json(),
            "notificationSentStored": stats(&notified_ms).json(),
            "alertsExpected": completed_at.len(),
            "alertsStored": stored_ms.len(),
            "notified": notified_ms.len(),
            "misses": misses,
        },
        "deadLetters": dlq,
        "injectedLatencyMs": options.latency_ms,
        "awsRequests": by_service,
        "awsRequestsPer1000Readings": per_thousand(&counts, readings),
        "dynamodbRequestsByTable": tables,
        "requestsByFunction": by_function,
        "readingPath": {
            "definition": READING_PATH,
            "dynamodbWrites": path.writes,
            "dynamodbReads": path.reads,
            "dynamodbWritesPer1000Readings": per(path.writes),
            "dynamodbReadsPer1000Readings": per(path.reads),
            "alertPathDynamodbWrites": path.alert_writes,
        },
        "functions": functions,
    }))
}

const READING_PATH: &str = "DynamoDB requests of IngestFunction and DetectFunction, except those naming the events, idempotency or directory tables (the alerts' event appends, publish guards and recipients); alert path = every other DynamoDB write";

/// Tables whose requests by detect serve its alerts (see [`READING_PATH`]).
const ALERT_TABLES: [&str; 3] = ["EventsTable", "IdempotencyTable", "DirectoryTable"];

#[derive(Debug, Default, PartialEq)]
struct ReadingPath {
    writes: u64,
    reads: u64,
    alert_writes: u64,
}

/// Splits the DynamoDB requests counted by function into the reading path and the rest.
fn reading_path(detailed: &BTreeMap<devstack::proxy::Detail, u64>) -> ReadingPath {
    let mut out = ReadingPath::default();
    for ((caller, service, operation, table), n) in detailed {
        if service != "dynamodb" {
            continue;
        }
        let write = devstack::request_log::AwsRequest {
            service: service.clone(),
            operation: operation.clone(),
            table: None,
        }
        .is_write();
        let reading = matches!(caller.as_str(), "IngestFunction" | "DetectFunction")
            && !ALERT_TABLES.iter().any(|t| table.contains(t));
        match (reading, write) {
            (true, true) => out.writes += n,
            (true, false) => out.reads += n,
            (false, true) => out.alert_writes += n,
            (false, false) => {}
        }
    }
    out
}

/// Messages waiting in every dead-letter and failure queue of the stack.
async fn dead_letters(stack: &Stack) -> Value {
    use aws_sdk_sqs::types::QueueAttributeName;
    let sqs = aws_sdk_sqs::Client::new(stack.sdk_config());
    let mut out = serde_json::Map::new();
    let queues: Vec<_> = stack
        .resources()
        .filter(|r| {
            r.resource_type == "AWS::SQS::Queue"
                && (r.logical_id.ends_with("DLQ") || r.logical_id.ends_with("FailureQueue"))
        })
        .map(|r| (r.logical_id.clone(), r.ref_value.clone()))
        .collect();
    for (id, url) in queues {
        let count = sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .ok()
            .and_then(|o| {
                o.attributes()
                    .and_then(|a| a.get(&QueueAttributeName::ApproximateNumberOfMessages))
                    .and_then(|v| v.parse::<u64>().ok())
            });
        out.insert(id, json!(count));
    }
    Value::Object(out)
}

fn print_table(out: &Value) {
    println!();
    println!("==> load (issue 15)");
    println!(
        "    command   {}",
        out["command"].as_str().unwrap_or_default()
    );
    println!(
        "    readings  {} accepted ({} requests failed); ingest held {}/s over {} s; whole pipeline drained at {}/s ({} s)",
        out["readingsAccepted"],
        out["requestsFailed"],
        out["ingestRateHeld"],
        out["postSeconds"],
        out["pipelineRateHeld"],
        out["drainSeconds"]
    );
    let l = &out["latencyMs"];
    println!(
        "    latency   POST -> AlertRaised stored {}; POST -> NotificationSent stored {} ({} alerts expected, {} stored, {} notified, {} misses)",
        l["alertRaisedStored"],
        l["notificationSentStored"],
        l["alertsExpected"],
        l["alertsStored"],
        l["notified"],
        l["misses"]
    );
    println!("    dead letters {}", out["deadLetters"]);
    let r = &out["readingPath"];
    println!(
        "    reading path (ingest + detect, alerts excluded): {:.1} DynamoDB writes and {:.1} reads per 1,000 readings (target <= 30 each); alert path {} writes",
        r["dynamodbWritesPer1000Readings"].as_f64().unwrap_or(0.0),
        r["dynamodbReadsPer1000Readings"].as_f64().unwrap_or(0.0),
        r["alertPathDynamodbWrites"]
    );
    super::print_requests_and_load(
        "AWS requests per 1,000 readings (functions' calls, counted by the proxy):",
        out,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reading_path_is_ingest_and_detect_without_the_alerts_tables() {
        let key = |c: &str, o: &str, t: &str| {
            (
                c.to_string(),
                "dynamodb".to_string(),
                o.to_string(),
                t.to_string(),
            )
        };
        let detailed = BTreeMap::from([
            (key("DetectFunction", "PutItem", "s-PatientStateTable"), 10),
            (key("DetectFunction", "GetItem", "s-PatientStateTable"), 7),
            (
                key("DetectFunction", "TransactWriteItems", "s-EventsTable"),
                3,
            ),
            (key("RouteFunction", "PutItem", "s-DashboardTable"), 2),
            (
                (
                    "IngestFunction".into(),
                    "kinesis".into(),
                    "PutRecords".into(),
                    String::new(),
                ),
                5,
            ),
        ]);
        assert_eq!(
            reading_path(&detailed),
            ReadingPath {
                writes: 10,
                reads: 7,
                alert_writes: 5
            }
        );
    }

    #[test]
    fn flags_parse_with_defaults() {
        let parse = |line: &str| crate::bench::parse_args::<Options>(line)?.validate();
        let o = parse("--batch 250 --json").unwrap();
        assert_eq!(
            (o.batch, o.json, o.patients, o.rate),
            (250, true, 1000, 200.0)
        );
        assert!(parse("--batch 0").is_err());
        assert!(parse("--unwell 2").is_err());
        assert!(parse("latency").is_err());
        assert!(parse("--bogus 1").is_err());
    }
}
