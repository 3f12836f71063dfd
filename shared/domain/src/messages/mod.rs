//! What people read: every SMS text, in the recipient's language. Pure.
//!
//! The texts live in one YAML file per language, `shared/domain/messages/{tag}.yaml`,
//! embedded in the binaries (`include_str!`) and parsed once. A recipient's language is the
//! `language` of their directory item (worker, family contact); a tag with a region
//! (`hi-IN`) uses its language's file, and a language without a file gets English.
//! Placeholders are `{name}`, filled by [`Catalogue::render`]; nothing else is interpreted
//! (no plurals or selectors: the texts are written not to need them).
//!
//! Every message fits in [`MAX_SEGMENTS`] SMS whatever the names: when it would not,
//! [`Catalogue::render`] shortens the free-text values (names, village, condition, reason;
//! never the reference, the code or the time) longest first, marking each cut with "..".
//! The segment rule (GSM-7 or UCS-2) is in [`sms`]. docs/messages.md tells how to add a
//! language.

pub mod sms;
pub mod texts;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::events::Severity;

/// The most SMS segments a message may take.
pub const MAX_SEGMENTS: usize = 2;
/// The language every other one falls back to (and whose file must have every text).
pub const FALLBACK_LANGUAGE: &str = "en";
/// Marks a shortened value.
pub const CUT_MARK: &str = "..";
/// A free-text value is never shortened below this many characters (before the mark).
pub const MIN_KEPT_CHARS: usize = 6;

/// The embedded template files: (tag, YAML).
const FILES: [(&str, &str); 3] = [
    ("en", include_str!("../../messages/en.yaml")),
    ("hi", include_str!("../../messages/hi.yaml")),
    ("sw", include_str!("../../messages/sw.yaml")),
];

/// One message of the catalogue: an SMS someone is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Template {
    /// An alert to the assigned health worker (route).
    Alert,
    /// An alert forwarded to the next person of the escalation chain (not acknowledged).
    Escalated,
    /// An alert of a patient not in the directory, sent to the supervisor.
    EscalatedUnrouted,
    /// The alert to the worker no longer holds (route).
    Cleared,
    /// An emergency to the worker it is assigned to.
    EmergencyWorker,
    /// An emergency handed to the district hospital (local dispatch failed).
    EmergencyHospital,
    /// The family: an emergency was reported, help is on the way.
    FamilyDispatched,
    /// The family: an ambulance is on its way.
    FamilyAmbulance,
    /// The family: the district hospital has taken over.
    FamilyHospital,
    /// The family: the emergency is closed.
    FamilyCompleted,
}

impl Template {
    pub const ALL: [Template; 10] = [
        Template::Alert,
        Template::Escalated,
        Template::EscalatedUnrouted,
        Template::Cleared,
        Template::EmergencyWorker,
        Template::EmergencyHospital,
        Template::FamilyDispatched,
        Template::FamilyAmbulance,
        Template::FamilyHospital,
        Template::FamilyCompleted,
    ];

    /// Its key in the files' `messages`.
    pub fn key(self) -> &'static str {
        match self {
            Template::Alert => "alert",
            Template::Escalated => "escalated",
            Template::EscalatedUnrouted => "escalated_unrouted",
            Template::Cleared => "cleared",
            Template::EmergencyWorker => "emergency_worker",
            Template::EmergencyHospital => "emergency_hospital",
            Template::FamilyDispatched => "family_dispatched",
            Template::FamilyAmbulance => "family_ambulance",
            Template::FamilyHospital => "family_hospital",
            Template::FamilyCompleted => "family_completed",
        }
    }

    /// The placeholders its text uses (every language uses exactly these).
    pub fn placeholders(self) -> &'static [&'static str] {
        const ALERT: &[&str] = &[
            "severity",
            "patient",
            "village",
            "condition",
            "time",
            "ref",
            "code",
        ];
        match self {
            Template::Alert | Template::EscalatedUnrouted => ALERT,
            Template::Escalated => &[
                "level",
                "severity",
                "patient",
                "village",
                "condition",
                "time",
                "ref",
                "code",
            ],
            Template::Cleared => &["patient", "condition", "time", "village", "ref"],
            Template::EmergencyWorker => &["patient", "village", "reason", "ref", "code"],
            Template::EmergencyHospital => &["patient", "village", "reason", "ref"],
            Template::FamilyDispatched
            | Template::FamilyAmbulance
            | Template::FamilyHospital
            | Template::FamilyCompleted => &["name", "ref"],
        }
    }
}

