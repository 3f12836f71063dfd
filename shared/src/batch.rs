//! Partial batch responses for SQS-triggered handlers.

use std::future::Future;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsMessage};

/// Runs `process` on every message in order and reports the ones that failed, so Lambda
/// deletes the rest and redelivers only those (they reach the queue's DLQ after
/// `maxReceiveCount` attempts). A message without a `messageId` cannot be reported alone:
/// the whole batch fails then.
pub async fn process_sqs<'a, F, Fut, E>(
    messages: &'a [SqsMessage],
    mut process: F,
) -> Result<SqsBatchResponse, BatchError>
where
    F: FnMut(&'a SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut response = SqsBatchResponse::default();
    for message in messages {
        let Some(message_id) = message.message_id.as_deref() else {
            return Err(BatchError::MissingMessageId);
        };
        if let Err(err) = process(message).await {
            tracing::error!(message_id, error = %err, "message failed; it will be retried");
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = message_id.to_string();
            response.batch_item_failures.push(failure);
        }
    }
    crate::metrics::count(
        crate::metrics::BATCH_ITEM_FAILURES,
        response.batch_item_failures.len(),
    );
    Ok(response)
}

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("an SQS message has no messageId; failing the whole batch")]
    MissingMessageId,
}

/// A message's body as bytes (an absent body is empty).
pub fn body(message: &SqsMessage) -> &[u8] {
    message.body.as_deref().unwrap_or_default().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: Option<&str>, body: &str) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = id.map(str::to_string);
        m.body = Some(body.to_string());
        m
    }

    #[tokio::test]
    async fn reports_only_failed_messages() {
        let messages = vec![
            message(Some("a"), "ok"),
            message(Some("b"), "bad"),
            message(Some("c"), "ok"),
        ];
        let response = process_sqs(&messages, |m| async move {
            if body(m) == b"bad" {
                Err("bad body")
            } else {
                Ok(())
            }
        })
        .await
        .unwrap();
        let ids: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(ids, ["b"]);
    }

    #[tokio::test]
    async fn the_number_of_failed_messages_is_a_metric() {
        let messages = vec![message(Some("a"), "bad"), message(Some("b"), "ok")];
        let (response, recorder) = crate::metrics::capture(
            "route",
            process_sqs(&messages, |m| async move {
                if body(m) == b"bad" {
                    Err("bad body")
                } else {
                    Ok(())
                }
            }),
        )
        .await;
        assert_eq!(response.unwrap().batch_item_failures.len(), 1);
        assert_eq!(recorder.total(crate::metrics::BATCH_ITEM_FAILURES), 1.0);
    }

    #[tokio::test]
    async fn a_message_without_id_fails_the_batch() {
        let messages = vec![message(None, "ok")];
        let result = process_sqs(&messages, |_| async { Ok::<(), String>(()) }).await;
        assert!(result.is_err());
    }
}
