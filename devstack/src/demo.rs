//! The demo: the whole pipeline on this machine. Starts the emulator and every function,
//! seeds the directory, runs the patient simulator, prints alerts and notifications as
//! they happen, and ends with a summary that checks the outcome.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::Result;
use devstack::inspect;
use devstack::{InvokeOutcome, Stack, StackConfig};

use crate::emergency_scenes;
use crate::simulator::{self, Patient, Profile};

pub struct Options {
    pub patients: usize,
    pub abnormal: usize,
    pub rounds: usize,
    pub seed: u64,
}

/// Runs the demo; `Ok(true)` when the summary shows what the simulation implies.
pub async fn run(config: StackConfig, options: Options) -> Result<bool> {
    let started = Instant::now();
    if let Some(dir) = &config.function_log_dir {
        std::fs::create_dir_all(dir)?;
    }
    let log_dir = config.function_log_dir.clone();
    println!(
        "==> starting the local stack (emulator, provisioning from {})",
        config.template.display()
    );
    let stack = Stack::start(config).await?;
    println!("    emulator   {}", stack.endpoint_url());
    println!("    HTTP API   {}", stack.api_url());
    if let Some(url) = stack.dashboard_url() {
        println!(
            "    dashboard  {url}  (open while the demo runs; `./dev up` keeps one up; local sign-in: w-01, s-01 or op-1)"
        );
    }
    if let Some(bucket) = stack.archive().and_then(|a| a.bucket()) {
        println!("    archive    s3://{bucket}/ (docs/archive.md)");
    }
    if let Some(dir) = &log_dir {
        println!("    logs       {}/<Function>.log", dir.display());
    }
    for r in stack.resources() {
        println!(
            "    {:<28} {:<28} {}",
            r.logical_id,
            r.resource_type,
            r.name.as_deref().unwrap_or(&r.ref_value)
        );
    }

    let patients = simulator::patients(options.patients, options.abnormal.min(options.patients));
    // Through the onboarding API (POST /import), as an operator would (docs/onboarding.md).
    simulator::onboard(&stack, &patients).await?;
    let (workers, rosters, families) = simulator::emergency_contacts(&patients);
    println!(
        "==> onboarded through POST /import: {} patients ({} unwell), {} health workers and supervisors, {} village rosters, {} family contacts",
        patients.len(),
        options.abnormal.min(options.patients),
        workers.len(),
        rosters.len(),
        families.len()
    );

    println!("==> simulating {} rounds of readings", options.rounds);
    let mut seen = BTreeSet::new();
    let posted = {
        let api_url = stack.api_url();
        // The simulated clinic's readings are posted by an operator (any patient).
        let operator = stack.bearer(&devstack::TokenSpec::operator("op-demo"))?;
        let sim = simulator::run(
            &api_url,
            &operator,
            &patients,
            options.rounds,
            options.seed,
            |round, posted| {
                println!(
                    "    round {round}/{}: {} readings posted in {} requests",
                    options.rounds, posted.readings, posted.requests
                );
            },
        );
        tokio::pin!(sim);
        let mut ticker = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                result = &mut sim => break result?,
                _ = ticker.tick() => print_new_events(&stack, &mut seen).await?,
            }
        }
    };

    println!("==> waiting for the pipeline to drain");
    let drain_started = Instant::now();
    {
        let wait = stack.wait_idle(Duration::from_secs(120));
        tokio::pin!(wait);
        let mut ticker = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                result = &mut wait => { result?; break; }
                _ = ticker.tick() => print_new_events(&stack, &mut seen).await?,
            }
        }
    }
    print_new_events(&stack, &mut seen).await?;

    let scenes = emergency_scenes::play(&stack, &patients).await?;
    print_new_events(&stack, &mut seen).await?;

    let ok = summary(
        &stack,
        &patients,
        &scenes,
        posted.readings,
        started.elapsed(),
        drain_started.elapsed(),
    )
    .await?;
    stack.shutdown().await?;
    Ok(ok)
}

