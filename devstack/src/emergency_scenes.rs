//! The demo's emergency scenes, played after the simulated readings have drained:
//! - a health worker raises an emergency (`POST /emergencies` with an `Idempotency-Key`);
//!   once the worker is on site they ask for an ambulance (`POST /emergencies/{id}/ambulance`);
//! - a second emergency is acknowledged by the assigned worker's SMS reply ("ACK <code>",
//!   published to the inbound SMS topic in the two-way SMS shape);
//! - then every emergency still open is closed by its worker (`POST /emergencies/{id}/close`),
//!   which releases the worker and tells the family.
//!
//! [`outcomes`] folds every saga from the events table for the summary.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use domain::saga::{SagaEvent, SagaState, Status};
use serde_json::{Value, json};

use devstack::{Stack, TokenSpec, inspect};

/// How long a scene waits for the stack to settle.
const SETTLE: Duration = Duration::from_secs(120);

/// What the scenes did, for the summary.
#[derive(Debug, Default)]
pub struct Scenes {
    /// The emergency whose worker asked for an ambulance.
    pub ambulance_requested: Option<String>,
    /// The emergency the worker acknowledged by SMS reply.
    pub acknowledged_by_sms: Option<String>,
    /// Emergencies closed by their worker.
    pub closed: Vec<String>,
}

/// Plays the scenes with the first two patients (each has a worker and a family on file).
pub async fn play(stack: &Stack, patients: &[crate::simulator::Patient]) -> Result<Scenes> {
    let mut scenes = Scenes::default();
    let Some(first) = patients.first() else {
        return Ok(scenes);
    };
    let client = reqwest::Client::new();
    let api = stack.api_url();
    // The patient's worker raises; the district supervisor (s-01, every roster's) closes
    // what is left open (docs/security.md).
    let worker = stack.bearer(&TokenSpec::health_worker(&first.entry.worker_id))?;
    let supervisor = stack.bearer(&TokenSpec::supervisor("s-01"))?;

    println!("==> emergency scenes");
    // The emergencies the simulated alerts started are closed first, so the scenes' workers
    // are free.
    close_open(stack, &client, &api, &supervisor, &mut scenes).await?;
    let id = raise(
        &client,
        &worker,
        &api,
        &first.entry.patient_id,
        &first.entry.worker_id,
    )
    .await?;
    println!(
        "    {} raised an emergency for {}: {}",
        first.entry.worker_id,
        first.entry.patient_id,
        short(&id)
    );
    stack.wait_idle(SETTLE).await?;
    let (status, body) = post(
        &client,
        &worker,
        &format!("{api}/emergencies/{id}/ambulance"),
        None,
    )
    .await?;
    println!("    the worker on site asks for an ambulance: HTTP {status} {body}");
    if status == 202 {
        scenes.ambulance_requested = Some(id.clone());
    }
    stack.wait_idle(SETTLE).await?;

    close_open(stack, &client, &api, &supervisor, &mut scenes).await?;
    // A second emergency (its worker is free again): the assigned worker acknowledges it
    // by replying to the SMS.
    if let Some(second) = patients.get(1) {
        let second_worker = stack.bearer(&TokenSpec::health_worker(&second.entry.worker_id))?;
        let id = raise(
            &client,
            &second_worker,
            &api,
            &second.entry.patient_id,
            &second.entry.worker_id,
        )
        .await?;
        println!(
            "    {} raised an emergency for {}: {}",
            second.entry.worker_id,
            second.entry.patient_id,
            short(&id)
        );
        stack.wait_idle(SETTLE).await?;
        match worker_sms(stack, &id).await? {
            Some((phone, text)) => match reply_code(&text) {
                Some(code) => {
                    let reply = format!("ACK {code}");
                    inspect::sms_reply(stack, &phone, &reply, &format!("demo-{id}")).await?;
                    println!("    the worker replies \"{reply}\" by SMS");
                    stack.wait_idle(SETTLE).await?;
                    scenes.acknowledged_by_sms = Some(id.clone());
                }
                None => println!("    NO ACK code in the worker's SMS: {text}"),
            },
            None => println!("    NO SMS to the worker of {}", short(&id)),
        }
    }

    close_open(stack, &client, &api, &supervisor, &mut scenes).await?;
    Ok(scenes)
}

