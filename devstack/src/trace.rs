//! An alert's path as a timeline of its hops (issue 16): every invocation, of any function,
//! that handled the correlation id, from the `POST /readings` to the SMS.
//!
//! X-Ray cannot follow a record through Kinesis; on AWS the hops are joined by correlation
//! id in CloudWatch Logs Insights. Locally the same join runs over devstack's invocation
//! journals: an invocation is a hop of `correlation_id` when one of its JSON log lines
//! carried that `correlation_id` (the functions log inside a per-event span that has it),
//! or when its event names it (an API request's `x-correlation-id` header, an SQS body,
//! a stream record's image or a Kinesis record's decoded data).

use std::sync::Arc;

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::lambda::{FunctionHost, InvocationRecord, InvokeOutcome};

/// One invocation on an alert's path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hop {
    /// The function's logical id.
    pub function: String,
    /// Who invoked it (`api`, `kinesis:ReadingsStream`, `sqs:AlertsQueue`, ...).
    pub source: String,
    pub request_id: String,
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    /// `ok`, `function error`, `timeout` or `crashed`.
    pub outcome: String,
    /// The messages of its log lines that carried the correlation id.
    pub messages: Vec<String>,
}

/// The hops of `correlation_id` over `functions`, oldest first.
pub fn hops<'a>(
    functions: impl IntoIterator<Item = &'a Arc<FunctionHost>>,
    correlation_id: &str,
) -> Vec<Hop> {
    let mut hops = Vec::new();
    for host in functions {
        for record in host.journal() {
            let messages: Vec<String> = host
                .log_notes(&record.request_id)
                .into_iter()
                .filter(|note| note.correlation_id == correlation_id)
                .map(|note| note.message)
                .filter(|message| !message.is_empty())
                .collect();
            if messages.is_empty() && !payload_names(&record.payload, correlation_id) {
                continue;
            }
            hops.push(hop(&host.spec().logical_id, &record, messages));
        }
    }
    hops.sort_by_key(|hop| hop.started_at);
    hops
}

fn hop(function: &str, record: &InvocationRecord, messages: Vec<String>) -> Hop {
    Hop {
        function: function.to_string(),
        source: record.source.clone(),
        request_id: record.request_id.clone(),
        started_at: record.started_at,
        duration_ms: u64::try_from(record.duration.as_millis()).unwrap_or(u64::MAX),
        outcome: match &record.outcome {
            InvokeOutcome::Ok(_) => "ok",
            InvokeOutcome::FunctionError { .. } => "function error",
            InvokeOutcome::Timeout => "timeout",
            InvokeOutcome::Crashed(_) => "crashed",
        }
        .to_string(),
        messages,
    }
}

/// True when the event names `correlation_id` as a whole JSON string, in its text or in a
/// Kinesis record's base64 data.
fn payload_names(payload: &Value, correlation_id: &str) -> bool {
    let quoted = format!("\"{correlation_id}\"");
    let escaped = format!("\\\"{correlation_id}\\\"");
    let text = payload.to_string();
    if text.contains(&quoted) || text.contains(&escaped) {
        return true;
    }
    let records = payload.get("Records").and_then(Value::as_array);
    records.into_iter().flatten().any(|record| {
        record
            .pointer("/kinesis/data")
            .and_then(Value::as_str)
            .and_then(|data| base64::engine::general_purpose::STANDARD.decode(data).ok())
            .is_some_and(|bytes| String::from_utf8_lossy(&bytes).contains(&quoted))
    })
}

/// The timeline as text: one line per hop, its offset from the first hop.
pub fn render(correlation_id: &str, hops: &[Hop]) -> String {
    let Some(first) = hops.first() else {
        return format!("no invocation handled correlation id {correlation_id:?}\n");
    };
    let last_end = hops
        .iter()
        .map(|h| h.started_at + chrono::Duration::milliseconds(h.duration_ms as i64))
        .max()
        .unwrap_or(first.started_at);
    let total = (last_end - first.started_at).num_milliseconds() as f64 / 1000.0;
    let mut out = format!(
        "correlation id {correlation_id}: {} hops over {total:.3} s (from {})\n",
        hops.len(),
        first
            .started_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    );
    for hop in hops {
        let offset = (hop.started_at - first.started_at).num_milliseconds() as f64 / 1000.0;
        out.push_str(&format!(
            "  +{offset:>8.3} s  {:<32} {:<30} {:<8} {:>6} ms  {}\n",
            hop.function,
            hop.source,
            hop.outcome,
            hop.duration_ms,
            hop.messages.join("; ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_event_names_a_correlation_id_in_its_text_or_in_kinesis_data() {
        let api = json!({"headers": {"x-correlation-id": "corr-1"}});
        assert!(payload_names(&api, "corr-1"));
        assert!(!payload_names(&api, "corr"));
        let sqs = json!({"Records": [{"body": "{\"correlationId\":\"corr-2\"}"}]});
        assert!(payload_names(&sqs, "corr-2"));
        let data =
            base64::engine::general_purpose::STANDARD.encode(r#"{"correlationId":"corr-3"}"#);
        let kinesis = json!({"Records": [{"kinesis": {"data": data}}]});
        assert!(payload_names(&kinesis, "corr-3"));
        assert!(!payload_names(&kinesis, "corr-4"));
    }

    #[test]
    fn the_timeline_has_one_line_per_hop_with_its_offset() {
        let at = |ms: i64| DateTime::<Utc>::from_timestamp_millis(1_800_000_000_000 + ms).unwrap();
        let hop = |function: &str, ms: i64| Hop {
            function: function.to_string(),
            source: "api".to_string(),
            request_id: "r".to_string(),
            started_at: at(ms),
            duration_ms: 20,
            outcome: "ok".to_string(),
            messages: vec!["did it".to_string()],
        };
        let text = render(
            "c-1",
            &[hop("IngestFunction", 0), hop("NotifyFunction", 1500)],
        );
        assert!(
            text.starts_with("correlation id c-1: 2 hops over 1.520 s"),
            "{text}"
        );
        assert!(text.contains("+   1.500 s  NotifyFunction"), "{text}");
        assert_eq!(
            render("c-9", &[]),
            "no invocation handled correlation id \"c-9\"\n"
        );
    }
}
