use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use shared::aws::{DynamoEventStore, DynamoOutbox, SnsSms, load_config};
use shared::config::{ConfigError, required_env};
use shared::ports::{MessageSender, OutboxOnlySender};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let config = load_config().await;
    let outbox = DynamoOutbox::new(&config, required_env("OUTBOX_TABLE")?);
    let events = DynamoEventStore::new(&config, required_env("EVENTS_TABLE")?);
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
    let deps = notify::Deps {
        outbox: &outbox,
        sender: sender.as_ref(),
        events: &events,
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, Error>(
            shared::telemetry::invocation(
                notify::SOURCE,
                notify::handle(deps, &event.payload, chrono::Utc::now()),
            )
            .await?,
        )
    }))
    .await
}