/// Every emergency still open is closed by its worker.
async fn close_open(
    stack: &Stack,
    client: &reqwest::Client,
    api: &str,
    bearer: &str,
    scenes: &mut Scenes,
) -> Result<()> {
    for (stream, state) in outcomes(stack).await? {
        if state.status != Status::OnSite {
            continue;
        }
        let id = stream.trim_start_matches("emergency-").to_string();
        let (status, _) = post(
            client,
            bearer,
            &format!("{api}/emergencies/{id}/close"),
            None,
        )
        .await?;
        println!("    the worker closes {}: HTTP {status}", short(&id));
        if status == 202 {
            scenes.closed.push(id);
        }
    }
    stack.wait_idle(SETTLE).await
}

async fn raise(
    client: &reqwest::Client,
    bearer: &str,
    api: &str,
    patient: &str,
    worker: &str,
) -> Result<String> {
    let body =
        json!({"patientId": patient, "reason": "fainted during a home visit", "reporter": worker});
    let key = format!("demo-{patient}");
    let (status, reply) = post(
        client,
        bearer,
        &format!("{api}/emergencies"),
        Some((&key, body)),
    )
    .await?;
    if status != 202 {
        bail!("POST /emergencies answered {status}: {reply}");
    }
    reply["emergencyId"]
        .as_str()
        .map(str::to_string)
        .context("no emergencyId in the reply")
}

async fn post(
    client: &reqwest::Client,
    bearer: &str,
    url: &str,
    body: Option<(&str, Value)>,
) -> Result<(u16, Value)> {
    let mut request = client.post(url).header("authorization", bearer);
    if let Some((key, body)) = body {
        request = request
            .header("idempotency-key", key)
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

/// The emergency SMS its worker got: (phone, text).
async fn worker_sms(stack: &Stack, emergency_id: &str) -> Result<Option<(String, String)>> {
    Ok(inspect::scan(stack, "OutboxTable")
        .await?
        .into_iter()
        .find(|row| {
            row["alertId"] == emergency_id
                && row["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("[EMERGENCY]"))
        })
        .and_then(|row| {
            let phone = row["recipientPhone"].as_str()?.to_string();
            let text = row["message"].as_str()?.to_string();
            Some((phone, text))
        }))
}

/// The code of "... Reply ACK <code>" at the end of an SMS.
fn reply_code(text: &str) -> Option<&str> {
    text.rsplit_once("Reply ACK ").map(|(_, code)| code.trim())
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// Every saga of the events table, folded: stream id -> state.
pub async fn outcomes(stack: &Stack) -> Result<BTreeMap<String, SagaState>> {
    let mut streams: BTreeMap<String, Vec<(u64, SagaEvent)>> = BTreeMap::new();
    for item in inspect::scan(stack, "EventsTable").await? {
        let Some(stream) = item["streamId"]
            .as_str()
            .filter(|s| s.starts_with("emergency-"))
        else {
            continue;
        };
        let version = item["version"].as_u64().unwrap_or_default();
        let event: SagaEvent = serde_json::from_value(item["data"].clone())
            .with_context(|| format!("event {version} of {stream} is not a saga event"))?;
        streams
            .entry(stream.to_string())
            .or_default()
            .push((version, event));
    }
    Ok(streams
        .into_iter()
        .map(|(stream, mut events)| {
            events.sort_by_key(|(version, _)| *version);
            let state = SagaState::fold(events.iter().map(|(_, e)| e));
            (stream, state)
        })
        .collect())
}

/// Workers still held by an emergency: (worker id, emergency id).
pub async fn reserved_workers(stack: &Stack) -> Result<Vec<(String, String)>> {
    Ok(inspect::scan(stack, "WorkersTable")
        .await?
        .into_iter()
        .filter_map(|w| {
            let by = w["reservedBy"].as_str()?.to_string();
            Some((w["workerId"].as_str().unwrap_or("?").to_string(), by))
        })
        .collect())
}
