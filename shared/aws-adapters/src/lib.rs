//! AWS adapters of the application's ports, one module per port. Every client is built from
//! `aws-config`'s defaults, which honour `AWS_ENDPOINT_URL` (the local emulator) and the
//! Lambda environment.
//!
//! Modules, with the port each implements:
//! - `reading_sink`: `ReadingSink` on Kinesis (`KinesisSink`).
//! - `event_store`: `EventStreams` and `EventStore` on DynamoDB (`DynamoEventStore`).
//! - `idempotency_store`: `IdempotencyStore` on DynamoDB (`DynamoIdempotencyStore`).
//! - `state_store`: `PatientStateStore` on DynamoDB (`DynamoStateStore`).
//! - `shard_state`: `ShardStateStore` on DynamoDB and `StreamReplay` on Kinesis
//!   (`DynamoShardStore`, `KinesisReplay`): detection state per stream shard.
//! - `read_models`: `ReadModels` on DynamoDB, the dashboard table (`DynamoReadModels`).
//! - `view_queries`: `ViewQueries` on the dashboard table's indexes (`DynamoReadModels`).
//! - `directory`: `Directory` and `Contacts` on DynamoDB, one directory table (`DynamoDirectory`).
//! - `outbox`: `Outbox` on DynamoDB (`DynamoOutbox`).
//! - `workers`: `Workers` on DynamoDB (`DynamoWorkers`).
//! - `step_ledger`: `StepLedger` on DynamoDB (`DynamoLedger`).
//! - `alert_publisher`: `AlertPublisher` on SNS (`SnsAlertPublisher`).
//! - `sms`: `MessageSender` on SNS SMS (`SnsSms`).
//! - `notification_queue`: `NotificationQueue` on SQS FIFO (`SqsNotificationQueue`; its
//!   message group, `notification_group_id`).
//! - `dead_letters`: `DeadLetters` on SQS (`SqsDeadLetters`).
//! - `parking`: `Parking` on SQS, the notify DLQ (`SqsParking`).
//! - `message_bus`: `MessageBus` on SQS (`SqsBus`).
//! - `ambulance`: `AmbulanceProvider`, simulated (`SimulatedAmbulance`).
//! - `vitals`: `RecentVitals` (`DynamoVitals`) and `VillageStats` (`DynamoVillageStats`), the
//!   recent vitals and village statistics tables.
//! - `onboarding`: `DirectoryWriter` on DynamoDB, one transaction per call, over the
//!   directory and workers tables (`DynamoOnboarding`).
//! - `ack_codes`: `AckCodes` on DynamoDB, items `ack#{code}` of the directory table
//!   (`DynamoAckCodes`).
//!
//! Shared by the adapters, no port of their own:
//! - `attributes`: DynamoDB attribute values, SNS/SQS message attributes, SDK error text.
//! - `table`: DynamoDB item operations (get, put, versioned put).
//! - `http_client`: the one HTTPS client every SDK client of a process shares
//!   ([`shared_https_client`], which [`load_config`] sets; issue 15, cold start).

mod attributes;
mod http_client;
mod table;

mod ack_codes;
mod alert_publisher;
mod ambulance;
mod dead_letters;
mod directory;
mod event_store;
mod idempotency_store;
mod message_bus;
mod notification_queue;
mod onboarding;
mod outbox;
mod parking;
mod read_models;
mod reading_sink;
mod shard_state;
mod sms;
mod state_store;
mod step_ledger;
mod view_queries;
mod vitals;
mod workers;

pub use ack_codes::{DynamoAckCodes, ack_code_key};
pub use alert_publisher::SnsAlertPublisher;
pub use ambulance::SimulatedAmbulance;
/// What [`load_config`] returns: functions build their adapters from one.
pub use aws_config::SdkConfig;
pub use dead_letters::SqsDeadLetters;
pub use directory::DynamoDirectory;
pub use event_store::{DynamoEventStore, EVENT_MARKER_ATTRIBUTE, event_from_stream_image};
pub use http_client::shared_https_client;
pub use idempotency_store::DynamoIdempotencyStore;
pub use message_bus::{ChannelUrls, SqsBus};
pub use notification_queue::{SqsNotificationQueue, notification_group_id};
pub use onboarding::DynamoOnboarding;
pub use outbox::DynamoOutbox;
pub use parking::SqsParking;
pub use read_models::{BOARD_INDEX, DynamoReadModels, view_item};
pub use reading_sink::KinesisSink;
pub use shard_state::{DynamoShardStore, KinesisReplay};
pub use sms::SnsSms;
pub use state_store::DynamoStateStore;
pub use step_ledger::DynamoLedger;
pub use vitals::{DynamoVillageStats, DynamoVitals};
pub use workers::DynamoWorkers;

/// Loads the SDK configuration from the environment, with one HTTPS client for every
/// client built from it ([`shared_https_client`]: the TLS root store is parsed once per
/// process, not once per client).
pub async fn load_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(shared_https_client())
        .load()
        .await
}
