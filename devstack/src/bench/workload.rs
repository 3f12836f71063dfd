//! The workload: readings posted to the HTTP API, as spot checks (one SpO2 reading per
//! patient at a steady rate) and as continuous wearables (heart rate every few seconds).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::alerts::{Alerts, wait_for_alerts};
use super::measure::Outcome;
use super::{Options, SPOT_RULE, WEARABLE_RULE};

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

pub(super) async fn spot_checks(
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

pub(super) async fn wearables(
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
