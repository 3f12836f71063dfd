//! Metrics in CloudWatch Embedded Metric Format (EMF).
//!
//! A handler records metrics with one line, e.g. `metrics::count(metrics::READINGS_INGESTED,
//! n)`. They go to the recorder of the current invocation (a tokio task-local set up by
//! [`capture`], which `telemetry::invocation` calls in each function's `main`), so handlers
//! need no extra argument and parallel tests never share a recorder. Outside an invocation
//! (a plain unit test) recording does nothing.
//!
//! At the end of the invocation the recorder is written to stdout as EMF documents, one JSON
//! line per dimension set. CloudWatch Logs turns them into metrics in the namespace
//! [`namespace`] (`POWERTOOLS_METRICS_NAMESPACE`, default `Vitals`) with the dimension `Function` (plus `Rule` and `Severity` for `AlertsRaised`); no
//! `PutMetricData` call is needed. Counts are summed within an invocation; timings keep
//! every value (at most 100 per document, as the format requires).
//!
//! Format: <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>.
//! [`validate`] checks a document against that specification; devstack uses [`parse`] to
//! find EMF lines in function output.
//!
//! (We looked at `metrics_cloudwatch_embedded`: it is a global recorder for the `metrics`
//! facade, so handler tests running in parallel would share one recorder. This emitter is
//! small and keeps the recorder per invocation.)

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};

/// The CloudWatch namespace of the metrics when `POWERTOOLS_METRICS_NAMESPACE` is not set.
pub const DEFAULT_NAMESPACE: &str = "Vitals";
/// The dimension every metric carries: the function's short name (`ingest`, `detect`, ...).
pub const FUNCTION_DIMENSION: &str = "Function";

/// Readings accepted by `ingest` and put on the stream (Count).
pub const READINGS_INGESTED: &str = "ReadingsIngested";
/// Alerts newly stored by `detect`, with dimensions `Rule` and `Severity` (Count).
pub const ALERTS_RAISED: &str = "AlertsRaised";
/// Redelivered readings, alerts, routings or notifications recognised and skipped (Count).
pub const DUPLICATES_SKIPPED: &str = "DuplicatesSkipped";
/// Readings older than the newest applied reading of their type (Count).
pub const LATE_READINGS: &str = "LateReadings";
/// Alerts raised from readings older than the allowed lateness (`detect`, sweep).
pub const LATE_ALERTS: &str = "LateAlerts";
/// Patients the detection sweep found due.
pub const SWEPT_PATIENTS: &str = "SweptPatients";
/// Entries in a batch response's `batchItemFailures` (Count; 0 for a clean batch).
pub const BATCH_ITEM_FAILURES: &str = "BatchItemFailures";
/// Heartbeat (canary) notifications that reached `notify` (Count; `domain::canary`). The
/// heartbeat alarm fires when there were none for 15 minutes.
pub const HEARTBEAT_DELIVERED: &str = "HeartbeatDelivered";
/// Messages parked because of a permanent error (`notify`; Count).
pub const MESSAGES_PARKED: &str = "MessagesParked";
/// Now minus the reading's event time (Milliseconds).
pub const END_TO_END_LAG_MS: &str = "EndToEndLagMs";

/// At most this many values of one metric in one document (EMF limit).
pub const MAX_VALUES_PER_DOCUMENT: usize = 100;

