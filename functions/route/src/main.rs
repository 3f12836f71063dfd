use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use aws_adapters::{
    DynamoDirectory, DynamoEventStore, DynamoIdempotencyStore, SqsNotificationQueue, load_config,
};
use lambda_kit::config::required_env;
use application::idempotency::{Idempotency, deadline_from_millis};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_kit::telemetry::init();
    let config = load_config().await;
    let directory = DynamoDirectory::new(&config, required_env("DIRECTORY_TABLE")?);
    let events = DynamoEventStore::new(&config, required_env("EVENTS_TABLE")?);
    let queue = SqsNotificationQueue::new(&config, required_env("NOTIFY_QUEUE_URL")?);
    let idempotency_store =
        DynamoIdempotencyStore::new(&config, required_env("IDEMPOTENCY_TABLE")?);
    let idempotency = Idempotency::new(&idempotency_store, route::idempotency_config());
    let (directory, events, queue, idempotency) = (&directory, &events, &queue, &idempotency);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        // In-progress records expire with this invocation.
        let guard = idempotency.with_deadline(deadline_from_millis(event.context.deadline));
        let deps = route::Deps {
            directory,
            events,
            reader: events,
            queue,
            idempotency: &guard,
        };
        Ok::<SqsBatchResponse, Error>(
            lambda_kit::telemetry::invocation(
                route::SOURCE,
                route::handle(&deps, &event.payload, chrono::Utc::now()),
            )
            .await?,
        )
    }))
    .await
}
