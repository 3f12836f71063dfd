//! Vital-sign readings: the types and the validation of readings sent to `POST /readings`.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::envelope::EventData;

pub mod spec_shape;
use spec_shape::Kind;

/// The most readings one request may carry (also Kinesis `PutRecords`' limit).
pub const MAX_READINGS_PER_REQUEST: usize = 500;
/// The largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// How far in the future a reading's timestamp may be (device clock skew).
pub const MAX_CLOCK_SKEW: Duration = Duration::minutes(5);
/// How old a reading may be when it arrives (devices upload after being offline).
pub const MAX_READING_AGE: Duration = Duration::days(7);

/// The kind of vital sign measured.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum VitalType {
    HeartRate,
    Spo2,
    Temperature,
    SystolicBp,
    DiastolicBp,
}

impl VitalType {
    pub const ALL: [VitalType; 5] = [
        VitalType::HeartRate,
        VitalType::Spo2,
        VitalType::Temperature,
        VitalType::SystolicBp,
        VitalType::DiastolicBp,
    ];

    /// The name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            VitalType::HeartRate => "heart_rate",
            VitalType::Spo2 => "spo2",
            VitalType::Temperature => "temperature",
            VitalType::SystolicBp => "systolic_bp",
            VitalType::DiastolicBp => "diastolic_bp",
        }
    }

    pub fn parse(name: &str) -> Option<VitalType> {
        VitalType::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// The one unit readings of this type are sent in.
    pub fn unit(self) -> &'static str {
        match self {
            VitalType::HeartRate => "bpm",
            VitalType::Spo2 => "%",
            VitalType::Temperature => "celsius",
            VitalType::SystolicBp | VitalType::DiastolicBp => "mmHg",
        }
    }

    /// The physiologically possible range; values outside it are device or entry errors.
    pub fn plausible_range(self) -> (f64, f64) {
        match self {
            VitalType::HeartRate => (20.0, 300.0),
            VitalType::Spo2 => (50.0, 100.0),
            VitalType::Temperature => (25.0, 45.0),
            VitalType::SystolicBp => (40.0, 300.0),
            VitalType::DiastolicBp => (20.0, 200.0),
        }
    }
}

/// One validated vital-sign reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, EventData)]
#[event_data(event_type = "ReadingRecorded")]
#[serde(rename_all = "camelCase")]
pub struct Reading {
    pub patient_id: String,
    #[serde(rename = "type")]
    pub vital: VitalType,
    pub value: f64,
    pub unit: String,
    #[serde(deserialize_with = "crate::timestamp::deserialize")]
    pub timestamp: DateTime<Utc>,
    pub device_id: String,
}

impl Reading {
    /// The reading's identity: a device measures one value of one type at one instant.
    /// A client that retries a request therefore produces the same event ids.
    pub fn event_id(&self) -> String {
        crate::ids::deterministic_id(&[
            "reading",
            &self.patient_id,
            &self.device_id,
            self.vital.as_str(),
            &self.timestamp.to_rfc3339(),
        ])
    }
}

/// One problem with one field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Where the problem is, e.g. `readings[3].value` (or `body`).
    pub field: String,
    pub message: String,
}

/// Why a request was rejected as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// The body is larger than [`MAX_BODY_BYTES`] or carries more than [`MAX_READINGS_PER_REQUEST`].
    TooLarge(String),
    /// The body is not JSON, or a field is invalid; every bad field is listed.
    Invalid(Vec<FieldError>),
}

const FIELDS: [&str; 6] = [
    "patientId",
    "type",
    "value",
    "unit",
    "timestamp",
    "deviceId",
];