/// CloudWatch units (`MetricDatum.Unit`).
pub const CLOUDWATCH_UNITS: &[&str] = &[
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// The units this project uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// Extra dimensions of one metric, e.g. `[("Rule", "spo2-low"), ("Severity", "critical")]`.
type Dimensions = Vec<(String, String)>;

#[derive(Debug)]
struct Series {
    unit: Unit,
    values: Vec<f64>,
}

/// The CloudWatch namespace of the metrics: `POWERTOOLS_METRICS_NAMESPACE` (the template's
/// `MetricsNamespace` parameter), else [`DEFAULT_NAMESPACE`].
pub fn namespace() -> String {
    std::env::var("POWERTOOLS_METRICS_NAMESPACE")
        .ok()
        .filter(|namespace| !namespace.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string())
}

/// The metrics of one invocation.
#[derive(Debug)]
pub struct Recorder {
    namespace: String,
    function: String,
    series: Mutex<BTreeMap<(Dimensions, String), Series>>,
}

tokio::task_local! {
    static CURRENT: Arc<Recorder>;
}

/// Adds `n` to a count metric of the current invocation.
pub fn count(name: &str, n: usize) {
    count_by(name, n, &[]);
}

/// Counts one of `name` when `happened` (a duplicate skipped, say); records nothing
/// otherwise.
pub fn count_if(name: &str, happened: bool) {
    if happened {
        count(name, 1);
    }
}

/// Adds `n` to a count metric with extra dimensions.
pub fn count_by(name: &str, n: usize, dimensions: &[(&str, &str)]) {
    record(name, Unit::Count, n as f64, dimensions);
}

/// Records one timing in milliseconds.
pub fn milliseconds(name: &str, value: f64) {
    record(name, Unit::Milliseconds, value, &[]);
}

fn record(name: &str, unit: Unit, value: f64, dimensions: &[(&str, &str)]) {
    let _ = CURRENT.try_with(|recorder| recorder.record(name, unit, value, dimensions));
}

/// Runs `future` with a fresh recorder for `function` and returns its output and the
/// recorder.
pub async fn capture<F: Future>(function: &str, future: F) -> (F::Output, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::new(function));
    let output = CURRENT.scope(recorder.clone(), future).await;
    (output, recorder)
}

impl Recorder {
    /// A recorder for `function` in the [`namespace`].
    pub fn new(function: &str) -> Recorder {
        Recorder::in_namespace(&namespace(), function)
    }

    /// A recorder for `function` in `namespace`.
    pub fn in_namespace(namespace: &str, function: &str) -> Recorder {
        Recorder {
            namespace: namespace.to_string(),
            function: function.to_string(),
            series: Mutex::new(BTreeMap::new()),
        }
    }

    /// Records a value: counts are summed, timings kept one by one.
    pub fn record(&self, name: &str, unit: Unit, value: f64, dimensions: &[(&str, &str)]) {
        if !value.is_finite() {
            return;
        }
        let dimensions: Dimensions = dimensions
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let Ok(mut series) = self.series.lock() else {
            return;
        };
        let entry = series
            .entry((dimensions, name.to_string()))
            .or_insert_with(|| Series {
                unit,
                values: Vec::new(),
            });
        match (unit, entry.values.first_mut()) {
            (Unit::Count, Some(total)) => *total += value,
            _ => entry.values.push(value),
        }
    }

    /// Sum of a metric's values over all its dimension sets (tests, summaries).
    pub fn total(&self, name: &str) -> f64 {
        self.values(name).iter().sum()
    }

    /// Every recorded value of a metric, over all its dimension sets.
    pub fn values(&self, name: &str) -> Vec<f64> {
        let Ok(series) = self.series.lock() else {
            return Vec::new();
        };
        series
            .iter()
            .filter(|((_, n), _)| n == name)
            .flat_map(|(_, s)| s.values.iter().copied())
            .collect()
    }

