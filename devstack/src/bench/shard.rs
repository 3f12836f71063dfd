//! `devstack bench shard` (issue 15): can detect keep up with one Kinesis shard's full
//! write rate (1,000 records/s) when every AWS call takes `--latency-ms` (default 10 ms)?
//!
//! Starts the local stack with detect's AWS calls going through the counting proxy
//! (`devstack::proxy`), which delays each call by the latency before it reaches the
//! emulator. Then it invokes the real `detect` binary (its handler with its real AWS
//! adapters, whatever the branch has) directly, one batch after another as Lambda does for
//! one shard: synthetic Kinesis batches of `--batch` records (default 100, the template's
//! `BatchSize`), each record one heart-rate reading of a different patient (round-robin
//! over `--patients`, default 1,000; 10 % unwell at 112 bpm, so `hr-high-3` alerts are
//! raised as well), stamped with the time the batch is built. A warm-up pass (one reading
//! of every patient, not measured) runs first.
//!
//! readings/s = records of the measured batches / the sum of their invocation times.
//! The emulator's own time is on top of the injected latency (reported), so this is a
//! lower bound of what detect does against DynamoDB at that latency. Also reported: the
//! same with the emulator's time taken out (each batch's time minus the time at least one
//! of its calls was at the emulator, `Proxy::upstream_busy`; the injected latency stays
//! in), an upper bound, and the AWS calls per batch. `--layout patient|shard` sets the
//! template's `DetectStateLayout`. Not part of `./dev test`.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use base64::Engine;
use chrono::{DateTime, Utc};
use devstack::proxy::{Proxy, per_thousand};
use devstack::{Stack, StackConfig, inspect};
use domain::envelope::{Envelope, Lineage};
use domain::reading::{Reading, VitalType};
use serde_json::{Value, json};

use super::load::route_functions_through;
use super::load_average;
use super::measure::stats;
use crate::simulator;

/// `devstack bench shard`: detect's readings/s for one shard, its handler driven with
/// synthetic Kinesis batches behind the latency proxy.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Latency added to every AWS call, ms.
    #[arg(long, default_value_t = 10)]
    pub latency_ms: u64,
    /// Batches to send.
    #[arg(long, default_value_t = 50)]
    pub batches: usize,
    /// Records per batch (at most 10,000).
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Patients the readings go round.
    #[arg(long, default_value_t = 1000)]
    pub patients: usize,
    /// Detection state layout (the template's `DetectStateLayout`): `patient` (one item per
    /// patient) or `shard` (per stream shard); the template's default when not given.
    #[arg(long, value_parser = ["patient", "shard"])]
    pub layout: Option<String>,
    /// Print the results as one JSON object.
    #[arg(long)]
    pub json: bool,
}

impl Options {
    /// Checks the values clap parsed.
    pub fn validate(self) -> Result<Options> {
        let o = self;
        if o.batches == 0 || o.batch == 0 || o.batch > 10_000 || o.patients == 0 {
            bail!("--batches, --batch (at most 10,000) and --patients must be above 0");
        }
        Ok(o)
    }
}

/// The Kinesis event of one batch: readings `first..first + len` of the round-robin.
struct Batches {
    patients: Vec<String>,
    unwell: usize,
    stream_arn: String,
    next: usize,
}

impl Batches {
    fn event(&mut self, len: usize, now: DateTime<Utc>) -> Value {
        let records: Vec<Value> = (self.next..self.next + len)
            .map(|i| {
                let p = i % self.patients.len();
                let patient = &self.patients[p];
                let bpm = if p < self.unwell {
                    112.0
                } else {
                    60.0 + (i * 7 % 25) as f64
                };
                let reading = Reading {
                    patient_id: patient.clone(),
                    vital: VitalType::HeartRate,
                    value: bpm,
                    unit: VitalType::HeartRate.unit().to_string(),
                    timestamp: now,
                    device_id: format!("band-{patient}"),
                };
                let lineage = Lineage {
                    correlation_id: format!("bench-shard-{i}"),
                    causation_id: format!("bench-shard-{i}"),
                };
                let envelope = Envelope::new(reading.event_id(), "ingest", lineage, now, reading);
                let data = base64::engine::general_purpose::STANDARD
                    .encode(serde_json::to_vec(&envelope).unwrap_or_default());
                let sequence = format!("49{:040}", i + 1);
                json!({
                    "kinesis": {
                        "kinesisSchemaVersion": "1.0",
                        "partitionKey": patient,
                        "sequenceNumber": sequence,
                        "data": data,
                        "approximateArrivalTimestamp": now.timestamp_millis() as f64 / 1000.0,
                    },
                    "eventSource": "aws:kinesis",
                    "eventVersion": "1.0",
                    "eventID": format!("shardId-000000000000:{sequence}"),
                    "eventName": "aws:kinesis:record",
                    "invokeIdentityArn": "arn:aws:iam::123456789012:role/bench",
                    "awsRegion": "us-east-1",
                    "eventSourceARN": self.stream_arn,
                })
            })
            .collect();
        self.next += len;
        json!({ "Records": records })
    }
}