/// Placeholders whose values are free text (names, village, condition, reason): shortened
/// when a message would not fit. References, codes, times and levels are never cut.
pub const SHORTENABLE: [&str; 5] = ["patient", "village", "condition", "reason", "name"];

/// One language's texts (one file).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalogue {
    /// The primary language subtag (`en`, `hi`, `sw`).
    pub language: String,
    /// The language's own name.
    pub name: String,
    /// Whether a native speaker has reviewed the translation (false: a draft).
    pub reviewed: bool,
    /// Severity labels by `Severity::as_str`.
    pub severity: BTreeMap<String, String>,
    /// Condition names by alert type; a type not listed reads the rule's description
    /// (alert) or the type itself (cleared).
    pub conditions: BTreeMap<String, String>,
    /// Labels used inside messages (`unregistered_patient`, with `{id}`).
    pub labels: BTreeMap<String, String>,
    /// The messages, by [`Template::key`].
    pub messages: BTreeMap<String, String>,
}

/// Why a template file was refused (the catalogue test reports it).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("messages/{file}.yaml: {problem}")]
pub struct CatalogueError {
    pub file: String,
    pub problem: String,
}

/// Parses one embedded file.
pub fn parse(file: &str, yaml: &str) -> Result<Catalogue, CatalogueError> {
    let error = |problem: String| CatalogueError {
        file: file.to_string(),
        problem,
    };
    let catalogue: Catalogue = serde_yaml_ng::from_str(yaml).map_err(|e| error(e.to_string()))?;
    if catalogue.language != file {
        return Err(error(format!(
            "says language {:?}; the file name says {file:?}",
            catalogue.language
        )));
    }
    Ok(catalogue)
}

/// Every language with a file that parses (English first).
pub fn catalogues() -> &'static [Catalogue] {
    static CATALOGUES: OnceLock<Vec<Catalogue>> = OnceLock::new();
    CATALOGUES.get_or_init(|| {
        // A file that does not parse is left out (its language then reads English); the
        // catalogue test fails on it, so none ships.
        FILES
            .iter()
            .filter_map(|(tag, yaml)| parse(tag, yaml).ok())
            .collect()
    })
}

/// The catalogue for a recipient's language tag (`hi`, `hi-IN`, `HI`): its language's
/// file, else English.
pub fn catalogue(tag: &str) -> &'static Catalogue {
    let primary = tag
        .split(['-', '_'])
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let all = catalogues();
    all.iter()
        .find(|c| c.language == primary)
        .or_else(|| all.iter().find(|c| c.language == FALLBACK_LANGUAGE))
        .unwrap_or_else(|| english_fallback())
}

/// An empty English catalogue, only for the case the catalogue test excludes (en.yaml does
/// not parse, so every message would render empty): a panic-free lookup, never shipped.
fn english_fallback() -> &'static Catalogue {
    static EMPTY: OnceLock<Catalogue> = OnceLock::new();
    EMPTY.get_or_init(|| Catalogue {
        language: FALLBACK_LANGUAGE.to_string(),
        name: "English".to_string(),
        reviewed: true,
        severity: BTreeMap::new(),
        conditions: BTreeMap::new(),
        labels: BTreeMap::new(),
        messages: BTreeMap::new(),
    })
}

impl Catalogue {
    /// The text of `template`: this language's, else English's.
    fn text(&self, template: Template) -> &str {
        self.messages
            .get(template.key())
            .or_else(|| catalogue(FALLBACK_LANGUAGE).messages.get(template.key()))
            .map(String::as_str)
            .unwrap_or_default()
    }

    /// The severity's label (the English word, upper case, when the file has none).
    pub fn severity(&self, severity: Severity) -> String {
        self.severity
            .get(severity.as_str())
            .cloned()
            .unwrap_or_else(|| severity.as_str().to_uppercase())
    }

