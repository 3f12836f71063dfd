//! `devstack bench read`: latency of the query API on the local stack (issue 14).
//!
//! Starts its own stack, seeds (with `BatchWriteItem`, 25 items a request) a directory of
//! `--patients` patients (default 10,000) in 100 villages with two health workers each and
//! one supervisor per 10 villages, and `--alerts` open alerts (default 1,000) straight into
//! the dashboard table as `project` writes them (`aws_adapters::view_item`, with every index
//! attribute). Then it times `--requests` sequential calls (after 10 warm-up calls) of each
//! scenario through the local HTTP API (JWT authorizer, the `query` function, moto):
//!
//! - `GET /workers/{id}/inbox` by the worker themself (no directory read);
//! - `GET /workers/{id}/inbox` by their district's supervisor (one directory batch per
//!   index page for the patients, one for the rosters);
//! - `GET /alerts?village=` by an operator;
//! - `GET /alerts` by a supervisor (the newest alerts filtered to their district: the
//!   paging loop reads index pages until 25 items pass or 10 pages were read);
//! - `GET /patients/{id}` by the patient's worker, the patient having a day of heart rates
//!   (23 closed hours in the vitals table, one a minute; docs/read-side.md).
//!
//! For each: p50 / p99 / max latency as the client sees it, and the DynamoDB requests each
//! call made, counted from the emulator's request log. Not part of `./dev test`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use chrono::Utc;
use devstack::{Stack, StackConfig, TokenSpec, inspect, request_log};
use domain::dashboard::{AlertView, View};
use domain::escalation::VillageRoster;
use domain::events::Severity;
use domain::routing::DirectoryEntry;

/// `devstack bench read`: query API latency over a seeded directory and dashboard.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Patients in the directory.
    #[arg(long, default_value_t = Options::default().patients)]
    pub patients: usize,
    /// Open alerts on the board.
    #[arg(long, default_value_t = Options::default().alerts)]
    pub alerts: usize,
    /// Requests per route.
    #[arg(long, default_value_t = Options::default().requests)]
    pub requests: usize,
    /// Print the results as one JSON object.
    #[arg(long)]
    pub json: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            patients: 10_000,
            alerts: 1_000,
            requests: 200,
            json: false,
        }
    }
}

const VILLAGES: usize = 100;
const WARM_UP: usize = 10;

impl Options {
    /// Checks the values clap parsed.
    pub fn validate(self) -> Result<Options> {
        let options = self;
        if options.patients < VILLAGES || options.alerts == 0 || options.alerts > options.patients {
            bail!("need --patients >= {VILLAGES} and 1 <= --alerts <= --patients");
        }
        if options.requests == 0 {
            bail!("--requests must be at least 1");
        }
        Ok(options)
    }
}

fn village(i: usize) -> String {
    format!("V-{:03}", i % VILLAGES)
}

/// The two workers of village `v` (by index).
fn worker(v: usize, which: usize) -> String {
    format!("w-{:03}-{which}", v % VILLAGES)
}

fn supervisor(v: usize) -> String {
    format!("s-{:02}", (v % VILLAGES) / 10)
}

fn patient(i: usize) -> String {
    format!("p-{i:05}")
}

fn entry(i: usize) -> DirectoryEntry {
    let v = i % VILLAGES;
    let w = worker(v, (i / VILLAGES) % 2);
    DirectoryEntry {
        device_ids: Vec::new(),
        patient_id: patient(i),
        patient_name: format!("Patient {i}"),
        village: village(v),
        worker_id: w.clone(),
        worker_name: format!("Worker {w}"),
        worker_phone: format!("+2547{:08}", i % 100_000_000),
    }
}

