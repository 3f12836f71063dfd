//! Lambda event filtering (`FilterCriteria`) of DynamoDB stream records.

use anyhow::{Result, bail};
use serde_json::Value;

use super::payload::{RecordBody, StreamRecord};

/// True when `record` matches a Lambda event filter `pattern`: every key of the pattern is
/// in the record, a nested object matches recursively and a list holds the allowed values.
/// (Only equality is supported; [`super::EventSourceMapping::from_event`] refuses other rules.)
pub fn filter_matches(pattern: &Value, record: &Value) -> bool {
    match pattern {
        Value::Object(fields) => fields.iter().all(|(key, expected)| {
            record
                .get(key)
                .is_some_and(|actual| filter_matches(expected, actual))
        }),
        Value::Array(allowed) => allowed.iter().any(|value| value == record),
        _ => false,
    }
}

/// Checks that a filter pattern uses only what [`filter_matches`] supports.
pub(super) fn check_filter_pattern(pattern: &Value) -> Result<()> {
    match pattern {
        Value::Object(fields) => fields.values().try_for_each(check_filter_pattern),
        Value::Array(allowed) => {
            if let Some(rule) = allowed.iter().find(|v| v.is_object() || v.is_array()) {
                bail!("filter rule {rule} is not supported by devstack (only exact values)");
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
