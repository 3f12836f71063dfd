//! The realistic mix of the `detect` benchmark, shared by `benches/detect.rs` and
//! `examples/profile_detect.rs` (which runs it once, for callgrind). See the header of
//! `benches/detect.rs`.

use std::collections::HashMap;
use std::hint::black_box;

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use detect::{Decoded, decode_record, group_by_patient, kinesis};
use domain::detection::{PatientState, RuleSet};
use domain::envelope::{Envelope, Lineage};
use domain::reading::{Reading, VitalType};

pub const PATIENTS: usize = 500;
pub const ROUNDS: usize = 40;
pub const BATCH: usize = 100;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-24T08:00:00Z")
        .expect("valid time")
        .with_timezone(&Utc)
}

/// Deterministic pseudo-random noise in [0, 1).
fn noise(seed: usize) -> f64 {
    let x = (seed as u64)
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((x >> 33) % 1000) as f64 / 1000.0
}

fn value(vital: VitalType, unwell: bool, round: usize, seed: usize) -> f64 {
    let n = noise(seed);
    let v = match (vital, unwell) {
        (VitalType::HeartRate, false) => 62.0 + 28.0 * n,
        (VitalType::HeartRate, true) => 95.0 + 40.0 * n,
        (VitalType::Spo2, false) => 95.0 + 4.5 * n,
        (VitalType::Spo2, true) => 85.0 + 8.0 * n,
        (VitalType::Temperature, false) => 36.4 + 0.9 * n,
        (VitalType::Temperature, true) => 38.0 + 2.5 * n,
        (VitalType::SystolicBp, false) => 110.0 + 20.0 * n,
        (VitalType::SystolicBp, true) => 150.0 - (round % 10) as f64 * 8.0 + 5.0 * n,
        (VitalType::DiastolicBp, _) => 70.0 + 15.0 * n,
    };
    (v * 10.0).round() / 10.0
}

/// Batches of base64 record data, and the processing time of each batch.
pub fn dataset() -> Vec<(Vec<String>, DateTime<Utc>)> {
    let mut records = Vec::with_capacity(PATIENTS * ROUNDS * 5);
    for round in 0..ROUNDS {
        for p in 0..PATIENTS {
            let unwell = p % 10 == 0;
            for (k, vital) in VitalType::ALL.into_iter().enumerate() {
                let reading = Reading {
                    patient_id: format!("p-{p:04}"),
                    vital,
                    value: value(vital, unwell, round, (round * PATIENTS + p) * 5 + k),
                    unit: vital.unit().to_string(),
                    timestamp: t0() + Duration::seconds(round as i64 * 60 + (p % 60) as i64),
                    device_id: format!("dev-{p:04}"),
                };
                let lineage = Lineage {
                    correlation_id: format!("req-{round}-{p}"),
                    causation_id: format!("req-{round}-{p}"),
                };
                let env = Envelope::new(
                    reading.event_id(),
                    "ingest",
                    lineage,
                    reading.timestamp,
                    reading,
                );
                let json = serde_json::to_vec(&env).expect("serialises");
                records.push((
                    base64::engine::general_purpose::STANDARD.encode(json),
                    env.data.timestamp,
                ));
            }
        }
    }
    records
        .chunks(BATCH)
        .map(|chunk| {
            let newest = chunk.iter().map(|(_, t)| *t).max().unwrap_or_else(t0);
            (
                chunk.iter().map(|(d, _)| d.clone()).collect(),
                newest + Duration::seconds(5),
            )
        })
        .collect()
}

/// What the handler does to one batch, minus I/O: decode (with the handler's functions),
/// group by patient, apply. The base64 decoding is what the Lambda event's deserialisation
/// (`detect::kinesis::Event`) does to each record's `data` before the handler runs.
pub fn process(
    rules: &RuleSet,
    states: &mut HashMap<String, PatientState>,
    batch: &[String],
    now: DateTime<Utc>,
) -> usize {
    // The records' data, as the Lambda event's deserialisation hands it to the handler.
    let mut data: Vec<Vec<u8>> = Vec::with_capacity(batch.len());
    for record in batch {
        if let Ok(bytes) = kinesis::decode_data(record) {
            data.push(bytes);
        }
    }
    // As the handler: room for every record up front.
    let mut decoded = Vec::with_capacity(data.len());
    for (index, bytes) in data.iter().enumerate() {
        if let Ok(envelope) = decode_record(bytes) {
            decoded.push(Decoded { index, envelope });
        }
    }
    apply_decoded(rules, states, &decoded, now)
}