async fn print_new_events(stack: &Stack, seen: &mut BTreeSet<String>) -> Result<()> {
    let mut events = inspect::scan(stack, "EventsTable").await?;
    events.sort_by(|a, b| a["timestamp"].as_str().cmp(&b["timestamp"].as_str()));
    for e in events {
        let id = e["eventId"].as_str().unwrap_or_default().to_string();
        if !seen.insert(id) {
            continue;
        }
        let d = &e["data"];
        match e["eventType"].as_str() {
            Some("AlertRaised") => println!(
                "    ALERT    {:<8} {:<11} patient {} ({}) - {}",
                d["severity"].as_str().unwrap_or("?").to_uppercase(),
                d["alertType"].as_str().unwrap_or("?"),
                d["patientId"].as_str().unwrap_or("?"),
                d["village"].as_str().unwrap_or("?"),
                d["description"].as_str().unwrap_or("?"),
            ),
            Some("AlertRouted") => println!(
                "    ROUTED   alert {} -> health worker {}",
                short(d["alertId"].as_str()),
                d["workerId"].as_str().unwrap_or("?"),
            ),
            Some("AlertEscalated") => println!(
                "    ESCALATE alert {} not acknowledged -> level {} {}",
                short(d["alertId"].as_str()),
                d["level"],
                d["recipientId"].as_str().unwrap_or("?"),
            ),
            Some(
                t @ ("EmergencyStarted"
                | "WorkerAssigned"
                | "WorkerUnavailable"
                | "AmbulanceDispatched"
                | "AmbulanceDispatchFailed"
                | "FamilyNotified"
                | "StepTimedOut"
                | "AmbulanceCancelled"
                | "WorkerReleased"
                | "EscalatedToHospital"),
            ) => {
                let stream = e["streamId"].as_str().unwrap_or("?");
                let detail = match t {
                    "EmergencyStarted" => format!(
                        "patient {} ({}): {}",
                        d["patientId"].as_str().unwrap_or("?"),
                        d["village"].as_str().unwrap_or("?"),
                        d["reason"].as_str().unwrap_or("?")
                    ),
                    "WorkerAssigned" | "WorkerReleased" => {
                        d["workerId"].as_str().unwrap_or("?").to_string()
                    }
                    "StepTimedOut" => d["step"].as_str().unwrap_or("?").to_string(),
                    "WorkerUnavailable" | "AmbulanceDispatchFailed" => {
                        d["reason"].as_str().unwrap_or("?").to_string()
                    }
                    _ => String::new(),
                };
                println!(
                    "    SAGA     {} v{} {t} {detail}",
                    short(stream.strip_prefix("emergency-")),
                    e["version"],
                );
            }
            Some("NotificationSent") => println!(
                "    NOTIFIED {} via {} for alert {}{} (correlation {})",
                d["recipientId"].as_str().unwrap_or("?"),
                d["channel"].as_str().unwrap_or("?"),
                short(d["alertId"].as_str()),
                if d["kind"] == "cleared" {
                    ": cleared"
                } else {
                    ""
                },
                e["correlationId"].as_str().unwrap_or("?"),
            ),
            _ => {}
        }
    }
    Ok(())
}

fn short(id: Option<&str>) -> &str {
    let id = id.unwrap_or("?");
    id.get(..8).unwrap_or(id)
}

