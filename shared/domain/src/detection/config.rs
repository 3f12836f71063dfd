//! The rules configuration: a versioned YAML (or JSON, which is YAML) document, parsed
//! with serde and validated before use. Every problem is reported, with the rule it is in.

use serde::{Deserialize, Serialize};

use crate::events::Severity;
use crate::reading::VitalType;

/// The configuration format this code reads.
pub const CONFIG_VERSION: u32 = 1;
/// Allowed lateness when the file does not set one.
pub const DEFAULT_ALLOWED_LATENESS_SECONDS: u64 = 60;
/// The largest allowed lateness (it is also how long readings may wait unevaluated).
pub const MAX_ALLOWED_LATENESS_SECONDS: u64 = 3_600;
/// The longest window, rate-of-change span or missing-data timeout a rule may use.
pub const MAX_WINDOW_SECONDS: u64 = 86_400;
/// The most readings a `consecutive` rule may count.
pub const MAX_CONSECUTIVE: u32 = 1_000;
/// How old the latest reading of a metric may be and still count in an `all_of` of
/// thresholds, when the rule does not set `freshSeconds`.
pub const DEFAULT_FRESH_SECONDS: u64 = 300;
/// The smallest allowed lateness. Below it, the clock would overtake readings still in
/// transit from the device to detect.
pub const MIN_ALLOWED_LATENESS_SECONDS: u64 = 10;

/// The whole rules file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RulesConfig {
    /// Format version of the file (must be [`CONFIG_VERSION`]).
    pub version: u32,
    /// How far behind the newest reading of a patient (in reading time) a reading may
    /// arrive and still be evaluated in its place.
    #[serde(default = "default_lateness")]
    pub allowed_lateness_seconds: u64,
    pub rules: Vec<Rule>,
}

fn default_lateness() -> u64 {
    DEFAULT_ALLOWED_LATENESS_SECONDS
}

/// One rule: when its condition starts to hold, one alert; when it stops, one resolution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// Stable id: part of every alert id of this rule. Renaming it starts new episodes.
    pub id: String,
    pub alert_type: String,
    pub severity: Severity,
    /// What the health worker reads; generated from the condition when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub condition: Condition,
}

/// Which side of a threshold is abnormal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    Above,
    Below,
}

impl Comparison {
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::Above => value > threshold,
            Comparison::Below => value < threshold,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Comparison::Above => "above",
            Comparison::Below => "below",
        }
    }
}

/// The aggregate of a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    Avg,
    Min,
    Max,
    Count,
}

impl Aggregate {
    pub fn as_str(self) -> &'static str {
        match self {
            Aggregate::Avg => "mean",
            Aggregate::Min => "minimum",
            Aggregate::Max => "maximum",
            Aggregate::Count => "count",
        }
    }
}

/// Window shape, in reading time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowKind {
    /// `(t - W, t]`, re-evaluated at every reading of the metric.
    Sliding,
    /// Fixed `[kW, (k+1)W)` buckets (aligned on the Unix epoch), evaluated when a bucket
    /// closes: when a reading of the patient falls in a later bucket.
    Tumbling,
}

/// Which way a rate-of-change rule looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Drop,
    Rise,
}

