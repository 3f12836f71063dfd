//! What a function's JSON log lines say about its invocations: for each request id, the
//! correlation ids its lines carried and their messages. `devstack trace` (issue 16) joins
//! an alert's hops by correlation id with it, across functions, the way one would in
//! CloudWatch Logs Insights.
//!
//! Bounded: at most [`MAX_REQUESTS`] request ids (the oldest are dropped first) and
//! [`MAX_NOTES`] notes per request.

use std::collections::{HashMap, VecDeque};

use serde_json::Value;

/// Request ids remembered per function.
pub const MAX_REQUESTS: usize = 20_000;
/// Notes kept per request id.
pub const MAX_NOTES: usize = 32;

/// One log line of an invocation that named a correlation id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogNote {
    pub correlation_id: String,
    pub level: String,
    pub message: String,
}

/// Notes by request id.
#[derive(Debug, Default)]
pub struct LogIndex {
    notes: HashMap<String, Vec<LogNote>>,
    order: VecDeque<String>,
}

/// The request id of a log line: `function_request_id` (Powertools' key), or
/// lambda_runtime's own `requestId`.
fn request_id(line: &Value) -> Option<&str> {
    line.get("function_request_id")
        .or_else(|| line.get("requestId"))
        .and_then(Value::as_str)
}

impl LogIndex {
    /// Records `line` if it is a JSON log line with a request id and a `correlation_id`.
    pub fn record(&mut self, line: &str) {
        if !line.starts_with('{') || !line.contains("correlation_id") {
            return;
        }
        let Ok(value) = serde_json::from_str::<Value>(line) else {
            return;
        };
        let (Some(request), Some(correlation_id)) = (
            request_id(&value),
            value.get("correlation_id").and_then(Value::as_str),
        ) else {
            return;
        };
        let text = |key: &str| {
            value
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let note = LogNote {
            correlation_id: correlation_id.to_string(),
            level: text("level"),
            message: text("message"),
        };
        if !self.notes.contains_key(request) {
            if self.order.len() >= MAX_REQUESTS
                && let Some(oldest) = self.order.pop_front()
            {
                self.notes.remove(&oldest);
            }
            self.order.push_back(request.to_string());
        }
        let notes = self.notes.entry(request.to_string()).or_default();
        if notes.len() < MAX_NOTES && !notes.contains(&note) {
            notes.push(note);
        }
    }

    /// The notes of one request id, in the order they were logged.
    pub fn notes(&self, request_id: &str) -> &[LogNote] {
        self.notes.get(request_id).map(Vec::as_slice).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_with_a_request_and_a_correlation_id_are_noted_once() {
        let mut index = LogIndex::default();
        let line = r#"{"level":"INFO","message":"alert routed","function_request_id":"r-1","correlation_id":"c-1"}"#;
        index.record(line);
        index.record(line);
        index.record(r#"{"level":"INFO","message":"x","requestId":"r-1","correlation_id":"c-2"}"#);
        index.record(r#"{"level":"INFO","message":"no correlation","requestId":"r-1"}"#);
        index.record("plain text correlation_id");
        let notes = index.notes("r-1");
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert_eq!(notes[0].message, "alert routed");
        assert_eq!(notes[1].correlation_id, "c-2");
        assert!(index.notes("r-2").is_empty());
    }

    #[test]
    fn the_oldest_requests_are_dropped_first() {
        let mut index = LogIndex::default();
        for i in 0..=MAX_REQUESTS {
            index.record(&format!(
                r#"{{"message":"m","requestId":"r-{i}","correlation_id":"c"}}"#
            ));
        }
        assert!(index.notes("r-0").is_empty());
        assert_eq!(index.notes(&format!("r-{MAX_REQUESTS}")).len(), 1);
    }
}
