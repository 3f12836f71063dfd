//! Village statistics: one read-model item per (village, UTC day) of counters, each
//! changed by an `ADD` (docs/read-side.md):
//!
//! - `readings`: added by `detect` when it flushes hours of recent vitals (one `ADD` per
//!   (village, day) per batch, never per reading);
//! - `alerts`, `sev:<severity>`, `rule:<ruleId>`, `emergencies`, and the time-to-acknowledge
//!   histogram `ack:<bucket>` (fixed buckets, [`ACK_BUCKETS_SECONDS`]): added by the
//!   projector from the event store, each event once (its id is a marker in the item).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::dashboard::{AlertEvent, AlertView, Projection, View};
use crate::saga::SagaEvent;

/// Upper bounds (seconds, inclusive) of the time-to-acknowledge buckets; a last bucket
/// takes everything longer.
pub const ACK_BUCKETS_SECONDS: [i64; 12] = [
    30, 60, 120, 300, 600, 900, 1_800, 3_600, 7_200, 14_400, 43_200, 86_400,
];

/// Counter names.
pub const READINGS: &str = "readings";
pub const ALERTS: &str = "alerts";
pub const EMERGENCIES: &str = "emergencies";
pub const SEVERITY_PREFIX: &str = "sev:";
pub const RULE_PREFIX: &str = "rule:";
pub const ACK_PREFIX: &str = "ack:";

/// Counters to add to one (village, day) item, once per `marker` (an event id) when
/// there is one.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsDelta {
    pub village: String,
    /// UTC day, `YYYY-MM-DD`.
    pub date: String,
    pub marker: Option<String>,
    pub counters: BTreeMap<String, i64>,
}

/// The bucket name of an acknowledgement `seconds` after the alert was raised.
pub fn ack_bucket(seconds: i64) -> String {
    let index = ACK_BUCKETS_SECONDS
        .iter()
        .position(|bound| seconds <= *bound)
        .unwrap_or(ACK_BUCKETS_SECONDS.len());
    format!("{ACK_PREFIX}{index:02}")
}

fn day(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d").to_string()
}

/// What an event (stored at `at`) projected onto `view` (the view after it) adds to the village
/// statistics: a raised alert (by severity and rule, on the day it was raised), a started
/// emergency, an acknowledgement (its delay in the histogram of the day the alert was
/// raised). `None` for the other events, and when the village is unknown.
pub fn delta(
    event_id: &str,
    at: DateTime<Utc>,
    projection: &Projection,
    view: &View,
) -> Option<StatsDelta> {
    let mut counters = BTreeMap::new();
    let (village, date) = match (projection, view) {
        (Projection::Alert(AlertEvent::Raised(raised)), _) => {
            counters.insert(ALERTS.to_string(), 1);
            counters.insert(format!("{SEVERITY_PREFIX}{}", raised.severity.as_str()), 1);
            counters.insert(format!("{RULE_PREFIX}{}", raised.rule_id), 1);
            (raised.village.clone(), day(raised.detected_at))
        }
        (Projection::Alert(AlertEvent::Acknowledged(_)), View::Alert(alert)) => {
            let AlertView {
                village: Some(village),
                raised_at: Some(raised_at),
                ..
            } = alert
            else {
                return None;
            };
            let seconds = (at - *raised_at).num_seconds().max(0);
            counters.insert(ack_bucket(seconds), 1);
            (village.clone(), day(*raised_at))
        }
        (
            Projection::Emergency {
                event: SagaEvent::EmergencyStarted(started),
                ..
            },
            _,
        ) => {
            counters.insert(EMERGENCIES.to_string(), 1);
            (started.village.clone(), day(at))
        }
        _ => return None,
    };
    Some(StatsDelta {
        village,
        date,
        marker: Some(event_id.to_string()),
        counters,
    })
}

/// One day of a village, as `GET /villages/{id}/stats` serves it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DayStats {
    pub date: String,
    pub readings: i64,
    pub alerts_by_severity: BTreeMap<String, i64>,
    pub alerts_by_type: BTreeMap<String, i64>,
    pub emergencies: i64,
    pub median_ack_seconds: Option<i64>,
}

impl DayStats {
    /// The day from its stored counters.
    pub fn from_counters(date: &str, counters: &BTreeMap<String, i64>) -> DayStats {
        let mut stats = DayStats {
            date: date.to_string(),
            ..DayStats::default()
        };
        let mut histogram = [0i64; ACK_BUCKETS_SECONDS.len() + 1];
        for (name, value) in counters {
            if name == READINGS {
                stats.readings = *value;
            } else if name == EMERGENCIES {
                stats.emergencies = *value;
            } else if let Some(severity) = name.strip_prefix(SEVERITY_PREFIX) {
                stats
                    .alerts_by_severity
                    .insert(severity.to_string(), *value);
            } else if let Some(rule) = name.strip_prefix(RULE_PREFIX) {
                stats.alerts_by_type.insert(rule.to_string(), *value);
            } else if let Some(bucket) = name.strip_prefix(ACK_PREFIX)
                && let Ok(index) = bucket.parse::<usize>()
                && let Some(slot) = histogram.get_mut(index)
            {
                *slot += *value;
            }
        }
        stats.median_ack_seconds = median(&histogram);
        stats
    }
}

/// The median of a bucket histogram: the upper bound of the bucket holding the middle
/// acknowledgement (the last, open bucket reports its lower bound); `None` when empty.
pub fn median(histogram: &[i64]) -> Option<i64> {
    let total: i64 = histogram.iter().sum();
    if total <= 0 {
        return None;
    }
    let half = (total + 1) / 2;
    let mut seen = 0;
    for (index, count) in histogram.iter().enumerate() {
        seen += count;
        if seen >= half {
            return Some(
                ACK_BUCKETS_SECONDS
                    .get(index)
                    .or(ACK_BUCKETS_SECONDS.last())
                    .copied()
                    .unwrap_or_default(),
            );
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_median() {
        assert_eq!(ack_bucket(0), "ack:00");
        assert_eq!(ack_bucket(31), "ack:01");
        assert_eq!(ack_bucket(1_000_000), "ack:12");
        let mut counters = BTreeMap::new();
        counters.insert("ack:01".to_string(), 1);
        counters.insert("ack:03".to_string(), 2);
        counters.insert("readings".to_string(), 60);
        counters.insert("sev:critical".to_string(), 2);
        counters.insert("rule:spo2-low".to_string(), 2);
        let day = DayStats::from_counters("2026-11-30", &counters);
        assert_eq!(day.median_ack_seconds, Some(300));
        assert_eq!(day.readings, 60);
        assert_eq!(day.alerts_by_severity["critical"], 2);
        assert_eq!(day.alerts_by_type["spo2-low"], 2);
        assert_eq!(median(&[0; 13]), None);
    }
}
