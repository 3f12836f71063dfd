//! What the patient and readings routes share (docs/read-side.md): who may read a patient,
//! the time window of a request, and a patient's recent vitals, merged from the vitals
//! table's blocks and the hours still open in detect's state.

use application::vitals::StoredBlock;
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use chrono::{DateTime, Duration, Utc};
use domain::access::{Action, Caller, Lookup, authorize, roster_lookup};
use domain::detection::PatientState;
use domain::reading::VitalType;
use domain::routing::DirectoryEntry;
use domain::vitals::{self, HOUR_MS, MAX_WINDOW_MS, VitalSample, hour_of};
use lambda_kit::http::HttpError;
use serde_json::{Value, json};

use crate::Deps;
use crate::paging::{param, unavailable};

/// Blocks read per vitals-table query.
pub const BLOCKS_PER_QUERY: usize = 24;
/// Vitals-table queries one request makes at most.
pub const MAX_BLOCK_QUERIES: usize = 10;

/// The patient's directory entry, if `caller` may read the patient (403 otherwise): one
/// read of the entry (an operator needs it too, for the answer), a second of the village
/// roster only when the entry alone does not decide.
pub async fn authorized_patient(
    deps: &Deps<'_>,
    caller: &Caller,
    patient_id: &str,
) -> Result<Option<DirectoryEntry>, HttpError> {
    let mut facts = deps
        .access
        .facts(&Lookup {
            patient_ids: vec![patient_id.to_string()],
            ..Lookup::default()
        })
        .await
        .map_err(|e| unavailable("the directory", e))?;
    let villages = roster_lookup(caller, Action::ReadPatient, [patient_id], &facts);
    if !villages.is_empty() {
        let rosters = deps
            .access
            .facts(&Lookup {
                villages,
                ..Lookup::default()
            })
            .await
            .map_err(|e| unavailable("the directory", e))?;
        facts.merge(rosters);
    }
    authorize(caller, Action::ReadPatient, [patient_id], &facts)
        .map_err(|denied| HttpError::forbidden(denied.reason))?;
    Ok(facts.patients.get(patient_id).cloned())
}

/// Detect's state of the patient (the hours not written to the vitals table yet).
pub async fn state(deps: &Deps<'_>, patient_id: &str) -> Result<PatientState, HttpError> {
    Ok(deps
        .states
        .load(patient_id)
        .await
        .map_err(|e| unavailable("the detection state", e))?
        .value)
}

fn bad(code: &'static str, message: String) -> HttpError {
    HttpError::new(400, code, message)
}

/// An RFC 3339 query parameter.
pub fn time_param(
    request: &ApiGatewayV2httpRequest,
    name: &str,
) -> Result<Option<DateTime<Utc>>, HttpError> {
    match param(request, name)
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        None => Ok(None),
        Some(text) => DateTime::parse_from_rfc3339(text)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| {
                bad(
                    "InvalidParameter",
                    format!("{name} must be an RFC 3339 time; got {text:?}"),
                )
            }),
    }
}

/// `from` and `to` (Unix ms): by default the 24 hours before `now`; `from` before `to`, at
/// most 7 days apart.
pub fn window(
    request: &ApiGatewayV2httpRequest,
    now: DateTime<Utc>,
) -> Result<(i64, i64), HttpError> {
    let to = time_param(request, "to")?.unwrap_or(now);
    let from = time_param(request, "from")?.unwrap_or(to - Duration::hours(24));
    let (from, to) = (from.timestamp_millis(), to.timestamp_millis());
    if from >= to {
        return Err(bad("InvalidWindow", "from must be before to".to_string()));
    }
    if to - from > MAX_WINDOW_MS {
        return Err(bad(
            "InvalidWindow",
            "the window from..to is at most 7 days".to_string(),
        ));
    }
    Ok((from, to))
}

/// The `metric` filter (400 unless a known vital type).
pub fn metric_param(request: &ApiGatewayV2httpRequest) -> Result<Option<VitalType>, HttpError> {
    match param(request, "metric")
        .map(str::trim)
        .filter(|m| !m.is_empty())
    {
        None => Ok(None),
        Some(name) => VitalType::parse(name).map(Some).ok_or_else(|| {
            let known: Vec<&str> = VitalType::ALL.iter().map(|v| v.as_str()).collect();
            bad(
                "InvalidParameter",
                format!("metric must be one of {}; got {name:?}", known.join(", ")),
            )
        }),
    }
}

