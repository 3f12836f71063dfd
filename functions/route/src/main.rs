use std::sync::Arc;

use application::idempotency::{Config, Idempotency};
use aws_adapters::{
    DynamoAckCodes, DynamoDirectory, DynamoEventStore, DynamoIdempotencyStore, DynamoWorkers,
    SqsNotificationQueue, load_config,
};
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_kit::config::required_env;
use lambda_kit::{Error, Invocation};

/// The adapters `route` runs with, built once per process.
struct Adapters {
    directory: DynamoDirectory,
    workers: DynamoWorkers,
    ack_codes: DynamoAckCodes,
    events: DynamoEventStore,
    queue: SqsNotificationQueue,
    idempotency: DynamoIdempotencyStore,
    idempotency_config: Arc<Config>,
}

async fn adapters() -> Result<Adapters, Error> {
    let config = load_config().await;
    Ok(Adapters {
        directory: DynamoDirectory::new(&config, required_env("DIRECTORY_TABLE")?),
        workers: DynamoWorkers::new(&config, required_env("WORKERS_TABLE")?),
        ack_codes: DynamoAckCodes::new(&config, required_env("DIRECTORY_TABLE")?),
        events: DynamoEventStore::new(&config, required_env("EVENTS_TABLE")?),
        queue: SqsNotificationQueue::new(&config, required_env("NOTIFY_QUEUE_URL")?),
        idempotency: DynamoIdempotencyStore::new(&config, required_env("IDEMPOTENCY_TABLE")?),
        idempotency_config: Arc::new(route::idempotency_config()),
    })
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_kit::run(
        route::SOURCE,
        adapters(),
        async |a: &Adapters, invocation: Invocation<SqsEvent>| {
            // In-progress records expire with this invocation.
            let idempotency = Idempotency::new(&a.idempotency, Arc::clone(&a.idempotency_config))
                .with_deadline(invocation.deadline());
            let deps = route::Deps {
                directory: &a.directory,
                workers: &a.workers,
                events: &a.events,
                reader: &a.events,
                queue: &a.queue,
                ack_codes: &a.ack_codes,
                idempotency: &idempotency,
            };
            route::handle(&deps, &invocation.payload, invocation.now).await
        },
    )
    .await
}
