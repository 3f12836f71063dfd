use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use shared::aws::{DynamoDirectory, DynamoEventStore, SqsNotificationQueue, load_config};
use shared::config::required_env;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let config = load_config().await;
    let directory = DynamoDirectory::new(&config, required_env("DIRECTORY_TABLE")?);
    let events = DynamoEventStore::new(&config, required_env("EVENTS_TABLE")?);
    let queue = SqsNotificationQueue::new(&config, required_env("NOTIFY_QUEUE_URL")?);
    let deps = route::Deps {
        directory: &directory,
        events: &events,
        queue: &queue,
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, Error>(
            shared::telemetry::invocation(
                route::SOURCE,
                route::handle(deps, &event.payload, chrono::Utc::now()),
            )
            .await?,
        )
    }))
    .await
}
