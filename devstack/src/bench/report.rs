//! The bench's results: a table for people, or one JSON object.

use anyhow::Result;
use serde_json::json;

use super::measure::{Outcome, stats};

/// What the latency is measured to, as printed with the results.
const LATENCY_DEFINITION: &str = "AlertRaised stored (ApproximateCreationDateTime of its INSERT record in the events table's DynamoDB stream, set by moto on write) minus the moment POST /readings returned 202 for the reading that completed the condition; same machine clock";

/// The load average (`/proc/loadavg`) before and after the run.
#[derive(Debug, Clone, Copy)]
pub(super) struct LoadAverage<'a> {
    pub(super) before: Option<&'a str>,
    pub(super) after: Option<&'a str>,
}

/// Prints the results as one JSON object.
pub(super) fn print_json(
    command: &str,
    load: LoadAverage<'_>,
    spot: &Outcome,
    wear: &Outcome,
) -> Result<()> {
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
        "loadAverageBefore": load.before,
        "loadAverageAfter": load.after,
        "scenarios": [scenario(spot), scenario(wear)],
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// Prints the results as a table, then a line per scenario.
pub(super) fn print_table(command: &str, load: LoadAverage<'_>, spot: &Outcome, wear: &Outcome) {
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.0}"));
    println!();
    println!("==> end-to-end alert latency (issue 10)");
    println!("    command   {command}");
    println!("    latency   {LATENCY_DEFINITION}");
    println!(
        "    load avg  before {}, after {}",
        load.before.unwrap_or("?"),
        load.after.unwrap_or("?")
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
    for o in [spot, wear] {
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
    for o in [spot, wear] {
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
}