    /// The condition name of `alert_type`, or `fallback` when this language has none.
    pub fn condition(&self, alert_type: &str, fallback: &str) -> String {
        self.conditions
            .get(alert_type)
            .cloned()
            .unwrap_or_else(|| fallback.to_string())
    }

    /// How a patient nobody registered is named.
    pub fn unregistered_patient(&self, patient_id: &str) -> String {
        let label = self
            .labels
            .get("unregistered_patient")
            .or_else(|| {
                catalogue(FALLBACK_LANGUAGE)
                    .labels
                    .get("unregistered_patient")
            })
            .map(String::as_str)
            .unwrap_or("{id}");
        fill(label, &[("id", patient_id)])
    }

    /// `template` with its placeholders filled from `values` (name, value), fitted into
    /// [`MAX_SEGMENTS`] SMS: while it does not fit, the longest [`SHORTENABLE`] value is
    /// cut by one character (down to [`MIN_KEPT_CHARS`]) and marked with [`CUT_MARK`].
    pub fn render(&self, template: Template, values: &[(&str, &str)]) -> String {
        let text = self.text(template);
        let originals: Vec<Vec<char>> = values.iter().map(|(_, v)| v.chars().collect()).collect();
        let mark = CUT_MARK.chars().count();
        let used = placeholders_of(text);
        let cuttable: Vec<usize> = (0..values.len())
            .filter(|&i| {
                SHORTENABLE.contains(&values[i].0) && used.iter().any(|u| u == values[i].0)
            })
            .collect();
        // Characters kept of each value before the mark (None: the whole value, unmarked).
        let mut kept: Vec<Option<usize>> = vec![None; values.len()];
        loop {
            let shown: Vec<String> = originals
                .iter()
                .zip(&kept)
                .map(|(chars, keep)| match keep {
                    None => chars.iter().collect(),
                    Some(n) => {
                        let cut: String = chars.iter().take(*n).collect();
                        format!("{}{CUT_MARK}", cut.trim_end())
                    }
                })
                .collect();
            let pairs: Vec<(&str, &str)> = values
                .iter()
                .zip(&shown)
                .map(|((k, _), v)| (*k, v.as_str()))
                .collect();
            let rendered = fill(text, &pairs);
            let size = sms::sms_size(&rendered);
            if size.segments <= MAX_SEGMENTS {
                return rendered;
            }
            // How many units too long, at least; cut in steps of a share of it, so a
            // 100-character name does not take 100 rounds.
            let capacity = MAX_SEGMENTS
                * match size.encoding {
                    sms::Encoding::Gsm7 => sms::GSM7_PART,
                    sms::Encoding::Ucs2 => sms::UCS2_PART,
                };
            let over = size.units.saturating_sub(capacity);
            let step = (over / cuttable.len().max(1)).max(1);
            // The longest shown value that may still be cut: `step` characters shorter,
            // mark included, but never below MIN_KEPT_CHARS before the mark.
            let shown_len = |i: usize| kept[i].map_or(originals[i].len(), |n| n + mark);
            let candidate = cuttable
                .iter()
                .copied()
                .filter(|&i| shown_len(i) > MIN_KEPT_CHARS + mark)
                .max_by_key(|&i| shown_len(i));
            let Some(i) = candidate else {
                return rendered;
            };
            kept[i] = Some(
                (shown_len(i) - mark)
                    .saturating_sub(step)
                    .max(MIN_KEPT_CHARS),
            );
        }
    }
}

/// `text` with each `{name}` of `values` replaced; any other `{...}` stays as it is.
pub fn fill(text: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}').map(|close| (&after[..close], close)) {
            Some((name, close)) if values.iter().any(|(k, _)| *k == name) => {
                let value = values
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| *v)
                    .unwrap_or_default();
                out.push_str(value);
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The `{name}`s a text uses, in order (each once).
pub fn placeholders_of(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else { break };
        let name = after[..close].to_string();
        if !names.contains(&name) {
            names.push(name);
        }
        rest = &after[close + 1..];
    }
    names
}

#[cfg(test)]
mod tests;
