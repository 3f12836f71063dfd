//! A simulator of patients with home devices: seeds the directory and posts vital-sign
//! readings to the HTTP API. Some patients have abnormal vitals; the rest are healthy.

use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use domain::routing::DirectoryEntry;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// What a simulated patient's vitals look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Healthy,
    /// Heart rate persistently over 100: expect a `tachycardia` alert.
    Tachycardic,
    /// SpO2 under 90: expect a `hypoxemia` alert.
    Hypoxemic,
}

impl Profile {
    /// The alert type detection should raise for this profile, if any.
    pub fn expected_alert(self) -> Option<&'static str> {
        match self {
            Profile::Healthy => None,
            Profile::Tachycardic => Some("tachycardia"),
            Profile::Hypoxemic => Some("hypoxemia"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Patient {
    pub entry: DirectoryEntry,
    pub profile: Profile,
}

const VILLAGES: [&str; 4] = ["Kisumu", "Bondo", "Siaya", "Homa Bay"];
const NAMES: [&str; 8] = [
    "Amina", "Baraka", "Chausiku", "Daudi", "Eshe", "Faraji", "Gathoni", "Hamisi",
];

/// `count` patients, `abnormal` of them unwell (alternating tachycardia and hypoxemia),
/// spread over villages, each village with its own health worker.
pub fn patients(count: usize, abnormal: usize) -> Vec<Patient> {
    (0..count)
        .map(|i| {
            let village_index = i % VILLAGES.len();
            let profile = if i < abnormal {
                if i % 2 == 0 {
                    Profile::Tachycardic
                } else {
                    Profile::Hypoxemic
                }
            } else {
                Profile::Healthy
            };
            Patient {
                entry: DirectoryEntry {
                    patient_id: format!("p-{:03}", i + 1),
                    patient_name: NAMES[i % NAMES.len()].to_string(),
                    village: VILLAGES[village_index].to_string(),
                    worker_id: format!("w-{:02}", village_index + 1),
                    worker_name: format!("CHW {}", VILLAGES[village_index]),
                    worker_phone: format!("+2547000000{:02}", village_index + 1),
                    device_ids: Vec::new(),
                },
                profile,
            }
        })
        .collect()
}

/// Workers (one per village, plus a district supervisor), village rosters and family
/// contacts for the emergency saga and alert escalation.
pub fn emergency_contacts(
    patients: &[Patient],
) -> (
    Vec<domain::escalation::Worker>,
    Vec<domain::escalation::VillageRoster>,
    Vec<domain::escalation::FamilyContact>,
) {
    use domain::escalation::{FamilyContact, VillageRoster, Worker};
    let mut workers: Vec<Worker> = Vec::new();
    let mut rosters: Vec<VillageRoster> = Vec::new();
    for p in patients {
        let e = &p.entry;
        if !workers.iter().any(|w| w.worker_id == e.worker_id) {
            workers.push(Worker {
                worker_id: e.worker_id.clone(),
                name: e.worker_name.clone(),
                phone: e.worker_phone.clone(),
                village: e.village.clone(),
                available: true,
                reserved_by: None,
                language: "en".into(),
            });
        }
        if !rosters.iter().any(|r| r.village == e.village) {
            rosters.push(VillageRoster {
                village: e.village.clone(),
                worker_ids: vec![e.worker_id.clone()],
                supervisor_id: "s-01".into(),
            });
        }
    }
    workers.push(Worker {
        worker_id: "s-01".into(),
        name: "District supervisor".into(),
        phone: "+254700000900".into(),
        village: "district".into(),
        available: true,
        reserved_by: None,
        language: "en".into(),
    });
    let families = patients
        .iter()
        .map(|p| FamilyContact {
            patient_id: p.entry.patient_id.clone(),
            name: format!("Family of {}", p.entry.patient_name),
            phone: format!("+2547110{}", &p.entry.patient_id.replace('-', "")[1..]),
            language: "en".into(),
        })
        .collect();
    (workers, rosters, families)
}

/// One round of readings for one patient at event time `at`.
pub fn readings(patient: &Patient, at: DateTime<Utc>, rng: &mut StdRng) -> Vec<Value> {
    let heart_rate = match patient.profile {
        Profile::Tachycardic => rng.random_range(112.0..140.0),
        _ => rng.random_range(62.0..90.0),
    };
    let spo2 = match patient.profile {
        Profile::Hypoxemic => rng.random_range(84.0..88.5),
        _ => rng.random_range(95.0..99.5),
    };
    let timestamp = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let device = format!("dev-{}", patient.entry.patient_id);
    let id = &patient.entry.patient_id;
    let round1 = |v: f64| (v * 10.0).round() / 10.0;
    vec![
        json!({"patientId": id, "type": "heart_rate", "value": round1(heart_rate), "unit": "bpm", "timestamp": timestamp, "deviceId": device}),
        json!({"patientId": id, "type": "spo2", "value": round1(spo2), "unit": "%", "timestamp": timestamp, "deviceId": device}),
        json!({"patientId": id, "type": "temperature", "value": round1(rng.random_range(36.4..37.3)), "unit": "celsius", "timestamp": timestamp, "deviceId": device}),
        json!({"patientId": id, "type": "systolic_bp", "value": round1(rng.random_range(110.0..130.0)), "unit": "mmHg", "timestamp": timestamp, "deviceId": device}),
        json!({"patientId": id, "type": "diastolic_bp", "value": round1(rng.random_range(70.0..85.0)), "unit": "mmHg", "timestamp": timestamp, "deviceId": device}),
    ]
}

/// What a simulation run posted.
#[derive(Debug, Default, Clone)]
pub struct Posted {
    pub requests: usize,
    pub readings: usize,
}

/// Posts `rounds` rounds of readings (one minute of event time apart, ending now) for
/// every patient, one request per round, calling `progress` after each round. Every
/// request carries `authorization` (`Bearer <token>`, e.g. an operator's, who may post
/// readings for any patient).
pub async fn run(
    api_url: &str,
    authorization: &str,
    patients: &[Patient],
    rounds: usize,
    seed: u64,
    mut progress: impl FnMut(usize, &Posted),
) -> anyhow::Result<Posted> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(authorization)
            .context("the authorization header")?,
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .default_headers(headers)
        .build()
        .context("building the HTTP client")?;
    let mut rng = StdRng::seed_from_u64(seed);
    let now = Utc::now();
    let mut posted = Posted::default();
    for round in 0..rounds {
        let minutes_ago = i64::try_from(rounds - round).unwrap_or(i64::MAX);
        let at = now - chrono::Duration::minutes(minutes_ago);
        let batch: Vec<Value> = patients
            .iter()
            .flat_map(|p| readings(p, at, &mut rng))
            .collect();
        for chunk in batch.chunks(domain::reading::MAX_READINGS_PER_REQUEST) {
            let response = client
                .post(format!("{api_url}/readings"))
                .header(
                    "x-correlation-id",
                    format!("sim-round-{}-{}", round + 1, posted.requests + 1),
                )
                .json(chunk)
                .send()
                .await
                .with_context(|| format!("posting round {}", round + 1))?;
            let status = response.status();
            if status.as_u16() != 202 {
                let body = response.text().await.unwrap_or_default();
                bail!("POST /readings answered {status}: {body}");
            }
            posted.requests += 1;
            posted.readings += chunk.len();
        }
        progress(round + 1, &posted);
    }
    Ok(posted)
}

/// The import lines (docs/onboarding.md) of the simulated clinic: the supervisor (of every
/// village), the workers, then the patients with their families; patient p-001 wears the
/// demo's wearable.
pub fn import_lines(patients: &[Patient]) -> Vec<String> {
    let (workers, rosters, families) = emergency_contacts(patients);
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let mut lines = Vec::new();
    for w in &workers {
        let supervises: Vec<&str> = rosters
            .iter()
            .filter(|r| r.supervisor_id == w.worker_id)
            .map(|r| r.village.as_str())
            .collect();
        let role = if supervises.is_empty() {
            "health-worker"
        } else {
            "supervisor"
        };
        lines.push(format!(
            "worker,{},{},{},{},{},{},,,,",
            w.worker_id,
            quote(&w.name),
            quote(&w.village),
            w.phone,
            role,
            quote(&supervises.join(";")),
        ));
    }
    for (p, family) in patients.iter().zip(&families) {
        let e = &p.entry;
        let devices = if e.patient_id == "p-001" {
            devstack::auth::DEMO_WEARABLE
        } else {
            ""
        };
        lines.push(format!(
            "patient,{},{},{},,,,{},{},{},{}",
            e.patient_id,
            quote(&e.patient_name),
            quote(&e.village),
            e.worker_id,
            quote(&family.name),
            family.phone,
            devices,
        ));
    }
    lines
}

/// Onboards the simulated clinic through the onboarding API (`POST /import` as an
/// operator, 1,000 lines a request, workers first), as an operator would; the demo's kiosk
/// binding (not a wearable) is written directly.
pub async fn onboard(stack: &devstack::Stack, patients: &[Patient]) -> anyhow::Result<()> {
    const HEADER: &str =
        "kind,id,name,village,phone,role,supervises,workerId,familyName,familyPhone,devices";
    let operator = stack.bearer(&devstack::TokenSpec::operator("op-demo"))?;
    let client = reqwest::Client::new();
    for chunk in import_lines(patients).chunks(1000) {
        let body = format!("{HEADER}\n{}\n", chunk.join("\n"));
        let response = client
            .post(format!("{}/import", stack.api_url()))
            .header("authorization", &operator)
            .header("content-type", "text/csv")
            .body(body)
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            anyhow::bail!("POST /import answered {status}: {text}");
        }
    }
    devstack::inspect::seed_devices(
        stack,
        &[(
            devstack::auth::DEMO_KIOSK,
            domain::access::DeviceBinding::Kiosk {
                village: "Kisumu".to_string(),
            },
        )],
    )
    .await
}
