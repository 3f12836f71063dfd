use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use shared::aws::{
    DynamoDirectory, DynamoEventStore, DynamoStateStore, SnsAlertPublisher, SqsDeadLetters,
    load_config,
};
use shared::config::required_env;
use shared::detection::default_rules;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let config = load_config().await;
    let rules = default_rules();
    let state = DynamoStateStore::new(&config, required_env("STATE_TABLE")?);
    let events = DynamoEventStore::new(&config, required_env("EVENTS_TABLE")?);
    let directory = DynamoDirectory::new(&config, required_env("DIRECTORY_TABLE")?);
    let publisher = SnsAlertPublisher::new(&config, required_env("ALERTS_TOPIC_ARN")?);
    let dead_letters = SqsDeadLetters::new(&config, required_env("DEAD_LETTER_QUEUE_URL")?);
    let deps = detect::Deps {
        rules: &rules,
        state: &state,
        events: &events,
        directory: &directory,
        publisher: &publisher,
        dead_letters: &dead_letters,
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<KinesisEvent>| async move {
            Ok::<KinesisEventResponse, Error>(
                shared::telemetry::invocation(
                    detect::SOURCE,
                    detect::handle(deps, &event.payload, chrono::Utc::now()),
                )
                .await,
            )
        },
    ))
    .await
}
