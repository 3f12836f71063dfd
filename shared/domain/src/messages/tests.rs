//! The catalogue: every file parses and has every message with the right placeholders,
//! drafts are marked, and every message of every event fits [`MAX_SEGMENTS`] SMS in every
//! language with worst-case values.

use chrono::{TimeZone, Utc};

use super::sms::{Encoding, sms_size};
use super::texts::*;
use super::*;
use crate::events::{AlertRaised, AlertResolved};
use crate::onboarding::MAX_TEXT_LEN;
use crate::reading::MAX_PATIENT_ID_LEN;
use crate::saga::FamilyStage;

const RULES: &str = include_str!("../../../../functions/detect/rules.yaml");

#[test]
fn every_file_parses_and_names_its_language() {
    for (tag, yaml) in FILES {
        let catalogue = parse(tag, yaml).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(catalogue.language, tag);
    }
    let tags: Vec<&str> = catalogues().iter().map(|c| c.language.as_str()).collect();
    assert_eq!(tags, ["en", "hi", "sw"]);
}

#[test]
fn every_language_has_every_message_with_exactly_its_placeholders() {
    for lang in catalogues() {
        let mut keys: Vec<&str> = lang.messages.keys().map(String::as_str).collect();
        let mut expected: Vec<&str> = Template::ALL.iter().map(|t| t.key()).collect();
        keys.sort();
        expected.sort();
        assert_eq!(keys, expected, "{}: messages", lang.language);
        for template in Template::ALL {
            let text = &lang.messages[template.key()];
            let mut used = placeholders_of(text);
            let mut wanted: Vec<String> = template
                .placeholders()
                .iter()
                .map(|p| p.to_string())
                .collect();
            used.sort();
            wanted.sort();
            assert_eq!(used, wanted, "{}.{}: {text}", lang.language, template.key());
            if wanted.iter().any(|p| p == "code") {
                // The inbound SMS parser reads "ACK <code>": the keyword stays in Latin.
                assert!(
                    text.contains("ACK {code}"),
                    "{}.{}",
                    lang.language,
                    template.key()
                );
            }
        }
        for severity in ["critical", "warning", "info"] {
            assert!(
                lang.severity.contains_key(severity),
                "{}: {severity}",
                lang.language
            );
        }
        assert_eq!(
            placeholders_of(&lang.labels["unregistered_patient"]),
            ["id"],
            "{}",
            lang.language
        );
    }
}

#[test]
fn translations_name_every_alert_type_of_the_rules() {
    let types: Vec<&str> = RULES
        .lines()
        .filter_map(|l| l.trim().strip_prefix("alertType:"))
        .map(str::trim)
        .collect();
    assert!(types.len() >= 5, "{types:?}");
    for lang in catalogues()
        .iter()
        .filter(|c| c.language != FALLBACK_LANGUAGE)
    {
        for t in &types {
            assert!(
                lang.conditions.contains_key(*t),
                "{}: no name for {t}",
                lang.language
            );
        }
    }
}

#[test]
fn drafts_are_marked_as_needing_review_by_a_native_speaker() {
    for (tag, yaml) in FILES {
        let lang = parse(tag, yaml).unwrap();
        let marked = yaml.contains("NEEDS REVIEW BY A NATIVE SPEAKER");
        assert_eq!(
            marked, !lang.reviewed,
            "{tag}: the header and `reviewed` disagree"
        );
        if tag != FALLBACK_LANGUAGE {
            // Nobody has reviewed a translation yet: flip both when someone has.
            assert!(!lang.reviewed, "{tag}");
        }
    }
}

#[test]
fn a_language_without_a_file_reads_english_and_a_region_reads_its_language() {
    assert_eq!(catalogue("hi").language, "hi");
    assert_eq!(catalogue("hi-IN").language, "hi");
    assert_eq!(catalogue("SW").language, "sw");
    assert_eq!(catalogue("sw-KE").language, "sw");
    for unknown in ["luo", "mr", "", "en-KE", "x"] {
        assert_eq!(catalogue(unknown).language, "en", "{unknown:?}");
    }
}

fn alert(alert_type: &str, description: &str) -> AlertRaised {
    AlertRaised {
        alert_id: "0123456789abcdef0123456789abcdef".into(),
        patient_id: "p".repeat(MAX_PATIENT_ID_LEN),
        rule_id: "r".into(),
        alert_type: alert_type.into(),
        severity: crate::events::Severity::Critical,
        village: "v".into(),
        description: description.into(),
        evidence: vec![],
        detected_at: Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 0).unwrap(),
        late_by_seconds: None,
        auto_dispatch: true,
    }
}