    /// The EMF documents for everything recorded: one per dimension set (more if a metric
    /// has over 100 values). Metrics with extra dimensions are also published under
    /// `Function` alone, so a total per function exists.
    pub fn documents(&self, timestamp_ms: i64) -> Vec<Value> {
        let Ok(series) = self.series.lock() else {
            return Vec::new();
        };
        let mut groups: BTreeMap<&Dimensions, Vec<(&String, &Series)>> = BTreeMap::new();
        for ((dimensions, name), s) in series.iter() {
            groups.entry(dimensions).or_default().push((name, s));
        }
        let mut documents = Vec::new();
        for (dimensions, metrics) in groups {
            let chunks = metrics
                .iter()
                .map(|(_, s)| s.values.len().div_ceil(MAX_VALUES_PER_DOCUMENT))
                .max()
                .unwrap_or(0);
            for chunk in 0..chunks {
                let mut root = Map::new();
                let mut definitions = Vec::new();
                for (name, s) in &metrics {
                    let start = chunk * MAX_VALUES_PER_DOCUMENT;
                    let Some(values) = s.values.get(start..) else {
                        continue;
                    };
                    let values = &values[..values.len().min(MAX_VALUES_PER_DOCUMENT)];
                    let value = match values {
                        [] => continue,
                        [one] => json!(one),
                        many => json!(many),
                    };
                    definitions.push(json!({"Name": name, "Unit": s.unit.as_str()}));
                    root.insert((*name).clone(), value);
                }
                let mut full = vec![FUNCTION_DIMENSION.to_string()];
                full.extend(dimensions.iter().map(|(k, _)| k.clone()));
                let mut dimension_sets = vec![json!(full)];
                if !dimensions.is_empty() {
                    dimension_sets.insert(0, json!([FUNCTION_DIMENSION]));
                }
                root.insert(FUNCTION_DIMENSION.to_string(), json!(self.function));
                for (k, v) in dimensions {
                    root.insert(k.clone(), json!(v));
                }
                root.insert(
                    "_aws".to_string(),
                    json!({
                        "Timestamp": timestamp_ms,
                        "CloudWatchMetrics": [{
                            "Namespace": self.namespace,
                            "Dimensions": dimension_sets,
                            "Metrics": definitions,
                        }],
                    }),
                );
                documents.push(Value::Object(root));
            }
        }
        documents
    }

    /// Writes the documents to stdout, one line each (Lambda sends stdout to CloudWatch
    /// Logs, which extracts the metrics).
    pub fn emit(&self) {
        let now = chrono::Utc::now().timestamp_millis();
        for document in self.documents(now) {
            println!("{document}");
        }
    }
}

/// One metric value set found in an EMF document.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub namespace: String,
    pub name: String,
    pub unit: String,
    /// The values of the document's richest dimension set, e.g. `{"Function": "detect",
    /// "Rule": "spo2-low", "Severity": "critical"}`.
    pub dimensions: BTreeMap<String, String>,
    pub values: Vec<f64>,
}