/// A patient's samples of `[from, to]` after `after` (a position in the list's order),
/// read hour by hour: the vitals table's blocks, then the state's open hours. Stops once
/// `want` samples are certain (every block of their hours read) or after
/// [`MAX_BLOCK_QUERIES`] queries. Returns the samples in order (repeats dropped) and
/// the position to continue after when more may follow.
pub async fn samples(
    deps: &Deps<'_>,
    patient_id: &str,
    (from, to): (i64, i64),
    metric: Option<VitalType>,
    after: Option<&Position>,
    want: usize,
    state: &PatientState,
) -> Result<(Vec<VitalSample>, Option<Position>), HttpError> {
    let start = after.map_or(from, |p| p.at.max(from));
    let keep = |s: &VitalSample| {
        s.at >= from
            && s.at <= to
            && metric.is_none_or(|m| s.metric == m)
            && after.is_none_or(|p| Position::of(s) > *p)
    };
    let mut found: Vec<VitalSample> = Vec::new();
    let mut sort_key: Option<String> = None;
    // Hours before this one have every block read.
    let mut complete_before = hour_of(start);
    let mut exhausted = false;
    for _ in 0..MAX_BLOCK_QUERIES {
        let page = deps
            .vitals
            .blocks(
                patient_id,
                hour_of(start),
                hour_of(to),
                sort_key.as_deref(),
                BLOCKS_PER_QUERY,
            )
            .await
            .map_err(|e| unavailable("the recent vitals", e))?;
        for StoredBlock { block, .. } in &page.blocks {
            let decoded = block
                .samples()
                .map_err(|e| HttpError::new(500, "Internal", format!("a stored block: {e}")))?;
            found.extend(decoded.into_iter().filter(|s| keep(s)));
            complete_before = complete_before.max(block.start);
        }
        found = vitals::merge(found);
        match page.next {
            None => {
                exhausted = true;
                break;
            }
            Some(next) => sort_key = Some(next),
        }
        let certain = found.iter().filter(|s| s.at < complete_before).count();
        if certain > want {
            break;
        }
    }
    // The hours detect has not written yet.
    for hour in &state.vitals {
        if hour.start + HOUR_MS <= hour_of(start) || hour.start > to {
            continue;
        }
        let decoded = vitals::decode(hour.start, &hour.devices, &hour.readings)
            .map_err(|e| HttpError::new(500, "Internal", format!("an open hour: {e}")))?;
        found.extend(decoded.into_iter().filter(|s| keep(s)));
    }
    let mut found = vitals::merge(found);
    if !exhausted {
        // Only hours whose blocks were all read are certain.
        found.retain(|s| s.at < complete_before);
    }
    let more = !exhausted || found.len() > want;
    found.truncate(want);
    let next = match found.last() {
        Some(last) if more => Some(Position::of(last)),
        // Nothing kept in every hour read so far: continue after them.
        None if more => Some(Position {
            at: complete_before - 1,
            metric: usize::MAX,
            device: String::new(),
        }),
        _ => None,
    };
    Ok((found, next))
}

/// A position in a patient's readings (time, metric, device), the order of the list.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Position {
    #[serde(rename = "a")]
    pub at: i64,
    #[serde(rename = "m")]
    pub metric: usize,
    #[serde(rename = "d")]
    pub device: String,
}

impl Position {
    pub fn of(sample: &VitalSample) -> Position {
        Position {
            at: sample.at,
            metric: VitalType::ALL
                .iter()
                .position(|m| *m == sample.metric)
                .unwrap_or_default(),
            device: sample.device.clone().unwrap_or_default(),
        }
    }
}

/// `{at, metric, value, unit, deviceId?}`.
pub fn reading_json(sample: &VitalSample) -> Value {
    let mut reading = json!({
        "at": DateTime::<Utc>::from_timestamp_millis(sample.at),
        "metric": sample.metric.as_str(),
        "value": sample.value,
        "unit": sample.metric.unit(),
    });
    if let (Some(device), Value::Object(fields)) = (&sample.device, &mut reading) {
        fields.insert("deviceId".into(), json!(device));
    }
    reading
}