fn resolved(alert_type: &str) -> AlertResolved {
    AlertResolved {
        alert_id: "0123456789abcdef0123456789abcdef".into(),
        patient_id: "p".into(),
        rule_id: "r".into(),
        alert_type: alert_type.into(),
        severity: crate::events::Severity::Critical,
        episode_start: Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 0).unwrap(),
        resolved_at: Utc.with_ymd_and_hms(2027, 1, 1, 0, 5, 0).unwrap(),
        reading_event_id: "e".into(),
    }
}

/// Realistic long values and the longest the onboarding API accepts, in Latin and
/// Devanagari script (a Devanagari name makes even an English SMS UCS-2).
fn names() -> Vec<String> {
    vec![
        "Amina".into(),
        "Chandrashekhar Venkataramanan Subramaniam".into(),
        "चंद्रशेखर वेंकटरमणन सुब्रमण्यम".into(),
        "Wanjiru Nyambura Kamau-Odhiambo".into(),
        "N".repeat(MAX_TEXT_LEN),
        "न".repeat(MAX_TEXT_LEN),
    ]
}

fn villages() -> Vec<String> {
    vec![
        "Kibera".into(),
        "Thiruvananthapuram Rural North".into(),
        "तिरुवनंतपुरम ग्रामीण उत्तर".into(),
        "V".repeat(MAX_TEXT_LEN),
    ]
}

/// Every SMS of every event in `lang`, with each combination of worst-case values.
fn every_sms(lang: &Catalogue) -> Vec<(String, String)> {
    let code = "ABCDEFGH"; // the longer of the two code lengths
    let long_reason =
        "fell at home and is not responding; heavy bleeding from the head. ".repeat(8);
    let reasons = [
        "collapsed",
        long_reason.as_str(),
        "बेहोश होकर गिर पड़े, सिर से खून बह रहा है",
    ];
    let types = [
        ("hypoxemia", "spo2 below 90 %"),
        (
            "spo2_signal_lost",
            "no SpO2 reading for over 15 minutes from a continuous monitor",
        ),
        (
            "a_rule_nobody_translated_yet",
            "heart_rate mean above 100 bpm over 600 s and spo2 below 92 %",
        ),
    ];
    let mut out = Vec::new();
    for name in names() {
        for village in villages() {
            for (alert_type, description) in types {
                let a = alert(alert_type, description);
                for why in [
                    AlertSms::Routed,
                    AlertSms::Escalated { level: 12 },
                    AlertSms::Unrouted,
                ] {
                    out.push((
                        format!("{why:?}"),
                        alert_text(lang, &a, &name, &village, code, why),
                    ));
                }
                let unregistered = lang.unregistered_patient(&a.patient_id);
                out.push((
                    "Unrouted (unregistered)".into(),
                    alert_text(lang, &a, &unregistered, &village, code, AlertSms::Unrouted),
                ));
                out.push((
                    "Cleared".into(),
                    cleared_text(lang, &resolved(alert_type), &name, &village),
                ));
            }
            for reason in reasons {
                let emergency = "0123456789abcdef0123456789abcdef";
                out.push((
                    "EmergencyWorker".into(),
                    emergency_worker_text(lang, &name, &village, reason, emergency, code),
                ));
                out.push((
                    "EmergencyHospital".into(),
                    emergency_hospital_text(
                        lang,
                        &"p".repeat(MAX_PATIENT_ID_LEN),
                        &village,
                        reason,
                        emergency,
                    ),
                ));
            }
        }
        for stage in [
            FamilyStage::Dispatched,
            FamilyStage::Ambulance,
            FamilyStage::Hospital,
            FamilyStage::Completed,
        ] {
            out.push((
                format!("Family {stage:?}"),
                family_text(lang, &name, stage, "0123456789abcdef"),
            ));
        }
    }
    out
}

#[test]
fn every_sms_of_every_event_fits_two_segments_in_every_language() {
    let mut checked = 0;
    for lang in catalogues() {
        for (event, text) in every_sms(lang) {
            let size = sms_size(&text);
            assert!(
                size.segments <= MAX_SEGMENTS,
                "{} {event}: {} segments ({:?}, {} units): {text}",
                lang.language,
                size.segments,
                size.encoding,
                size.units
            );
            assert!(
                !text.contains('{'),
                "{} {event}: a placeholder left: {text}",
                lang.language
            );
            checked += 1;
        }
    }
    assert!(checked > 1000, "{checked}");
}