/// Parses and validates a request body: one reading object or an array of them, in the
/// original shape or the product spec's ([`spec_shape`]); a reading without `deviceId` gets
/// `default_device` ([`spec_shape::default_device_id`] of the caller). Either every reading
/// is valid and all are returned, or nothing is.
pub fn parse_readings(
    body: &[u8],
    now: DateTime<Utc>,
    default_device: &str,
) -> Result<Vec<Reading>, RequestError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(RequestError::TooLarge(format!(
            "request body is {} bytes; the limit is {MAX_BODY_BYTES}",
            body.len()
        )));
    }
    let json: Value = crate::strict_json::from_slice(body).map_err(|e| {
        RequestError::Invalid(vec![FieldError {
            field: "body".into(),
            message: format!("not valid JSON: {e}"),
        }])
    })?;
    let (items, indexed) = match json {
        Value::Array(items) => (items, true),
        Value::Object(_) => (vec![json], false),
        _ => {
            return Err(RequestError::Invalid(vec![FieldError {
                field: "body".into(),
                message: "expected a reading object or an array of readings".into(),
            }]));
        }
    };
    if items.is_empty() {
        return Err(RequestError::Invalid(vec![FieldError {
            field: "body".into(),
            message: "the array of readings is empty".into(),
        }]));
    }
    if items.len() > MAX_READINGS_PER_REQUEST {
        return Err(RequestError::TooLarge(format!(
            "{} readings in one request; the limit is {MAX_READINGS_PER_REQUEST}",
            items.len()
        )));
    }
    let mut readings = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let prefix = if indexed {
            format!("readings[{i}].")
        } else {
            String::new()
        };
        match validate_reading(item, now, default_device) {
            Ok(split) => readings.extend(split),
            Err(problems) => {
                errors.extend(problems.into_iter().map(|(field, message)| FieldError {
                    field: format!("{prefix}{field}"),
                    message,
                }))
            }
        }
    }
    if !errors.is_empty() {
        return Err(RequestError::Invalid(errors));
    }
    // A "120/80" blood pressure is two readings: the stream's limit counts those.
    if readings.len() > MAX_READINGS_PER_REQUEST {
        return Err(RequestError::TooLarge(format!(
            "{} readings in one request once blood pressures are split; the limit is {MAX_READINGS_PER_REQUEST}",
            readings.len()
        )));
    }
    Ok(readings)
}

type Problems = Vec<(String, String)>;

/// One reading object: one reading, or two for a `BloodPressure` `"120/80"`
/// ([`spec_shape`]).
fn validate_reading(
    item: &Value,
    now: DateTime<Utc>,
    default_device: &str,
) -> Result<Vec<Reading>, Problems> {
    let Some(obj) = item.as_object() else {
        return Err(vec![("".into(), "expected a reading object".into())]);
    };
    let mut problems: Problems = obj
        .keys()
        .filter(|k| !FIELDS.contains(&k.as_str()))
        .map(|k| (k.clone(), "unknown field".to_string()))
        .collect();

    let patient_id = identifier(obj, "patientId", MAX_PATIENT_ID_LEN, &mut problems);
    let device_id = match obj.get("deviceId") {
        None | Some(Value::Null) => Some(default_device.to_string()),
        Some(_) => identifier(obj, "deviceId", MAX_DEVICE_ID_LEN, &mut problems),
    };
    let kind = match obj.get("type") {
        None | Some(Value::Null) => missing("type", &mut problems),
        Some(Value::String(s)) => spec_shape::kind(s).or_else(|| {
            let known = spec_shape::known_types();
            problems.push((
                "type".into(),
                format!("unknown type {s:?}; expected one of {known}"),
            ));
            None
        }),
        Some(_) => wrong_kind("type", "a string", &mut problems),
    };
    // (type, value) pairs: one, or systolic and diastolic.
    let values: Option<Vec<(VitalType, f64)>> = match (kind, obj.get("value")) {
        (_, None | Some(Value::Null)) => missing("value", &mut problems),
        (Some(Kind::BloodPressure), Some(Value::String(s))) => {
            match spec_shape::split_blood_pressure(s) {
                Some((sys, dia)) => Some(vec![
                    (VitalType::SystolicBp, sys),
                    (VitalType::DiastolicBp, dia),
                ]),
                None => wrong_kind("value", BP_VALUE, &mut problems),
            }
        }
        (Some(Kind::BloodPressure), Some(_)) => wrong_kind("value", BP_VALUE, &mut problems),
        (kind, Some(Value::Number(n))) => match n.as_f64() {
            Some(v) if v.is_finite() => match kind {
                Some(Kind::One(vital)) => Some(vec![(vital, v)]),
                _ => None,
            },
            _ => {
                problems.push(("value".into(), "must be a finite number".into()));
                None
            }
        },
        (_, Some(_)) => wrong_kind("value", "a number", &mut problems),
    };
    let unit = match obj.get("unit") {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(s)) => Some(Some(s.clone())),
        Some(_) => wrong_kind("unit", "a string", &mut problems),
    };
    let timestamp = match obj.get("timestamp") {
        None | Some(Value::Null) => missing("timestamp", &mut problems),
        Some(Value::String(s)) => match DateTime::parse_from_rfc3339(s) {
            Ok(t) => {
                let t = t.with_timezone(&Utc);
                if t > now + MAX_CLOCK_SKEW {
                    problems.push((
                        "timestamp".into(),
                        format!("{s} is more than 5 minutes in the future"),
                    ));
                    None
                } else if t < now - MAX_READING_AGE {
                    problems.push(("timestamp".into(), format!("{s} is older than 7 days")));
                    None
                } else {
                    Some(t)
                }
            }
            Err(e) => {
                problems.push((
                    "timestamp".into(),
                    format!("not an RFC 3339 date-time ({e})"),
                ));
                None
            }
        },
        Some(_) => wrong_kind("timestamp", "an RFC 3339 string", &mut problems),
    };

    let mut units = Vec::new();
    for (vital, value) in values.iter().flatten() {
        // A given unit must be one of the type's spellings; none given: the type's unit.
        match unit.as_ref().and_then(Option::as_deref) {
            Some(given) => match spec_shape::canonical_unit(*vital, given) {
                Some(canonical) => units.push(canonical),
                None => problems.push((
                    "unit".into(),
                    format!(
                        "{} is measured in {:?}, got {given:?}",
                        vital.as_str(),
                        vital.unit()
                    ),
                )),
            },
            None => units.push(vital.unit()),
        }
        let (min, max) = vital.plausible_range();
        if !(min..=max).contains(value) {
            problems.push((
                "value".into(),
                format!(
                    "{value} is outside the plausible range {min}..={max} {} for {}",
                    vital.unit(),
                    vital.as_str()
                ),
            ));
        }
    }
    problems.dedup();

    match (patient_id, values, timestamp, device_id) {
        (Some(patient_id), Some(values), Some(timestamp), Some(device_id))
            if problems.is_empty() =>
        {
            Ok(values
                .into_iter()
                .zip(units)
                .map(|((vital, value), unit)| Reading {
                    patient_id: patient_id.clone(),
                    vital,
                    value,
                    unit: unit.to_string(),
                    timestamp,
                    device_id: device_id.clone(),
                })
                .collect())
        }
        _ => Err(problems),
    }
}

