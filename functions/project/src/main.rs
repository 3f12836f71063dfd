use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use shared::aws::{DynamoEventStore, DynamoReadModels, load_config};
use shared::config::required_env;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let config = load_config().await;
    let events = DynamoEventStore::new(&config, required_env("EVENTS_TABLE")?);
    let views = DynamoReadModels::new(&config, required_env("DASHBOARD_TABLE")?);
    let upcasters = project::upcasters();
    let deps = &project::Deps {
        events: &events,
        views: &views,
        upcasters: &upcasters,
    };
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| async move {
        Ok::<DynamoDbEventResponse, Error>(
            shared::telemetry::invocation(project::SOURCE, project::handle(deps, &event.payload))
                .await?,
        )
    }))
    .await
}
