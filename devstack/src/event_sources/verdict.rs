//! What a function's response means for a batch: Lambda's rules for success, partial batch
//! failure (`batchItemFailures`) and failure.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::lambda::InvokeOutcome;

/// What a function's response means for a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchVerdict {
    /// Every record succeeded.
    Success,
    /// The listed items (indices into the batch) failed; the others succeeded.
    Partial(BTreeSet<usize>),
    /// The whole batch failed (function error, timeout, crash, or an invalid
    /// `batchItemFailures` response).
    Failed,
}

/// Interprets an invocation outcome like Lambda does. `ids` are the item identifiers of the
/// batch (sequence numbers or message ids), in batch order.
pub fn classify(
    outcome: &InvokeOutcome,
    ids: &[String],
    report_batch_item_failures: bool,
) -> BatchVerdict {
    let InvokeOutcome::Ok(response) = outcome else {
        return BatchVerdict::Failed;
    };
    if !report_batch_item_failures {
        return BatchVerdict::Success;
    }
    let failures = match response {
        Value::Null => return BatchVerdict::Success,
        Value::Object(map) => match map.get("batchItemFailures") {
            None | Some(Value::Null) => return BatchVerdict::Success,
            Some(Value::Array(items)) => items,
            Some(_) => return BatchVerdict::Failed,
        },
        _ => return BatchVerdict::Failed,
    };
    if failures.is_empty() {
        return BatchVerdict::Success;
    }
    let mut failed = BTreeSet::new();
    for failure in failures {
        let identifier = failure.get("itemIdentifier").and_then(Value::as_str);
        match identifier.and_then(|id| ids.iter().position(|x| x == id)) {
            Some(index) if identifier.is_some_and(|id| !id.is_empty()) => {
                failed.insert(index);
            }
            _ => return BatchVerdict::Failed,
        }
    }
    BatchVerdict::Partial(failed)
}

/// A failed outcome in a few words, for the logs.
pub(super) fn outcome_summary(outcome: &InvokeOutcome) -> String {
    match outcome {
        InvokeOutcome::Ok(_) => "ok (invalid batchItemFailures)".to_string(),
        InvokeOutcome::FunctionError {
            error_type,
            error_message,
        } => format!("{error_type}: {error_message}"),
        InvokeOutcome::Timeout => "timeout".to_string(),
        InvokeOutcome::Crashed(reason) => format!("crashed: {reason}"),
    }
}