/// A condition over a patient's readings in reading-time order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "snake_case",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum Condition {
    /// The latest reading of `metric` is `op` `value`.
    Threshold {
        metric: VitalType,
        op: Comparison,
        value: f64,
    },
    /// The last `count` readings of `metric` are all `op` `value`.
    Consecutive {
        metric: VitalType,
        op: Comparison,
        value: f64,
        count: u32,
    },
    /// `aggregate` of `metric` over a window of `seconds` is `op` `value`.
    Window {
        metric: VitalType,
        window: WindowKind,
        seconds: u64,
        aggregate: Aggregate,
        op: Comparison,
        value: f64,
    },
    /// `metric` moved by more than `amount` (down for `drop`, up for `rise`) from a
    /// reading at most `within_seconds` earlier.
    RateOfChange {
        metric: VitalType,
        direction: Direction,
        amount: f64,
        within_seconds: u64,
    },
    /// No reading of `metric` for more than `after_seconds`, where the last one came from
    /// a continuous monitor: a device whose id matches one of `devices` (`*` at the end
    /// matches any rest; absent = every device). It fires when a later reading of another
    /// metric shows the gap, or, when the patient has gone silent, when the sweep finds the
    /// deadline passed by the clock. Spot checks (kiosks, home visits) never start it.
    Missing {
        metric: VitalType,
        after_seconds: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        devices: Option<Vec<String>>,
    },
    /// Every one of `conditions` holds (they may not nest another `all_of`). A `threshold`
    /// member counts with the latest reading of its metric only while that reading is at
    /// most `fresh_seconds` old (default [`DEFAULT_FRESH_SECONDS`]).
    AllOf {
        conditions: Vec<Condition>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fresh_seconds: Option<u64>,
    },
}

/// Whether `device_id` is one of `patterns` (`*` at the end matches any rest).
pub fn device_matches(patterns: &[String], device_id: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => device_id.starts_with(prefix),
        None => device_id == p,
    })
}

impl Condition {
    /// The leaves: the condition itself, or the members of an `all_of`.
    pub fn leaves(&self) -> &[Condition] {
        match self {
            Condition::AllOf { conditions, .. } => conditions,
            other => std::slice::from_ref(other),
        }
    }

    /// The metric of a leaf condition (`None` for `all_of`).
    pub fn metric(&self) -> Option<VitalType> {
        match self {
            Condition::Threshold { metric, .. }
            | Condition::Consecutive { metric, .. }
            | Condition::Window { metric, .. }
            | Condition::RateOfChange { metric, .. }
            | Condition::Missing { metric, .. } => Some(*metric),
            Condition::AllOf { .. } => None,
        }
    }

    /// A sentence a health worker can read.
    pub fn describe(&self) -> String {
        match self {
            Condition::Threshold { metric, op, value } => {
                format!(
                    "{} {} {value} {}",
                    metric.as_str(),
                    op.as_str(),
                    metric.unit()
                )
            }
            Condition::Consecutive {
                metric,
                op,
                value,
                count,
            } => format!(
                "{} {} {value} {} in {count} consecutive readings",
                metric.as_str(),
                op.as_str(),
                metric.unit()
            ),
            Condition::Window {
                metric,
                window,
                seconds,
                aggregate,
                op,
                value,
            } => {
                let shape = match window {
                    WindowKind::Sliding => "the last",
                    WindowKind::Tumbling => "a fixed window of",
                };
                format!(
                    "{} {} over {shape} {seconds} s {} {value}",
                    aggregate.as_str(),
                    metric.as_str(),
                    op.as_str()
                )
            }
            Condition::RateOfChange {
                metric,
                direction,
                amount,
                within_seconds,
            } => {
                let way = match direction {
                    Direction::Drop => "dropped",
                    Direction::Rise => "rose",
                };
                format!(
                    "{} {way} by more than {amount} {} within {within_seconds} s",
                    metric.as_str(),
                    metric.unit()
                )
            }
            Condition::Missing {
                metric,
                after_seconds,
                ..
            } => format!("no {} reading for over {after_seconds} s", metric.as_str()),
            Condition::AllOf { conditions, .. } => conditions
                .iter()
                .map(Condition::describe)
                .collect::<Vec<_>>()
                .join(" and "),
        }
    }
}

impl Rule {
    pub fn describe(&self) -> String {
        self.description
            .clone()
            .unwrap_or_else(|| self.condition.describe())
    }
}

/// Why a rules file was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// Not valid YAML/JSON, or a field is missing, unknown or of the wrong type (this is
    /// also where an unknown metric or rule kind is reported, with its line and column).
    #[error("rules config does not parse: {0}")]
    Parse(String),
    /// Parsed, but some values are not acceptable; every problem is listed.
    #[error("rules config is invalid:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

