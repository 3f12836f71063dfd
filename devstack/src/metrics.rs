//! CloudWatch Embedded Metric Format (EMF) lines printed by the functions, summed per metric
//! and dimension values, as `Stack::metrics` reports them.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Totals of one metric (and set of dimension values) that a function printed in CloudWatch
/// Embedded Metric Format.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricAggregate {
    /// CloudWatch unit, e.g. "Count" or "Milliseconds".
    pub unit: String,
    /// Number of values (a count metric has one value per invocation that recorded it).
    pub samples: u64,
    pub sum: f64,
    pub max: f64,
}

/// A function's EMF metrics so far, keyed by metric name plus its dimension values other
/// than `Function`, e.g. `AlertsRaised{Rule=spo2-low,Severity=critical}`.
pub type MetricTotals = BTreeMap<String, MetricAggregate>;

/// If `line` is an EMF document, adds its values to `totals`; returns whether it was one.
pub fn record_emf_line(totals: &Mutex<MetricTotals>, line: &str) -> bool {
    let Some(samples) = lambda_kit::metrics::parse(line) else {
        return false;
    };
    let Ok(mut totals) = totals.lock() else {
        return true;
    };
    for sample in samples {
        let extra: Vec<String> = sample
            .dimensions
            .iter()
            .filter(|(k, _)| k.as_str() != lambda_kit::metrics::FUNCTION_DIMENSION)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let key = if extra.is_empty() {
            sample.name.clone()
        } else {
            format!("{}{{{}}}", sample.name, extra.join(","))
        };
        let entry = totals.entry(key).or_insert_with(|| MetricAggregate {
            unit: sample.unit.clone(),
            max: f64::MIN,
            ..MetricAggregate::default()
        });
        for value in sample.values {
            entry.samples += 1;
            entry.sum += value;
            entry.max = entry.max.max(value);
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_lines_are_summed_per_metric_and_dimension_values() {
        let totals = Mutex::new(MetricTotals::new());
        let recorder = lambda_kit::metrics::Recorder::new("detect");
        let rule = [("Rule", "spo2-low"), ("Severity", "critical")];
        recorder.record("AlertsRaised", lambda_kit::metrics::Unit::Count, 2.0, &rule);
        recorder.record(
            "EndToEndLagMs",
            lambda_kit::metrics::Unit::Milliseconds,
            30.0,
            &[],
        );
        recorder.record(
            "EndToEndLagMs",
            lambda_kit::metrics::Unit::Milliseconds,
            90.0,
            &[],
        );
        for _ in 0..2 {
            for document in recorder.documents(1) {
                assert!(record_emf_line(&totals, &document.to_string()));
            }
        }
        assert!(!record_emf_line(
            &totals,
            r#"{"level":"INFO","message":"x"}"#
        ));

        let totals = totals.into_inner().unwrap();
        let alerts = &totals["AlertsRaised{Rule=spo2-low,Severity=critical}"];
        assert_eq!(
            (alerts.unit.as_str(), alerts.sum, alerts.samples),
            ("Count", 4.0, 2)
        );
        let lag = &totals["EndToEndLagMs"];
        assert_eq!(
            (lag.unit.as_str(), lag.samples, lag.max),
            ("Milliseconds", 4, 90.0)
        );
        assert_eq!(lag.sum, 240.0);
        assert_eq!(totals.len(), 2);
    }
}
