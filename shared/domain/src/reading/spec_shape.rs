//! The product spec's reading shape, accepted beside the original one (issue 16):
//! `{patientId, type: "HeartRate" | "SpO2" | "Temperature" | "BloodPressure" | ..., value,
//! timestamp}`, with `unit` and `deviceId` optional.
//!
//! - **Type names** match without regard to case or separators: `HeartRate`, `heart_rate`,
//!   `heart-rate` and `HEART RATE` are one type. Aliases: [`KIND_ALIASES`].
//! - **Unit** defaults to the type's one unit ([`VitalType::unit`]); a unit that is given
//!   may be spelled as in [`UNIT_ALIASES`] (any case) and is stored canonical.
//! - **Blood pressure** is either two readings (`SystolicBP` and `DiastolicBP`, each a
//!   number) or one `BloodPressure` reading whose value is the string `"120/80"`, which is
//!   split into a systolic and a diastolic reading (same patient, device and timestamp;
//!   their own event ids, as the type is part of the id).
//! - **deviceId** defaults to the caller ([`default_device_id`]).

use crate::access::{Caller, Role};

use super::{MAX_DEVICE_ID_LEN, VitalType};

/// What a `type` names: one vital, or a blood pressure pair to split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    One(VitalType),
    BloodPressure,
}

/// Accepted type names, normalised ([`normalise`]: lower case, letters and digits only).
pub const KIND_ALIASES: [(&str, Kind); 24] = [
    ("heartrate", Kind::One(VitalType::HeartRate)),
    ("hr", Kind::One(VitalType::HeartRate)),
    ("pulse", Kind::One(VitalType::HeartRate)),
    ("pulserate", Kind::One(VitalType::HeartRate)),
    ("spo2", Kind::One(VitalType::Spo2)),
    ("sao2", Kind::One(VitalType::Spo2)),
    ("oxygensaturation", Kind::One(VitalType::Spo2)),
    ("o2sat", Kind::One(VitalType::Spo2)),
    ("temperature", Kind::One(VitalType::Temperature)),
    ("temp", Kind::One(VitalType::Temperature)),
    ("bodytemperature", Kind::One(VitalType::Temperature)),
    ("systolicbp", Kind::One(VitalType::SystolicBp)),
    ("systolic", Kind::One(VitalType::SystolicBp)),
    ("bpsystolic", Kind::One(VitalType::SystolicBp)),
    ("systolicbloodpressure", Kind::One(VitalType::SystolicBp)),
    ("bloodpressuresystolic", Kind::One(VitalType::SystolicBp)),
    ("diastolicbp", Kind::One(VitalType::DiastolicBp)),
    ("diastolic", Kind::One(VitalType::DiastolicBp)),
    ("bpdiastolic", Kind::One(VitalType::DiastolicBp)),
    ("diastolicbloodpressure", Kind::One(VitalType::DiastolicBp)),
    ("bloodpressurediastolic", Kind::One(VitalType::DiastolicBp)),
    ("bloodpressure", Kind::BloodPressure),
    ("bp", Kind::BloodPressure),
    ("nibp", Kind::BloodPressure),
];

/// Accepted unit spellings (compared in lower case, spaces removed), by canonical unit.
pub const UNIT_ALIASES: [(&str, &[&str]); 4] = [
    (
        "bpm",
        &["bpm", "beats/min", "/min", "1/min", "beatsperminute"],
    ),
    ("%", &["%", "percent"]),
    ("celsius", &["celsius", "°c", "c", "degc", "degreescelsius"]),
    ("mmHg", &["mmhg"]),
];

/// Lower case, ASCII letters and digits only: `Heart_Rate` -> `heartrate`.
fn normalise(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The kind a `type` names, if any.
pub fn kind(name: &str) -> Option<Kind> {
    let name = normalise(name);
    KIND_ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map(|(_, kind)| *kind)
}

/// The canonical unit of `vital` if `unit` is one of its spellings.
pub fn canonical_unit(vital: VitalType, unit: &str) -> Option<&'static str> {
    let spelled: String = unit
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect();
    UNIT_ALIASES
        .iter()
        .find(|(canonical, _)| *canonical == vital.unit())
        .filter(|(_, spellings)| spellings.contains(&spelled.as_str()))
        .map(|(canonical, _)| *canonical)
}

/// `"120/80"` (spaces allowed) as (systolic, diastolic).
pub fn split_blood_pressure(value: &str) -> Option<(f64, f64)> {
    let (systolic, diastolic) = value.split_once('/')?;
    let parse = |s: &str| s.trim().parse::<f64>().ok().filter(|v| v.is_finite());
    Some((parse(systolic)?, parse(diastolic)?))
}