#[test]
fn the_reference_the_code_and_the_time_are_never_cut() {
    for lang in catalogues() {
        for (event, text) in every_sms(lang) {
            assert!(
                text.contains("01234567"),
                "{} {event}: {text}",
                lang.language
            );
            if event.starts_with("Routed")
                || event.starts_with("Escalated")
                || event.starts_with("Unrouted")
                || event == "EmergencyWorker"
            {
                assert!(
                    text.ends_with("ACK ABCDEFGH"),
                    "{} {event}: {text}",
                    lang.language
                );
            }
            if event.starts_with("Routed") || event == "Cleared" {
                assert!(
                    text.contains("2026-12-31 23:59"),
                    "{} {event}: {text}",
                    lang.language
                );
            }
        }
    }
}

#[test]
fn realistic_names_are_not_cut() {
    let a = alert("hypoxemia", "spo2 below 90 %");
    for lang in catalogues() {
        let name = "Chandrashekhar Venkataramanan";
        let village = "Thiruvananthapuram";
        let text = alert_text(lang, &a, name, village, "ABCDEFGH", AlertSms::Routed);
        assert!(
            text.contains(name) && text.contains(village),
            "{}: {text}",
            lang.language
        );
        let text = family_text(lang, name, FamilyStage::Hospital, "0123456789abcdef");
        assert!(text.contains(name), "{}: {text}", lang.language);
    }
}

#[test]
fn english_and_swahili_stay_gsm7_and_hindi_is_ucs2() {
    let a = alert("hypoxemia", "spo2 below 90 %");
    for (tag, encoding) in [
        ("en", Encoding::Gsm7),
        ("sw", Encoding::Gsm7),
        ("hi", Encoding::Ucs2),
    ] {
        let lang = catalogue(tag);
        let text = alert_text(lang, &a, "Amina", "Kibera", "4K7Q2M", AlertSms::Routed);
        assert_eq!(sms_size(&text).encoding, encoding, "{tag}: {text}");
        for template in Template::ALL {
            let text = &lang.messages[template.key()];
            if encoding == Encoding::Gsm7 {
                assert_eq!(
                    sms_size(text).encoding,
                    Encoding::Gsm7,
                    "{tag}.{}",
                    template.key()
                );
            }
        }
    }
    // The English alert of a short name is one SMS, as before translations.
    let text = alert_text(
        catalogue("en"),
        &a,
        "Amina",
        "Kibera",
        "4K7Q2M",
        AlertSms::Routed,
    );
    assert_eq!(sms_size(&text).segments, 1, "{text}");
}

#[test]
fn a_cut_value_is_marked_and_keeps_its_start() {
    let lang = catalogue("hi");
    let name = "न".repeat(MAX_TEXT_LEN);
    let text = family_text(lang, &name, FamilyStage::Hospital, "0123456789abcdef");
    assert!(text.starts_with(&"न".repeat(MIN_KEPT_CHARS)), "{text}");
    assert!(text.contains(&format!("{CUT_MARK}: ")), "{text}");
    assert!(sms_size(&text).segments <= MAX_SEGMENTS);
}

#[test]
fn the_family_reads_their_name_and_the_reference_and_no_diagnosis() {
    for lang in catalogues() {
        for stage in [
            FamilyStage::Dispatched,
            FamilyStage::Ambulance,
            FamilyStage::Hospital,
            FamilyStage::Completed,
        ] {
            let text = family_text(lang, "Baraka", stage, "0123456789abcdef");
            assert!(text.starts_with("Baraka: "), "{text}");
            assert!(text.contains("01234567"), "{text}");
            // No slot for the reason, the patient's id, or readings: no other digits.
            let without_ref = text.replace("01234567", "");
            assert!(!without_ref.chars().any(|c| c.is_ascii_digit()), "{text}");
        }
    }
}

#[test]
fn fill_replaces_known_placeholders_only() {
    assert_eq!(fill("{a} and {b} {", &[("a", "x")]), "x and {b} {");
    assert_eq!(fill("{a}{a}", &[("a", "{a}")]), "{a}{a}");
    assert_eq!(placeholders_of("{a} {b} {a}"), ["a", "b"]);
}