/// Groups decoded records by patient and applies each patient's readings to its state, as
/// the handler does; returns the alerts + resolutions.
fn apply_decoded(
    rules: &RuleSet,
    states: &mut HashMap<String, PatientState>,
    decoded: &[Decoded<'_>],
    now: DateTime<Utc>,
) -> usize {
    let mut alerts = 0;
    for readings in group_by_patient(decoded) {
        let patient = readings.patient_id;
        // The stand-in for the state table: load, apply, keep.
        let state = match states.get_mut(patient) {
            Some(state) => state,
            None => states.entry(patient.to_string()).or_default(),
        };
        let out = rules.apply_inputs(state, patient, &readings.inputs, now);
        alerts += out.alerts.len() + out.resolutions.len();
    }
    alerts
}

/// One benchmark iteration: every batch, applied to `states` (empty at the start of each
/// iteration). Returns the number of alerts + resolutions, and the states (dropped by the
/// caller, outside the measurement).
pub fn run_all(
    rules: &RuleSet,
    data: &[(Vec<String>, DateTime<Utc>)],
    mut states: HashMap<String, PatientState>,
) -> (usize, HashMap<String, PatientState>) {
    let mut alerts = 0;
    for (batch, now) in data {
        alerts += black_box(process(rules, &mut states, batch, *now));
    }
    (alerts, states)
}

/// Decodes every record (base64 + envelope + JSON) without evaluating.
pub fn decode_all(data: &[(Vec<String>, DateTime<Utc>)]) {
    for (batch, _) in data {
        for record in batch {
            let bytes = kinesis::decode_data(record).unwrap_or_default();
            black_box(decode_record(&bytes).ok());
        }
    }
}

#[allow(dead_code)] // not used by examples/profile_detect.rs
/// Each batch as the Lambda invocation's JSON (what the runtime hands the function), for the
/// side-by-side with the baseline (issue 15).
pub fn invocations(data: &[(Vec<String>, DateTime<Utc>)]) -> Vec<(Vec<u8>, DateTime<Utc>)> {
    data.iter()
        .map(|(batch, now)| {
            let records: Vec<serde_json::Value> = batch
                .iter()
                .enumerate()
                .map(|(i, record)| {
                    let sequence = format!("49{i:040}");
                    serde_json::json!({
                        "kinesis": {
                            "kinesisSchemaVersion": "1.0",
                            "partitionKey": "p",
                            "sequenceNumber": sequence,
                            "data": record,
                            "approximateArrivalTimestamp": now.timestamp() as f64,
                        },
                        "eventSource": "aws:kinesis",
                        "eventVersion": "1.0",
                        "eventID": format!("shardId-000000000000:{sequence}"),
                        "eventName": "aws:kinesis:record",
                        "invokeIdentityArn": "arn:aws:iam::123456789012:role/bench",
                        "awsRegion": "us-east-1",
                        "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/bench",
                    })
                })
                .collect();
            let json =
                serde_json::to_vec(&serde_json::json!({ "Records": records })).expect("serialises");
            (json, *now)
        })
        .collect()
}

#[allow(dead_code)] // not used by examples/profile_detect.rs
/// The handler's path from the invocation JSON: `detect::kinesis::Event` (base64-simd),
/// then [`decode_record`], [`group_by_patient`] and the engine, as [`process`].
pub fn handler_path(
    rules: &RuleSet,
    states: &mut HashMap<String, PatientState>,
    json: &[u8],
    now: DateTime<Utc>,
) -> usize {
    let Ok(event) = serde_json::from_slice::<kinesis::Event>(json) else {
        return 0;
    };
    let mut decoded = Vec::with_capacity(event.records.len());
    for (index, record) in event.records.iter().enumerate() {
        if let Ok(envelope) = decode_record(&record.kinesis.data) {
            decoded.push(Decoded { index, envelope });
        }
    }
    apply_decoded(rules, states, &decoded, now)
}

#[allow(dead_code)] // not used by examples/profile_detect.rs
/// The baseline: the same batch written the obvious way, `aws_lambda_events::KinesisEvent`
/// and `serde_json` into owned `Envelope<Reading>` values, grouped in a `BTreeMap` of owned
/// patient ids, then the same engine.
pub fn baseline_path(
    rules: &RuleSet,
    states: &mut HashMap<String, PatientState>,
    json: &[u8],
    now: DateTime<Utc>,
) -> usize {
    use aws_lambda_events::event::kinesis::KinesisEvent;
    use domain::detection::Input;
    let Ok(event) = serde_json::from_slice::<KinesisEvent>(json) else {
        return 0;
    };
    let envelopes: Vec<Envelope<Reading>> = event
        .records
        .iter()
        .filter_map(|record| serde_json::from_slice::<Envelope<Reading>>(&record.kinesis.data).ok())
        .filter(|e| e.event_type == "ReadingRecorded")
        .collect();
    let mut by_patient: std::collections::BTreeMap<String, Vec<Input<'_>>> = Default::default();
    for e in &envelopes {
        by_patient
            .entry(e.data.patient_id.clone())
            .or_default()
            .push(Input {
                event_id: &e.event_id,
                correlation_id: &e.correlation_id,
                reading: &e.data,
                received_at: Some(e.timestamp),
            });
    }
    let mut alerts = 0;
    for (patient, inputs) in by_patient {
        let state = states.entry(patient.clone()).or_default();
        let out = rules.apply_inputs(state, &patient, &inputs, now);
        alerts += out.alerts.len() + out.resolutions.len();
    }
    alerts
}

/// One way of handling a batch's invocation JSON (the handler's path or the baseline).
#[allow(dead_code)] // not used by examples/profile_detect.rs
pub type BatchPath =
    fn(&RuleSet, &mut HashMap<String, PatientState>, &[u8], DateTime<Utc>) -> usize;

#[allow(dead_code)] // not used by examples/profile_detect.rs
/// Every invocation through `path`, from empty states.
pub fn run_invocations(
    rules: &RuleSet,
    data: &[(Vec<u8>, DateTime<Utc>)],
    mut states: HashMap<String, PatientState>,
    path: BatchPath,
) -> (usize, HashMap<String, PatientState>) {
    let mut alerts = 0;
    for (json, now) in data {
        alerts += black_box(path(rules, &mut states, json, *now));
    }
    (alerts, states)
}
