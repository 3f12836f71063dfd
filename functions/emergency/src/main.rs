use std::time::Duration;

use aws_adapters::{
    ChannelUrls, DynamoAckCodes, DynamoDirectory, DynamoEventStore, DynamoLedger, DynamoWorkers,
    SimulatedAmbulance, SqsBus, SqsNotificationQueue, load_config,
};
use lambda_kit::config::{parsed, parsed_or, required_env};
use lambda_kit::{Error, Invocation};
use serde_json::Value;

/// The adapters and settings the emergency functions run with, built once per process.
struct Adapters {
    events: DynamoEventStore,
    directory: DynamoDirectory,
    ack_codes: DynamoAckCodes,
    workers: DynamoWorkers,
    ledger: DynamoLedger,
    bus: SqsBus,
    notifications: SqsNotificationQueue,
    ambulance: SimulatedAmbulance,
    config: emergency::Config,
}

async fn adapters() -> Result<Adapters, Error> {
    let config = load_config().await;
    Ok(Adapters {
        events: DynamoEventStore::new(&config, required_env("EVENTS_TABLE")?),
        directory: DynamoDirectory::new(&config, required_env("DIRECTORY_TABLE")?),
        ack_codes: DynamoAckCodes::new(&config, required_env("DIRECTORY_TABLE")?),
        workers: DynamoWorkers::new(&config, required_env("WORKERS_TABLE")?),
        // A claim holds as long as the attempt that made it can run (the steps function's
        // timeout): after that it has crashed or timed out, and a retry takes it over.
        ledger: DynamoLedger::new(&config, required_env("LEDGER_TABLE")?).with_claim_timeout(
            chrono::Duration::seconds(parsed_or(
                "LEDGER_CLAIM_TIMEOUT_SECONDS",
                application::ports::LEDGER_CLAIM_TIMEOUT_SECONDS,
            )?),
        ),
        bus: SqsBus::new(
            &config,
            ChannelUrls {
                saga: required_env("SAGA_QUEUE_URL")?,
                steps: required_env("STEPS_QUEUE_URL")?,
                escalation: required_env("ESCALATION_QUEUE_URL")?,
                timers: required_env("TIMERS_QUEUE_URL")?,
            },
        ),
        notifications: SqsNotificationQueue::new(&config, required_env("NOTIFY_QUEUE_URL")?),
        ambulance: SimulatedAmbulance::new(
            parsed("AMBULANCE_FAILURE_RATE")?,
            Duration::from_millis(parsed("AMBULANCE_DELAY_MS")?),
        ),
        config: emergency::Config {
            step_deadline_seconds: parsed("STEP_DEADLINE_SECONDS")?,
            ack_timeout_seconds: parsed("ACK_TIMEOUT_SECONDS")?,
            hospital_phone: required_env("HOSPITAL_PHONE")?,
            // i18n (issue 16): the hospital desk's SMS language; English unless set.
            hospital_language: parsed_or("HOSPITAL_LANGUAGE", "en".to_string())?,
            open_timeout_seconds: parsed("OPEN_TIMEOUT_SECONDS")?,
            escalation_queue_arn: required_env("ESCALATION_QUEUE_ARN")?,
            inbound_queue_arn: required_env("INBOUND_QUEUE_ARN")?,
        },
    })
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_kit::run(
        emergency::SOURCE,
        adapters(),
        // An HTTP API request or an SQS batch: `handle` tells them apart.
        async |a: &Adapters, invocation: Invocation<Value>| {
            let deps = emergency::Deps {
                events: &a.events,
                reader: &a.events,
                bus: &a.bus,
                directory: &a.directory,
                access: &a.directory,
                contacts: &a.directory,
                workers: &a.workers,
                ambulance: &a.ambulance,
                ledger: &a.ledger,
                notifications: &a.notifications,
                ack_codes: &a.ack_codes,
                config: a.config.clone(),
            };
            emergency::handle(&deps, invocation.payload, invocation.now).await
        },
    )
    .await
}