pub async fn run(mut config: StackConfig, options: Options) -> Result<bool> {
    let load_before = load_average();
    let proxy = Proxy::start(Duration::from_millis(options.latency_ms)).await?;
    // Only detect's calls are delayed and counted.
    route_functions_through(&mut config, &proxy, Some("DetectFunction"))?;
    if let Some(layout) = &options.layout {
        config
            .parameter_overrides
            .insert("DetectStateLayout".to_string(), layout.clone());
    }
    let stack = Stack::start(config).await?;
    proxy.set_upstream(stack.endpoint_url());
    let result = bench(&stack, &proxy, &options).await;
    stack.shutdown().await?;
    let mut out = result?;
    out["command"] = json!(format!(
        "./dev bench shard --latency-ms {} --batches {} --batch {} --patients {}{}",
        options.latency_ms,
        options.batches,
        options.batch,
        options.patients,
        options
            .layout
            .as_ref()
            .map(|l| format!(" --layout {l}"))
            .unwrap_or_default()
    ));
    out["layout"] = json!(options.layout.as_deref().unwrap_or("template default"));
    out["loadAverageBefore"] = json!(load_before);
    out["loadAverageAfter"] = json!(load_average());
    if options.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!();
        println!(
            "==> detect, one shard, {} ms per AWS call (issue 15)",
            options.latency_ms
        );
        println!(
            "    command    {}",
            out["command"].as_str().unwrap_or_default()
        );
        println!(
            "    readings/s {} ({} readings in {} batches, {} s of invocations; target 1,000)",
            out["readingsPerSecond"], out["readings"], out["batches"], out["invocationSeconds"]
        );
        println!(
            "    batch ms   {}; failed invocations {}, failed records {}; readings/s of the batches that did not fail {}",
            out["batchMs"],
            out["failedInvocations"],
            out["failedRecords"],
            out["readingsPerSecondSuccessfulBatches"]
        );
        println!(
            "    emulator   {} ms per call on average, on top of the injected latency",
            out["emulatorMsPerCall"]
        );
        println!(
            "    calls      {} AWS calls per batch; without the emulator's time: {} readings/s ({} s of invocations)",
            out["awsCallsPerBatch"],
            out["readingsPerSecondEmulatorExcluded"],
            out["invocationSecondsEmulatorExcluded"]
        );
        super::print_requests_and_load("AWS requests of detect per 1,000 readings:", &out);
    }
    Ok(true)
}