const BP_VALUE: &str = "a \"systolic/diastolic\" string such as \"120/80\" for BloodPressure \
                        (or send SystolicBP and DiastolicBP readings with number values)";

fn missing<T>(field: &str, problems: &mut Problems) -> Option<T> {
    problems.push((field.into(), "is required".into()));
    None
}

fn wrong_kind<T>(field: &str, expected: &str, problems: &mut Problems) -> Option<T> {
    problems.push((field.into(), format!("must be {expected}")));
    None
}

/// The longest patient id accepted (`patientId` of a reading, of an emergency).
pub const MAX_PATIENT_ID_LEN: usize = 64;
/// The longest device id accepted.
pub const MAX_DEVICE_ID_LEN: usize = 128;

/// Whether `s` is an identifier: 1 to `max_len` characters of `[A-Za-z0-9._:-]` (safe in
/// logs, keys and ids).
pub fn is_identifier(s: &str, max_len: usize) -> bool {
    !s.is_empty()
        && s.len() <= max_len
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-'))
}

/// A non-empty identifier of at most `max_len` characters from `[A-Za-z0-9._:-]`.
fn identifier(
    obj: &Map<String, Value>,
    field: &str,
    max_len: usize,
    problems: &mut Problems,
) -> Option<String> {
    match obj.get(field) {
        None | Some(Value::Null) => missing(field, problems),
        Some(Value::String(s)) => {
            if !is_identifier(s, max_len) {
                problems.push((
                    field.into(),
                    format!(
                        "must be 1 to {max_len} characters of A-Z, a-z, 0-9, '.', '_', ':', '-'"
                    ),
                ));
                None
            } else {
                Some(s.clone())
            }
        }
        Some(_) => wrong_kind(field, "a string", problems),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-24T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    const DEFAULT_DEVICE: &str = "manual:w-1";

    fn good() -> Value {
        json!({"patientId": "p-1", "type": "heart_rate", "value": 72, "unit": "bpm",
               "timestamp": "2026-11-24T09:59:00Z", "deviceId": "dev-1"})
    }

    fn errors(body: &Value) -> Vec<FieldError> {
        match parse_readings(body.to_string().as_bytes(), now(), DEFAULT_DEVICE) {
            Err(RequestError::Invalid(errors)) => errors,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn accepts_one_object_or_an_array() {
        let one = parse_readings(good().to_string().as_bytes(), now(), DEFAULT_DEVICE).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].vital, VitalType::HeartRate);
        let many = parse_readings(
            json!([good(), good()]).to_string().as_bytes(),
            now(),
            DEFAULT_DEVICE,
        )
        .unwrap();
        assert_eq!(many.len(), 2);
    }

    #[test]
    fn names_every_bad_field_with_its_index() {
        let mut bad = good();
        bad["type"] = json!("glucose");
        let mut bad2 = good();
        bad2.as_object_mut().unwrap().remove("patientId");
        bad2["value"] = json!("high");
        let errs = errors(&json!([good(), bad, bad2]));
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "readings[1].type",
                "readings[2].patientId",
                "readings[2].value"
            ]
        );
        assert!(errs[0].message.contains("unknown type \"glucose\""));
    }

    #[test]
    fn rejects_out_of_range_wrong_unit_unknown_field_and_bad_time() {
        let mut bad = good();
        bad["value"] = json!(1000);
        bad["unit"] = json!("bps");
        bad["patientID"] = json!("typo");
        bad["timestamp"] = json!("yesterday");
        let errs = errors(&bad);
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["patientID", "timestamp", "unit", "value"]);
    }

    #[test]
    fn rejects_future_and_stale_timestamps() {
        let mut future = good();
        future["timestamp"] = json!("2026-11-24T10:06:00Z");
        assert_eq!(errors(&future)[0].field, "timestamp");
        let mut stale = good();
        stale["timestamp"] = json!("2026-11-01T10:00:00Z");
        assert_eq!(errors(&stale)[0].field, "timestamp");
    }

    #[test]
    fn rejects_non_json_nan_and_empty() {
        let err = parse_readings(b"{\"value\": NaN}", now(), DEFAULT_DEVICE).unwrap_err();
        assert!(matches!(err, RequestError::Invalid(ref e) if e[0].field == "body"));
        assert_eq!(errors(&json!([]))[0].field, "body");
        assert_eq!(errors(&json!(42))[0].field, "body");
    }

    #[test]
    fn rejects_too_many_readings_and_too_large_bodies() {
        let body = json!(vec![good(); MAX_READINGS_PER_REQUEST + 1]).to_string();
        assert!(matches!(
            parse_readings(body.as_bytes(), now(), DEFAULT_DEVICE),
            Err(RequestError::TooLarge(m)) if m.contains("501 readings")
        ));
        let huge = vec![b' '; MAX_BODY_BYTES + 1];
        assert!(matches!(
            parse_readings(&huge, now(), DEFAULT_DEVICE),
            Err(RequestError::TooLarge(_))
        ));
    }

    #[test]
    fn rejects_a_key_given_twice_naming_it() {
        let body = br#"{"patientId": "p-1", "type": "heart_rate", "value": 72, "unit": "bpm",
                        "timestamp": "2026-11-24T09:59:00Z", "deviceId": "dev-1", "value": 250}"#;
        let err = parse_readings(body, now(), DEFAULT_DEVICE).unwrap_err();
        let RequestError::Invalid(errors) = err else {
            panic!("expected Invalid, got {err:?}");
        };
        assert_eq!(errors[0].field, "body");
        assert!(
            errors[0].message.contains("duplicate key \"value\""),
            "{errors:?}"
        );
        // Nested too: a key twice in the second reading of an array.
        let mut second = good().to_string();
        second.insert_str(1, r#""unit": "bpm", "#);
        let body = format!("[{}, {second}]", good());
        assert!(matches!(
            parse_readings(body.as_bytes(), now(), DEFAULT_DEVICE),
            Err(RequestError::Invalid(e)) if e[0].message.contains("duplicate key \"unit\"")
        ));
    }

    #[test]
    fn event_id_is_the_reading_identity() {
        let a = parse_readings(good().to_string().as_bytes(), now(), DEFAULT_DEVICE).unwrap();
        let mut other = good();
        other["value"] = json!(73);
        let b = parse_readings(other.to_string().as_bytes(), now(), DEFAULT_DEVICE).unwrap();
        // Same device, type and instant: the same reading, whatever the value says.
        assert_eq!(a[0].event_id(), b[0].event_id());
        let mut later = good();
        later["timestamp"] = json!("2026-11-24T09:59:01Z");
        let c = parse_readings(later.to_string().as_bytes(), now(), DEFAULT_DEVICE).unwrap();
        assert_ne!(a[0].event_id(), c[0].event_id());
    }
}
