use std::sync::Arc;

use application::idempotency::{Config, Idempotency};
use application::ports::{MessageSender, OutboxOnlySender};
use aws_adapters::{
    DynamoEventStore, DynamoIdempotencyStore, DynamoOutbox, SnsSms, SqsParking, load_config,
};
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_kit::config::{ConfigError, required_env};
use lambda_kit::{Error, Invocation};

/// The adapters `notify` runs with, built once per process.
struct Adapters {
    outbox: DynamoOutbox,
    events: DynamoEventStore,
    sender: Box<dyn MessageSender>,
    idempotency: DynamoIdempotencyStore,
    idempotency_config: Arc<Config>,
    parking: SqsParking,
}

async fn adapters() -> Result<Adapters, Error> {
    let config = load_config().await;
    let channel = required_env("NOTIFICATION_CHANNEL")?;
    let sender: Box<dyn MessageSender> = match channel.as_str() {
        "sms" => Box::new(SnsSms::new(&config)),
        "outbox" => Box::new(OutboxOnlySender),
        _ => {
            return Err(ConfigError::Invalid {
                name: "NOTIFICATION_CHANNEL".into(),
                value: channel,
                reason: "expected sms or outbox".into(),
            }
            .into());
        }
    };
    Ok(Adapters {
        outbox: DynamoOutbox::new(&config, required_env("OUTBOX_TABLE")?),
        events: DynamoEventStore::new(&config, required_env("EVENTS_TABLE")?),
        sender,
        idempotency: DynamoIdempotencyStore::new(&config, required_env("IDEMPOTENCY_TABLE")?),
        idempotency_config: Arc::new(notify::idempotency_config()),
        parking: SqsParking::new(&config, required_env("PARKED_QUEUE_URL")?),
    })
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_kit::run(
        notify::SOURCE,
        adapters(),
        async |a: &Adapters, invocation: Invocation<SqsEvent>| {
            // In-progress records expire with this invocation.
            let idempotency = Idempotency::new(&a.idempotency, Arc::clone(&a.idempotency_config))
                .with_deadline(invocation.deadline());
            let deps = notify::Deps {
                outbox: &a.outbox,
                sender: a.sender.as_ref(),
                events: &a.events,
                idempotency: &idempotency,
                parking: &a.parking,
            };
            notify::handle(&deps, &invocation.payload, invocation.now).await
        },
    )
    .await
}