/// Checks a JSON value against the EMF specification: `_aws.Timestamp` (epoch ms),
/// `_aws.CloudWatchMetrics` with `Namespace`, `Dimensions` (arrays of at most 30 names, each
/// a string member of the root) and `Metrics` (`Name`, a valid CloudWatch `Unit`, a numeric
/// member or array of at most 100 numbers on the root, at most 100 metrics).
pub fn validate(document: &Value) -> Result<(), String> {
    let root = document
        .as_object()
        .ok_or("an EMF document is a JSON object")?;
    let aws = root
        .get("_aws")
        .and_then(Value::as_object)
        .ok_or("_aws object missing")?;
    let timestamp = aws.get("Timestamp").ok_or("_aws.Timestamp missing")?;
    if !timestamp.is_i64() && !timestamp.is_u64() {
        return Err("_aws.Timestamp must be an integer (epoch milliseconds)".into());
    }
    let directives = aws
        .get("CloudWatchMetrics")
        .and_then(Value::as_array)
        .ok_or("_aws.CloudWatchMetrics array missing")?;
    for directive in directives {
        let namespace = directive
            .get("Namespace")
            .and_then(Value::as_str)
            .ok_or("Namespace missing")?;
        if namespace.is_empty() || namespace.len() > 1024 {
            return Err(format!(
                "Namespace {namespace:?} must be 1..=1024 characters"
            ));
        }
        let sets = directive
            .get("Dimensions")
            .and_then(Value::as_array)
            .ok_or("Dimensions array missing")?;
        for set in sets {
            let set = set.as_array().ok_or("each DimensionSet is an array")?;
            if set.len() > 30 {
                return Err("a DimensionSet has at most 30 dimensions".into());
            }
            for key in set {
                let key = key.as_str().ok_or("dimension names are strings")?;
                match root.get(key) {
                    Some(Value::String(v)) if !v.is_empty() && v.len() <= 1024 => {}
                    _ => {
                        return Err(format!(
                            "dimension {key:?} needs a non-empty string member on the root"
                        ));
                    }
                }
            }
        }
        let metrics = directive
            .get("Metrics")
            .and_then(Value::as_array)
            .ok_or("Metrics array missing")?;
        if metrics.len() > 100 {
            return Err("at most 100 metrics per directive".into());
        }
        for metric in metrics {
            let name = metric
                .get("Name")
                .and_then(Value::as_str)
                .ok_or("metric Name missing")?;
            if let Some(unit) = metric.get("Unit") {
                let unit = unit.as_str().ok_or("Unit is a string")?;
                if !CLOUDWATCH_UNITS.contains(&unit) {
                    return Err(format!("{unit:?} is not a CloudWatch unit"));
                }
            }
            match root.get(name) {
                Some(Value::Number(_)) => {}
                Some(Value::Array(values))
                    if !values.is_empty()
                        && values.len() <= MAX_VALUES_PER_DOCUMENT
                        && values.iter().all(Value::is_number) => {}
                _ => {
                    return Err(format!(
                        "metric {name:?} needs a number or an array of 1..=100 numbers on the root"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The samples in one line of function output, if the line is a valid EMF document.
pub fn parse(line: &str) -> Option<Vec<Sample>> {
    let line = line.trim();
    if !line.starts_with('{') || !line.contains("\"_aws\"") {
        return None;
    }
    let document: Value = serde_json::from_str(line).ok()?;
    validate(&document).ok()?;
    let mut samples = Vec::new();
    for directive in document["_aws"]["CloudWatchMetrics"].as_array()? {
        let richest = directive["Dimensions"]
            .as_array()?
            .iter()
            .filter_map(Value::as_array)
            .max_by_key(|set| set.len());
        let dimensions: BTreeMap<String, String> = richest
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter_map(|k| Some((k.to_string(), document[k].as_str()?.to_string())))
            .collect();
        for metric in directive["Metrics"].as_array()? {
            let name = metric["Name"].as_str()?;
            let values = match &document[name] {
                Value::Array(values) => values.iter().filter_map(Value::as_f64).collect(),
                value => vec![value.as_f64()?],
            };
            samples.push(Sample {
                namespace: directive["Namespace"].as_str()?.to_string(),
                name: name.to_string(),
                unit: metric["Unit"].as_str().unwrap_or("None").to_string(),
                dimensions: dimensions.clone(),
                values,
            });
        }
    }
    Some(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn documents_follow_the_emf_specification() {
        let ((), recorder) = capture("detect", async {
            count(READINGS_INGESTED, 3);
            count(READINGS_INGESTED, 2);
            count(BATCH_ITEM_FAILURES, 0);
            count_by(
                ALERTS_RAISED,
                1,
                &[("Rule", "spo2-low"), ("Severity", "critical")],
            );
            milliseconds(END_TO_END_LAG_MS, 12.5);
            milliseconds(END_TO_END_LAG_MS, 40.0);
        })
        .await;
        let documents = recorder.documents(1_700_000_000_000);
        assert_eq!(documents.len(), 2, "{documents:#?}");
        for d in &documents {
            validate(d).unwrap_or_else(|e| panic!("{e}: {d}"));
        }

        let plain = &documents[0];
        let directive = &plain["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(plain["_aws"]["Timestamp"], 1_700_000_000_000i64);
        assert_eq!(directive["Namespace"], "Vitals");
        assert_eq!(directive["Dimensions"], json!([["Function"]]));
        assert_eq!(plain["Function"], "detect");
        assert_eq!(plain["ReadingsIngested"], json!(5.0));
        assert_eq!(plain["BatchItemFailures"], json!(0.0));
        assert_eq!(plain["EndToEndLagMs"], json!([12.5, 40.0]));
        let units: BTreeMap<&str, &str> = directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["Name"].as_str().unwrap(), m["Unit"].as_str().unwrap()))
            .collect();
        assert_eq!(units["ReadingsIngested"], "Count");
        assert_eq!(units["EndToEndLagMs"], "Milliseconds");

        let alerts = &documents[1];
        assert_eq!(
            alerts["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Function"], ["Function", "Rule", "Severity"]])
        );
        assert_eq!(alerts["Rule"], "spo2-low");
        assert_eq!(alerts["Severity"], "critical");
        assert_eq!(alerts["AlertsRaised"], json!(1.0));
    }

    #[tokio::test]
    async fn more_than_100_values_are_split_over_documents() {
        let ((), recorder) = capture("detect", async {
            for i in 0..250 {
                milliseconds(END_TO_END_LAG_MS, i as f64);
            }
        })
        .await;
        let documents = recorder.documents(1);
        assert_eq!(documents.len(), 3);
        let mut all = Vec::new();
        for d in &documents {
            validate(d).unwrap();
            all.extend(d["EndToEndLagMs"].as_array().unwrap().clone());
        }
        assert_eq!(all.len(), 250);
    }

    #[test]
    fn recording_outside_an_invocation_does_nothing() {
        count(READINGS_INGESTED, 1);
        let recorder = Recorder::new("x");
        assert!(recorder.documents(1).is_empty());
    }

    #[test]
    fn the_validator_accepts_the_specification_example_and_rejects_bad_documents() {
        // The example document of the EMF specification.
        let example = json!({
            "_aws": {
                "Timestamp": 1574109732004i64,
                "CloudWatchMetrics": [{
                    "Namespace": "lambda-function-metrics",
                    "Dimensions": [["functionVersion"]],
                    "Metrics": [{"Name": "time", "Unit": "Milliseconds", "StorageResolution": 60}]
                }]
            },
            "functionVersion": "$LATEST",
            "time": 100,
            "requestId": "989ffbf8-9ace-4817-a57c-e4dd734019ee"
        });
        validate(&example).unwrap();

        let mut bad_unit = example.clone();
        bad_unit["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] = json!("ms");
        assert!(
            validate(&bad_unit)
                .unwrap_err()
                .contains("not a CloudWatch unit")
        );

        let mut missing_dimension = example.clone();
        missing_dimension
            .as_object_mut()
            .unwrap()
            .remove("functionVersion");
        assert!(validate(&missing_dimension).is_err());

        let mut missing_value = example.clone();
        missing_value.as_object_mut().unwrap().remove("time");
        assert!(validate(&missing_value).is_err());

        let mut string_timestamp = example.clone();
        string_timestamp["_aws"]["Timestamp"] = json!("2019-11-18");
        assert!(validate(&string_timestamp).is_err());
    }

    #[test]
    fn parse_reads_samples_and_ignores_log_lines() {
        let recorder = Recorder::in_namespace("Vitals-staging", "route");
        recorder.record(
            ALERTS_RAISED,
            Unit::Count,
            2.0,
            &[("Rule", "hr"), ("Severity", "high")],
        );
        let line = recorder.documents(5)[0].to_string();
        let samples = parse(&line).unwrap();
        assert_eq!(samples.len(), 1);
        assert_eq!(samples[0].namespace, "Vitals-staging");
        assert_eq!(samples[0].name, "AlertsRaised");
        assert_eq!(samples[0].unit, "Count");
        assert_eq!(samples[0].values, vec![2.0]);
        assert_eq!(samples[0].dimensions["Rule"], "hr");
        assert_eq!(samples[0].dimensions["Function"], "route");

        assert!(parse(r#"{"level":"INFO","message":"hello"}"#).is_none());
        assert!(parse("not json").is_none());
        assert!(parse(r#"{"_aws":{"Timestamp":"x"}}"#).is_none());
    }
}