async fn bench(stack: &Stack, proxy: &Proxy, options: &Options) -> Result<Value> {
    let unwell = options.patients / 10;
    let everyone = simulator::patients(options.patients, unwell);
    let entries: Vec<_> = everyone.iter().map(|p| p.entry.clone()).collect();
    eprintln!("==> seeding the directory: {} patients", entries.len());
    inspect::seed_directory(stack, &entries).await?;
    let (workers, rosters, families) = simulator::emergency_contacts(&everyone);
    inspect::seed_workers(stack, &workers).await?;
    inspect::seed_contacts(stack, &rosters, &families).await?;
    let stream = stack.resource("ReadingsStream")?;
    let mut batches = Batches {
        patients: everyone
            .iter()
            .map(|p| p.entry.patient_id.clone())
            .collect(),
        unwell,
        stream_arn: stream.arn.clone().unwrap_or_default(),
        next: 0,
    };

    let warm_up = options.patients.div_ceil(options.batch);
    eprintln!("==> warm-up: {warm_up} batches (one reading of every patient)");
    for _ in 0..warm_up {
        let event = batches.event(options.batch, Utc::now());
        let outcome = stack.invoke("DetectFunction", event).await?;
        if !outcome.is_ok() {
            eprintln!("    warm-up batch failed: {outcome:?}");
        }
    }
    let _ = stack.wait_idle(Duration::from_secs(120)).await;
    proxy.reset();
    let emulator_before = proxy.upstream_time();

    eprintln!(
        "==> {} batches of {} records, {} ms per AWS call",
        options.batches, options.batch, options.latency_ms
    );
    let mut batch_ms = Vec::with_capacity(options.batches);
    // Each batch's time minus the time the emulator was answering one of its calls.
    let mut batch_ms_without_emulator = Vec::with_capacity(options.batches);
    let (mut failed_invocations, mut failed_records) = (0usize, 0usize);
    // The invocations that did not fail (time out): their time and count.
    let (mut ok_ms, mut ok_batches) = (0.0f64, 0usize);
    for _ in 0..options.batches {
        let event = batches.event(options.batch, Utc::now());
        let busy_before = proxy.upstream_busy();
        let started = Instant::now();
        let outcome = stack.invoke("DetectFunction", event).await?;
        let elapsed = started.elapsed();
        let busy = proxy.upstream_busy().saturating_sub(busy_before);
        batch_ms.push(elapsed.as_secs_f64() * 1000.0);
        batch_ms_without_emulator.push(elapsed.saturating_sub(busy).as_secs_f64() * 1000.0);
        if outcome.is_ok() {
            ok_ms += elapsed.as_secs_f64() * 1000.0;
            ok_batches += 1;
        }
        match outcome {
            devstack::InvokeOutcome::Ok(response) => {
                failed_records += response["batchItemFailures"].as_array().map_or(0, Vec::len);
            }
            other => {
                failed_invocations += 1;
                eprintln!("    batch failed: {other:?}");
            }
        }
    }
    let counts = proxy.counts();
    let calls: u64 = counts.values().sum();
    let emulator = proxy.upstream_time().saturating_sub(emulator_before);
    let seconds: f64 = batch_ms.iter().sum::<f64>() / 1000.0;
    let seconds_without_emulator: f64 = batch_ms_without_emulator.iter().sum::<f64>() / 1000.0;
    let readings = options.batches * options.batch;
    let _ = stack.wait_idle(Duration::from_secs(60)).await;
    Ok(json!({
        "benchmark": "detect per-shard throughput (issue 15)",
        "injectedLatencyMs": options.latency_ms,
        "batches": options.batches,
        "recordsPerBatch": options.batch,
        "patients": options.patients,
        "readings": readings,
        "invocationSeconds": (seconds * 100.0).round() / 100.0,
        "readingsPerSecond": (readings as f64 / seconds).round(),
        "batchMs": stats(&batch_ms).json(),
        "readingsPerSecondSuccessfulBatches": if ok_ms > 0.0 { ((ok_batches * options.batch) as f64 / (ok_ms / 1000.0)).round() } else { 0.0 },
        // The emulator (moto: one request at a time, ~100+ ms each on a loaded machine)
        // taken out: each batch's wall time minus the time at least one of its calls was at
        // the emulator (the injected latency stays in). An upper bound of what detect does
        // with calls that take exactly the injected latency.
        "invocationSecondsEmulatorExcluded": (seconds_without_emulator * 100.0).round() / 100.0,
        "readingsPerSecondEmulatorExcluded": if seconds_without_emulator > 0.0 { (readings as f64 / seconds_without_emulator).round() } else { 0.0 },
        "batchMsEmulatorExcluded": stats(&batch_ms_without_emulator).json(),
        "awsCallsPerBatch": (calls as f64 / options.batches as f64 * 10.0).round() / 10.0,
        "failedInvocations": failed_invocations,
        "failedRecords": failed_records,
        "emulatorMsPerCall": if calls == 0 { 0.0 } else { (emulator.as_secs_f64() * 1000.0 / calls as f64 * 10.0).round() / 10.0 },
        "awsRequests": counts.iter().map(|((s, o), n)| (format!("{s} {o}"), json!(n))).collect::<serde_json::Map<_, _>>(),
        "awsRequestsPer1000Readings": per_thousand(&counts, readings as u64),
    }))
}