impl RulesConfig {
    /// Parses and validates a YAML (or JSON) rules document.
    pub fn from_yaml(text: &str) -> Result<RulesConfig, ConfigError> {
        let config: RulesConfig =
            serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every value; returns all problems at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if self.version != CONFIG_VERSION {
            problems.push(format!(
                "version {} is not supported (this build reads version {CONFIG_VERSION})",
                self.version
            ));
        }
        if self.allowed_lateness_seconds > MAX_ALLOWED_LATENESS_SECONDS
            || self.allowed_lateness_seconds < MIN_ALLOWED_LATENESS_SECONDS
        {
            problems.push(format!(
                "allowedLatenessSeconds must be between {MIN_ALLOWED_LATENESS_SECONDS} and {MAX_ALLOWED_LATENESS_SECONDS} (got {})",
                self.allowed_lateness_seconds
            ));
        }
        if self.rules.is_empty() {
            problems.push("no rules".to_string());
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let at = if rule.id.is_empty() {
                format!("rules[{i}]")
            } else {
                format!("rule `{}`", rule.id)
            };
            if rule.id.trim().is_empty() {
                problems.push(format!("{at}: id is empty"));
            } else if !seen.insert(rule.id.as_str()) {
                problems.push(format!("{at}: id is used by another rule"));
            }
            if rule.alert_type.trim().is_empty() {
                problems.push(format!("{at}: alertType is empty"));
            }
            if let Condition::AllOf {
                conditions,
                fresh_seconds,
            } = &rule.condition
            {
                if let Some(fresh) = fresh_seconds {
                    check_seconds("freshSeconds", *fresh, &at, &mut problems);
                }
                if conditions.len() < 2 {
                    problems.push(format!("{at}: all_of needs at least 2 conditions"));
                }
                if conditions
                    .iter()
                    .any(|c| matches!(c, Condition::AllOf { .. }))
                {
                    problems.push(format!("{at}: all_of may not contain another all_of"));
                }
            }
            for leaf in rule.condition.leaves() {
                check_leaf(leaf, &at, &mut problems);
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}

fn check_value(name: &str, value: f64, at: &str, problems: &mut Vec<String>) {
    if !value.is_finite() {
        problems.push(format!(
            "{at}: {name} must be a finite number (got {value})"
        ));
    }
}

fn check_seconds(name: &str, seconds: u64, at: &str, problems: &mut Vec<String>) {
    if seconds == 0 || seconds > MAX_WINDOW_SECONDS {
        problems.push(format!(
            "{at}: {name} must be between 1 and {MAX_WINDOW_SECONDS} (got {seconds})"
        ));
    }
}

fn check_leaf(condition: &Condition, at: &str, problems: &mut Vec<String>) {
    match condition {
        Condition::Threshold { value, .. } => check_value("value", *value, at, problems),
        Condition::Consecutive { value, count, .. } => {
            check_value("value", *value, at, problems);
            if *count == 0 || *count > MAX_CONSECUTIVE {
                problems.push(format!(
                    "{at}: count must be between 1 and {MAX_CONSECUTIVE} (got {count})"
                ));
            }
        }
        Condition::Window { seconds, value, .. } => {
            check_seconds("window seconds", *seconds, at, problems);
            check_value("value", *value, at, problems);
        }
        Condition::RateOfChange {
            amount,
            within_seconds,
            ..
        } => {
            check_seconds("withinSeconds", *within_seconds, at, problems);
            check_value("amount", *amount, at, problems);
            if amount.is_finite() && *amount <= 0.0 {
                problems.push(format!("{at}: amount must be above 0 (got {amount})"));
            }
        }
        Condition::Missing {
            after_seconds,
            devices,
            ..
        } => {
            check_seconds("afterSeconds", *after_seconds, at, problems);
            if devices
                .as_ref()
                .is_some_and(|d| d.is_empty() || d.iter().any(|p| p.trim().is_empty()))
            {
                problems.push(format!(
                    "{at}: devices must list at least one non-empty device id pattern"
                ));
            }
        }
        Condition::AllOf { .. } => {}
    }
}