/// The `deviceId` of a reading that names none: the posting device itself for a device
/// token (its id is its app client id, as the device binding and detection's per-device
/// progress know it); `manual:{id}` for a person (or service) entering readings by hand,
/// one device clock per person. Deterministic, so a retried request keeps its event ids.
/// Characters outside `[A-Za-z0-9._:-]` become `_`; at most [`MAX_DEVICE_ID_LEN`].
pub fn default_device_id(caller: &Caller) -> String {
    let raw = match caller.role {
        Role::Device => caller.id.clone(),
        _ => format!("manual:{}", caller.id),
    };
    let mut id: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    id.truncate(MAX_DEVICE_ID_LEN);
    if id.is_empty() {
        id = "manual".into();
    }
    id
}

/// The names a client may use, for error messages.
pub fn known_types() -> String {
    "HeartRate, SpO2, Temperature, SystolicBP, DiastolicBP, BloodPressure (\"120/80\"); \
     case and separators are ignored (heart_rate = HeartRate)"
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reading::{Reading, RequestError, parse_readings};
    use chrono::{DateTime, Utc};
    use serde_json::{Value, json};

    fn now() -> DateTime<Utc> {
        "2026-11-24T10:00:00Z".parse().unwrap()
    }

    fn parse(body: Value) -> Result<Vec<Reading>, RequestError> {
        parse_readings(body.to_string().as_bytes(), now(), "wearable-p-001")
    }

    fn invalid(body: Value) -> Vec<(String, String)> {
        match parse(body) {
            Err(RequestError::Invalid(errors)) => {
                errors.into_iter().map(|e| (e.field, e.message)).collect()
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn the_spec_shape_is_accepted_with_default_unit_and_device() {
        let readings = parse(json!([
            {"patientId": "p-1", "type": "HeartRate", "value": 72, "timestamp": "2026-11-24T09:59:00Z"},
            {"patientId": "p-1", "type": "SpO2", "value": 97, "timestamp": "2026-11-24T09:59:00Z"},
            {"patientId": "p-1", "type": "Temperature", "value": 36.8, "timestamp": "2026-11-24T09:59:00Z",
             "unit": "°C"},
        ]))
        .unwrap();
        let got: Vec<(VitalType, &str, &str)> = readings
            .iter()
            .map(|r| (r.vital, r.unit.as_str(), r.device_id.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (VitalType::HeartRate, "bpm", "wearable-p-001"),
                (VitalType::Spo2, "%", "wearable-p-001"),
                (VitalType::Temperature, "celsius", "wearable-p-001"),
            ]
        );
        // The same reading in the original shape has the same identity: one dedupe id.
        let original = parse(
            json!({"patientId": "p-1", "type": "heart_rate", "value": 72,
            "unit": "bpm", "timestamp": "2026-11-24T09:59:00Z", "deviceId": "wearable-p-001"}),
        )
        .unwrap();
        assert_eq!(original[0], readings[0]);
        assert_eq!(original[0].event_id(), readings[0].event_id());
    }

    #[test]
    fn a_blood_pressure_value_is_split_into_systolic_and_diastolic() {
        let readings = parse(json!({"patientId": "p-1", "type": "BloodPressure",
            "value": "150/95", "timestamp": "2026-11-24T09:59:00Z", "deviceId": "cuff-1"}))
        .unwrap();
        let got: Vec<(VitalType, f64, &str)> = readings
            .iter()
            .map(|r| (r.vital, r.value, r.unit.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (VitalType::SystolicBp, 150.0, "mmHg"),
                (VitalType::DiastolicBp, 95.0, "mmHg")
            ]
        );
        assert_ne!(readings[0].event_id(), readings[1].event_id());
        assert!(readings.iter().all(|r| r.device_id == "cuff-1"));
        // Or two readings, each a number.
        let two = parse(json!([
            {"patientId": "p-1", "type": "SystolicBP", "value": 150, "timestamp": "2026-11-24T09:59:00Z", "deviceId": "cuff-1"},
            {"patientId": "p-1", "type": "DiastolicBP", "value": 95, "timestamp": "2026-11-24T09:59:00Z", "deviceId": "cuff-1"},
        ]))
        .unwrap();
        assert_eq!(two, readings);
    }

    #[test]
    fn bad_spec_shaped_readings_name_the_field() {
        let at = "2026-11-24T09:59:00Z";
        let errors = invalid(
            json!({"patientId": "p-1", "type": "BloodPressure", "value": 120, "timestamp": at}),
        );
        assert_eq!(errors[0].0, "value");
        assert!(errors[0].1.contains("120/80"), "{errors:?}");
        let errors = invalid(
            json!({"patientId": "p-1", "type": "BloodPressure", "value": "400/80", "timestamp": at}),
        );
        assert_eq!(errors[0].0, "value");
        assert!(errors[0].1.contains("systolic_bp"), "{errors:?}");
        let errors = invalid(
            json!({"patientId": "p-1", "type": "HeartRate", "value": 72, "unit": "Hz", "timestamp": at}),
        );
        assert_eq!(
            errors,
            [(
                "unit".to_string(),
                "heart_rate is measured in \"bpm\", got \"Hz\"".to_string()
            )]
        );
        let errors =
            invalid(json!({"patientId": "p-1", "type": "Mood", "value": 3, "timestamp": at}));
        assert_eq!(errors[0].0, "type");
        assert!(errors[0].1.contains("HeartRate, SpO2"), "{errors:?}");
        let errors = invalid(
            json!({"patientId": "p-1", "type": "HeartRate", "value": 72, "timestamp": at, "deviceId": ""}),
        );
        assert_eq!(errors[0].0, "deviceId");
    }

    #[test]
    fn split_blood_pressures_count_against_the_request_limit() {
        let bp = json!({"patientId": "p-1", "type": "BloodPressure", "value": "120/80",
                        "timestamp": "2026-11-24T09:59:00Z"});
        let body = json!(vec![bp; 251]);
        assert!(
            matches!(parse(body), Err(RequestError::TooLarge(m)) if m.contains("502 readings"))
        );
    }

    #[test]
    fn type_names_ignore_case_and_separators() {
        for name in [
            "HeartRate",
            "heart_rate",
            "heart-rate",
            "HEART RATE",
            "Pulse",
        ] {
            assert_eq!(kind(name), Some(Kind::One(VitalType::HeartRate)), "{name}");
        }
        assert_eq!(kind("SpO2"), Some(Kind::One(VitalType::Spo2)));
        assert_eq!(kind("spo2"), Some(Kind::One(VitalType::Spo2)));
        assert_eq!(kind("Temperature"), Some(Kind::One(VitalType::Temperature)));
        assert_eq!(kind("SystolicBP"), Some(Kind::One(VitalType::SystolicBp)));
        assert_eq!(
            kind("diastolic_bp"),
            Some(Kind::One(VitalType::DiastolicBp))
        );
        assert_eq!(kind("BloodPressure"), Some(Kind::BloodPressure));
        assert_eq!(kind("blood_pressure"), Some(Kind::BloodPressure));
        assert_eq!(kind("mood"), None);
        assert_eq!(kind(""), None);
        // Every canonical name is an alias of its own type.
        for vital in VitalType::ALL {
            assert_eq!(kind(vital.as_str()), Some(Kind::One(vital)));
        }
    }

    #[test]
    fn units_have_spellings_and_stay_canonical() {
        assert_eq!(canonical_unit(VitalType::HeartRate, "BPM"), Some("bpm"));
        assert_eq!(
            canonical_unit(VitalType::Temperature, "°C"),
            Some("celsius")
        );
        assert_eq!(canonical_unit(VitalType::SystolicBp, "mm Hg"), Some("mmHg"));
        assert_eq!(canonical_unit(VitalType::Spo2, "percent"), Some("%"));
        assert_eq!(canonical_unit(VitalType::Temperature, "fahrenheit"), None);
        assert_eq!(canonical_unit(VitalType::HeartRate, "%"), None);
    }

    #[test]
    fn blood_pressure_splits_on_the_slash() {
        assert_eq!(split_blood_pressure("120/80"), Some((120.0, 80.0)));
        assert_eq!(split_blood_pressure(" 135 / 85.5 "), Some((135.0, 85.5)));
        assert_eq!(split_blood_pressure("120"), None);
        assert_eq!(split_blood_pressure("120/"), None);
        assert_eq!(split_blood_pressure("a/b"), None);
        assert_eq!(split_blood_pressure("NaN/80"), None);
    }

    #[test]
    fn the_default_device_is_the_device_or_the_person() {
        assert_eq!(
            default_device_id(&Caller::new(Role::Device, "wearable-p-001")),
            "wearable-p-001"
        );
        assert_eq!(
            default_device_id(&Caller::new(Role::HealthWorker, "w-1")),
            "manual:w-1"
        );
        assert_eq!(
            default_device_id(&Caller::new(Role::Operator, "ops@example.org")),
            "manual:ops_example.org"
        );
        let long = "x".repeat(300);
        assert_eq!(
            default_device_id(&Caller::new(Role::Device, long)).len(),
            MAX_DEVICE_ID_LEN
        );
    }
}