async fn summary(
    stack: &Stack,
    patients: &[Patient],
    scenes: &emergency_scenes::Scenes,
    readings: usize,
    total: Duration,
    drain: Duration,
) -> Result<bool> {
    let alerts = inspect::events_of_type(stack, "AlertRaised").await?;
    let notified = inspect::events_of_type(stack, "NotificationSent").await?;
    let outbox = inspect::scan(stack, "OutboxTable").await?;
    let dlqs = inspect::dead_letter_depths(stack).await?;

    let mut alerts_by_patient: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for a in &alerts {
        alerts_by_patient
            .entry(a["data"]["patientId"].as_str().unwrap_or("?"))
            .or_default()
            .push(a["data"]["alertType"].as_str().unwrap_or("?"));
    }

    println!();
    println!("==> summary");
    println!("    readings posted        {readings}");
    println!("    alerts raised          {}", alerts.len());
    println!(
        "    notifications sent     {} (outbox rows: {})",
        notified.len(),
        outbox.len()
    );
    let mut ok = true;
    let mut missing = Vec::new();
    let mut unexpected = Vec::new();
    for p in patients {
        let got = alerts_by_patient
            .get(p.entry.patient_id.as_str())
            .cloned()
            .unwrap_or_default();
        match p.profile.expected_alert() {
            Some(expected) if !got.contains(&expected) => {
                missing.push(format!("{} ({expected})", p.entry.patient_id))
            }
            None if !got.is_empty() => {
                unexpected.push(format!("{} ({})", p.entry.patient_id, got.join(", ")))
            }
            _ => {}
        }
    }
    let unwell = patients
        .iter()
        .filter(|p| p.profile != Profile::Healthy)
        .count();
    println!(
        "    unwell patients        {unwell}, alerted: {}",
        unwell - missing.len()
    );
    println!(
        "    healthy patients       {}, alerted: {}",
        patients.len() - unwell,
        unexpected.len()
    );
    if !missing.is_empty() {
        ok = false;
        println!("    MISSING alerts for     {}", missing.join(", "));
    }
    if !unexpected.is_empty() {
        ok = false;
        println!("    UNEXPECTED alerts for  {}", unexpected.join(", "));
    }
    // Every warning/critical alert notified at least once (escalations, emergencies and
    // cleared notifications add more). Info alerts are for the dashboard only.
    let alert_ids: BTreeSet<&str> = alerts
        .iter()
        .filter(|a| a["data"]["severity"] != "info")
        .filter_map(|a| a["data"]["alertId"].as_str())
        .collect();
    let notified_alerts: BTreeSet<&str> = notified
        .iter()
        .filter_map(|n| n["data"]["alertId"].as_str())
        .filter(|id| alert_ids.contains(id))
        .collect();
    if notified_alerts.len() != alert_ids.len() {
        ok = false;
        println!(
            "    MISMATCH: {} alerts but {} of them notified",
            alert_ids.len(),
            notified_alerts.len()
        );
    }
    // Every emergency saga reached a final state, and every worker it held is free again.
    let sagas = emergency_scenes::outcomes(stack).await?;
    let finished = sagas.values().filter(|s| s.is_terminal()).count();
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    for state in sagas.values() {
        *by_status.entry(format!("{:?}", state.status)).or_default() += 1;
    }
    println!(
        "    emergencies            {}, finished: {finished} {by_status:?}",
        sagas.len()
    );
    if finished != sagas.len() {
        ok = false;
        println!("    UNFINISHED emergencies");
    }
    let on_site_ambulance = scenes
        .ambulance_requested
        .as_ref()
        .and_then(|id| sagas.get(&format!("emergency-{id}")))
        .is_some_and(|s| s.ambulance_requested_on_site);
    println!(
        "    on-site ambulance      {}; closed by their worker: {}",
        if on_site_ambulance {
            "requested and recorded"
        } else {
            "MISSING"
        },
        scenes.closed.len()
    );
    if !on_site_ambulance {
        ok = false;
    }
    let acknowledged = scenes
        .acknowledged_by_sms
        .as_ref()
        .and_then(|id| sagas.get(&format!("emergency-{id}")))
        .and_then(|s| s.acknowledged_by.clone());
    match &acknowledged {
        Some(worker) => println!("    acknowledged by SMS    by {worker}"),
        None => {
            ok = false;
            println!("    acknowledged by SMS    MISSING");
        }
    }
    let held = emergency_scenes::reserved_workers(stack).await?;
    println!("    workers still held     {}", held.len());
    if !held.is_empty() {
        ok = false;
        println!("    NOT RELEASED           {held:?}");
    }
    // The dashboard's read models (projected from the events table's stream) show every
    // alert and every emergency.
    let views = inspect::dashboard_views(stack).await?;
    let board = domain::dashboard::summarise(&views);
    let alert_views = board.open_alerts + board.resolved_alerts;
    let emergency_views: usize = board.emergencies_by_status.values().sum();
    println!(
        "    dashboard views        {alert_views} alerts ({} open, {} resolved; {} pending), {emergency_views} emergencies {:?}",
        board.open_alerts, board.resolved_alerts, board.pending_alerts, board.emergencies_by_status
    );
    if alert_views != alert_ids.len() || emergency_views != sagas.len() {
        ok = false;
        println!(
            "    MISMATCH: the dashboard should show {} alerts and {} emergencies",
            alert_ids.len(),
            sagas.len()
        );
    }
    for (queue, depth) in &dlqs {
        println!("    {:<22} {depth} message(s)", queue);
        if *depth > 0 {
            ok = false;
        }
    }
    println!("    invocations:");
    for function in [
        "IngestFunction",
        "DetectFunction",
        "RouteFunction",
        "NotifyFunction",
        "EmergencyCoordinatorFunction",
        "EmergencyStepsFunction",
        "ProjectFunction",
        "SweepFunction",
    ] {
        let records = stack.invocations(function);
        let failed = records
            .iter()
            .filter(|r| !matches!(r.outcome, InvokeOutcome::Ok(_)))
            .count();
        let mean_ms = if records.is_empty() {
            0.0
        } else {
            records
                .iter()
                .map(|r| r.duration.as_secs_f64() * 1000.0)
                .sum::<f64>()
                / records.len() as f64
        };
        println!(
            "      {function:<16} {:>5} invocations, {failed} failed, mean {mean_ms:.1} ms",
            records.len()
        );
    }
    println!("    metrics (CloudWatch EMF lines in the function logs, namespace Vitals):");
    for function in [
        "IngestFunction",
        "DetectFunction",
        "RouteFunction",
        "NotifyFunction",
    ] {
        for (metric, total) in stack.metrics(function) {
            let shown = if total.unit == "Count" {
                format!("{}", total.sum)
            } else {
                format!(
                    "mean {:.0}, max {:.0} {} ({} values)",
                    total.sum / total.samples.max(1) as f64,
                    total.max,
                    total.unit,
                    total.samples
                )
            };
            println!("      {function:<16} {metric:<48} {shown}");
        }
    }
    println!(
        "    drained in {:.1} s, total {:.1} s",
        drain.as_secs_f64(),
        total.as_secs_f64()
    );
    println!(
        "    result: {}",
        if ok {
            "OK"
        } else {
            "UNEXPECTED OUTCOME (see above)"
        }
    );
    Ok(ok)
}
