//! AWS adapters of the ports. Every client is built from `aws-config`'s defaults, which
//! honour `AWS_ENDPOINT_URL` (the local emulator) and the Lambda environment.

mod ambulance;
mod dynamodb;
mod emergency;
mod event_store;
mod idempotency;
mod kinesis;
mod sns;
mod sqs;

pub use ambulance::SimulatedAmbulance;
pub use dynamodb::{
    BOARD_INDEX, DynamoDirectory, DynamoOutbox, DynamoReadModels, DynamoStateStore,
};
pub use emergency::{DynamoLedger, DynamoWorkers, SqsBus};
pub use event_store::{ALL_INDEX, DynamoEventStore, event_from_stream_image};
pub use idempotency::DynamoIdempotencyStore;
pub use kinesis::KinesisSink;
pub use sns::{SnsAlertPublisher, SnsSms};
pub use sqs::{SqsDeadLetters, SqsNotificationQueue};

/// Loads the SDK configuration from the environment.
pub async fn load_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// Text of an SDK error with its service error details (the default `Display` says only
/// "service error").
pub(crate) fn describe<E, R>(err: &aws_sdk_dynamodb::error::SdkError<E, R>) -> String
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use std::error::Error;
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
