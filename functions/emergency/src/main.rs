use std::time::Duration;

use aws_adapters::SimulatedAmbulance;
use aws_adapters::{
    DynamoDirectory, DynamoEventStore, DynamoLedger, DynamoWorkers, SqsBus, SqsNotificationQueue,
    load_config,
};
use lambda_kit::config::{ConfigError, required_env};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

fn parsed<T: std::str::FromStr>(name: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    let value = required_env(name)?;
    value
        .trim()
        .parse()
        .map_err(|e: T::Err| ConfigError::Invalid {
            name: name.to_string(),
            value,
            reason: e.to_string(),
        })
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_kit::telemetry::init();
    let config = load_config().await;
    let events = DynamoEventStore::new(&config, required_env("EVENTS_TABLE")?);
    let directory = DynamoDirectory::new(&config, required_env("DIRECTORY_TABLE")?);
    let workers = DynamoWorkers::new(&config, required_env("WORKERS_TABLE")?);
    let ledger = DynamoLedger::new(&config, required_env("LEDGER_TABLE")?);
    let bus = SqsBus::new(
        &config,
        required_env("SAGA_QUEUE_URL")?,
        required_env("STEPS_QUEUE_URL")?,
        required_env("ESCALATION_QUEUE_URL")?,
    );
    let notifications = SqsNotificationQueue::new(&config, required_env("NOTIFY_QUEUE_URL")?);
    let ambulance = SimulatedAmbulance::new(
        parsed("AMBULANCE_FAILURE_RATE")?,
        Duration::from_millis(parsed("AMBULANCE_DELAY_MS")?),
    );
    let deps = emergency::Deps {
        events: &events,
        reader: &events,
        bus: &bus,
        directory: &directory,
        contacts: &directory,
        workers: &workers,
        ambulance: &ambulance,
        ledger: &ledger,
        notifications: &notifications,
        config: emergency::Config {
            step_deadline_seconds: parsed("STEP_DEADLINE_SECONDS")?,
            ack_timeout_seconds: parsed("ACK_TIMEOUT_SECONDS")?,
            hospital_phone: required_env("HOSPITAL_PHONE")?,
            escalation_queue_arn: required_env("ESCALATION_QUEUE_ARN")?,
        },
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(emergency::handle(deps, event.payload, chrono::Utc::now()).await?)
    }))
    .await
}