/// Writes items 25 at a time, retrying what the emulator left unprocessed.
async fn batch_write(
    stack: &Stack,
    table: &str,
    items: Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>>,
) -> Result<()> {
    let client = aws_sdk_dynamodb::Client::new(stack.sdk_config());
    for chunk in items.chunks(25) {
        let mut requests: Vec<WriteRequest> = chunk
            .iter()
            .map(|item| {
                let put = PutRequest::builder().set_item(Some(item.clone())).build()?;
                Ok(WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<_>>()?;
        for _ in 0..10 {
            let out = client
                .batch_write_item()
                .request_items(table, requests.clone())
                .send()
                .await
                .context("BatchWriteItem")?;
            requests = out
                .unprocessed_items
                .and_then(|mut u| u.remove(table))
                .unwrap_or_default();
            if requests.is_empty() {
                break;
            }
        }
        if !requests.is_empty() {
            bail!("{} items stayed unprocessed", requests.len());
        }
    }
    Ok(())
}

async fn seed(stack: &Stack, options: &Options) -> Result<()> {
    let directory = stack.resource("DirectoryTable")?.ref_value.clone();
    let entries = (0..options.patients)
        .map(|i| serde_dynamo::aws_sdk_dynamodb_1::to_item(entry(i)).context("a directory entry"))
        .collect::<Result<Vec<_>>>()?;
    batch_write(stack, &directory, entries).await?;
    let rosters: Vec<VillageRoster> = (0..VILLAGES)
        .map(|v| VillageRoster {
            village: village(v),
            worker_ids: vec![worker(v, 0), worker(v, 1)],
            supervisor_id: supervisor(v),
        })
        .collect();
    inspect::seed_contacts(stack, &rosters, &[]).await?;
    let dashboard = stack.resource("DashboardTable")?.ref_value.clone();
    let now = Utc::now();
    let views = (0..options.alerts)
        .map(|a| {
            // Spread over patients (a prime stride), newest first by index.
            let e = entry((a * 7919) % options.patients);
            let mut v = AlertView::new(&format!("bench-{a:05}"));
            v.patient_id = Some(e.patient_id.clone());
            v.village = Some(e.village.clone());
            v.rule_id = Some("spo2-low".into());
            v.severity = Some(if a % 3 == 0 {
                Severity::Critical
            } else {
                Severity::Warning
            });
            v.description = Some("spo2 below 90 %".into());
            v.raised_at = Some(now - chrono::Duration::seconds(a as i64));
            v.routed_to = Some(e.worker_id.clone());
            v.updated_at = v.raised_at;
            aws_adapters::view_item(&View::Alert(v), 1).context("a view item")
        })
        .collect::<Result<Vec<_>>>()?;
    batch_write(stack, &dashboard, views).await?;
    // A day of heart rates of patient 0, one a minute: 23 closed hours as detect writes them
    // (the items of aws_adapters::DynamoVitals).
    use aws_sdk_dynamodb::types::AttributeValue as A;
    let hour = domain::vitals::hour_of(now.timestamp_millis());
    let mut buffer = Vec::new();
    for minute in (0..23 * 60).rev() {
        let at = hour - (minute + 1) * 60_000;
        let value = 60.0 + (minute % 30) as f64;
        domain::vitals::record(
            &mut buffer,
            at,
            domain::reading::VitalType::HeartRate,
            value,
            "watch",
        );
    }
    let blocks = domain::vitals::take_closed(&mut buffer, i64::MAX / 2)
        .into_iter()
        .map(|block| {
            [
                ("patientId", A::S(patient(0))),
                ("sk", A::S(block.sort_key(&patient(0)))),
                ("hour", A::N(block.start.to_string())),
                ("count", A::N(block.count.to_string())),
                (
                    "devices",
                    A::L(block.devices.iter().map(|d| A::S(d.clone())).collect()),
                ),
                ("readings", A::S(block.readings.clone())),
                ("expiresAt", A::N(block.expires_at_seconds().to_string())),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
        })
        .collect();
    batch_write(
        stack,
        &stack.resource("VitalsTable")?.ref_value.clone(),
        blocks,
    )
    .await?;
    Ok(())
}

/// One scenario's results.
#[derive(Debug, Clone, serde::Serialize)]
struct Row {
    scenario: String,
    items_per_call: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    dynamodb_requests_per_call: BTreeMap<String, f64>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn scenario(
    stack: &Stack,
    client: &reqwest::Client,
    name: &str,
    token: &TokenSpec,
    path: &str,
    requests: usize,
) -> Result<Row> {
    let bearer = stack.bearer(token)?;
    let url = format!("{}{path}", stack.api_url());
    let call = async || -> Result<(Duration, usize)> {
        let started = Instant::now();
        let response = client
            .get(&url)
            .header("authorization", &bearer)
            .send()
            .await?;
        let status = response.status();
        let body: serde_json::Value = response.json().await?;
        let elapsed = started.elapsed();
        if !status.is_success() {
            bail!("{name}: {status} {body}");
        }
        let items = body["items"].as_array().or(body["readings24h"].as_array());
        Ok((elapsed, items.map_or(0, Vec::len)))
    };
    for _ in 0..WARM_UP {
        call().await?;
    }
    request_log::start(stack).await?;
    let mut latencies = Vec::with_capacity(requests);
    let mut items = 0;
    for _ in 0..requests {
        let (elapsed, n) = call().await?;
        latencies.push(elapsed.as_secs_f64() * 1000.0);
        items += n;
    }
    let log = request_log::requests(stack).await?;
    let mut per_op: BTreeMap<String, f64> = BTreeMap::new();
    for r in log.iter().filter(|r| {
        r.service == "dynamodb"
            && ["Query", "GetItem", "BatchGetItem", "Scan"].contains(&r.operation.as_str())
    }) {
        *per_op.entry(r.operation.clone()).or_default() += 1.0;
    }
    for v in per_op.values_mut() {
        *v /= requests as f64;
    }
    latencies.sort_by(f64::total_cmp);
    Ok(Row {
        scenario: name.to_string(),
        items_per_call: items as f64 / requests as f64,
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
        max_ms: latencies.last().copied().unwrap_or_default(),
        dynamodb_requests_per_call: per_op,
    })
}

/// Runs the benchmark and prints the table (or JSON).
pub async fn run(config: StackConfig, options: Options) -> Result<bool> {
    eprintln!("==> starting the local stack");
    let stack = Stack::start(config).await?;
    let result = bench(&stack, &options).await;
    stack.shutdown().await?;
    let rows = result?;
    let command = format!(
        "./dev bench read --patients {} --alerts {} --requests {}",
        options.patients, options.alerts, options.requests
    );
    if options.json {
        println!("{}", serde_json::json!({"command": command, "rows": rows}));
        return Ok(true);
    }
    println!("`{command}`\n");
    println!("| Call | items/call | p50 ms | p99 ms | max ms | DynamoDB requests per call |");
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        let ops: Vec<String> = r
            .dynamodb_requests_per_call
            .iter()
            .map(|(op, n)| format!("{n:.2} {op}"))
            .collect();
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
            r.scenario,
            r.items_per_call,
            r.p50_ms,
            r.p99_ms,
            r.max_ms,
            ops.join(", ")
        );
    }
    Ok(true)
}

async fn bench(stack: &Stack, options: &Options) -> Result<Vec<Row>> {
    let started = Instant::now();
    seed(stack, options).await?;
    eprintln!(
        "==> seeded {} patients, {} open alerts in {:.1} s",
        options.patients,
        options.alerts,
        started.elapsed().as_secs_f64()
    );
    // The worker with the first (newest) alert, and their village's supervisor.
    let first = entry(0);
    let v = 0;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let inbox = format!("/workers/{}/inbox", first.worker_id);
    let n = options.requests;
    let mut rows = Vec::new();
    rows.push(
        scenario(
            stack,
            &client,
            "GET /workers/{id}/inbox (the worker)",
            &TokenSpec::health_worker(&first.worker_id),
            &inbox,
            n,
        )
        .await?,
    );
    rows.push(
        scenario(
            stack,
            &client,
            "GET /workers/{id}/inbox (their supervisor)",
            &TokenSpec::supervisor(&supervisor(v)),
            &inbox,
            n,
        )
        .await?,
    );
    rows.push(
        scenario(
            stack,
            &client,
            "GET /alerts?village= (operator)",
            &TokenSpec::operator("op-bench"),
            &format!("/alerts?village={}", village(v)),
            n,
        )
        .await?,
    );
    rows.push(
        scenario(
            stack,
            &client,
            "GET /alerts (a supervisor: 10 of 100 villages)",
            &TokenSpec::supervisor(&supervisor(v)),
            "/alerts",
            n,
        )
        .await?,
    );
    rows.push(
        scenario(
            stack,
            &client,
            "GET /patients/{id} (their worker; 24 h of readings)",
            &TokenSpec::health_worker(&first.worker_id),
            &format!("/patients/{}", first.patient_id),
            n,
        )
        .await?,
    );
    Ok(rows)
}
