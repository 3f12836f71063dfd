//! Lambda event filtering (`FilterCriteria`) of DynamoDB stream records.

use anyhow::{Result, bail};
use serde_json::Value;

use super::payload::{RecordBody, StreamRecord};

/// True when `record` matches a Lambda event filter `pattern`: every key of the pattern is
/// in the record (or, for `[{"exists": false}]`, not in it), a nested object matches
/// recursively and a list holds the allowed values or `{"exists": true|false}`. (Only
/// equality and `exists` are supported; [`super::EventSourceMapping::from_event`] refuses
/// other rules.)
pub fn filter_matches(pattern: &Value, record: &Value) -> bool {
    match pattern {
        Value::Object(fields) => fields.iter().all(|(key, expected)| match record.get(key) {
            Some(actual) => filter_matches(expected, actual),
            None => expects_absent(expected),
        }),
        Value::Array(allowed) => allowed.iter().any(|rule| match exists_rule(rule) {
            Some(exists) => exists,
            None => rule == record,
        }),
        _ => false,
    }
}

/// `{"exists": b}` -> `Some(b)`.
fn exists_rule(rule: &Value) -> Option<bool> {
    match rule.as_object() {
        Some(fields) if fields.len() == 1 => fields.get("exists")?.as_bool(),
        _ => None,
    }
}

/// Whether a pattern matches a field that is not there: `[{"exists": false}]`.
fn expects_absent(pattern: &Value) -> bool {
    pattern
        .as_array()
        .is_some_and(|rules| rules.iter().any(|r| exists_rule(r) == Some(false)))
}

/// Checks that a filter pattern uses only what [`filter_matches`] supports.
pub(super) fn check_filter_pattern(pattern: &Value) -> Result<()> {
    match pattern {
        Value::Object(fields) => fields.values().try_for_each(check_filter_pattern),
        Value::Array(allowed) => {
            if let Some(rule) = allowed
                .iter()
                .find(|v| (v.is_object() && exists_rule(v).is_none()) || v.is_array())
            {
                bail!(
                    "filter rule {rule} is not supported by devstack (only exact values and exists)"
                );
            }
            Ok(())
        }
        other => bail!("filter pattern value {other} must be a list of values or an object"),
    }
}

/// The records a mapping's filters let through: all of them when there are no filters;
/// otherwise the DynamoDB stream records that match any filter (the others are dropped, and
/// checkpointed like processed ones).
pub(super) fn keep_matching(filters: &[Value], records: Vec<StreamRecord>) -> Vec<StreamRecord> {
    match filters {
        [] => records,
        filters => records
            .into_iter()
            .filter(|r| match &r.body {
                RecordBody::DynamoDb(record) => filters.iter().any(|f| filter_matches(f, record)),
                RecordBody::Kinesis { .. } => true,
            })
            .collect(),
    }
}
