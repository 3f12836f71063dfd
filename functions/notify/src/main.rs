use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use aws_adapters::{DynamoEventStore, DynamoIdempotencyStore, DynamoOutbox, SnsSms, load_config};
use lambda_kit::config::{ConfigError, required_env};
use application::idempotency::{Idempotency, deadline_from_millis};
use application::ports::{MessageSender, OutboxOnlySender};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_kit::telemetry::init();
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
    let idempotency_store =
        DynamoIdempotencyStore::new(&config, required_env("IDEMPOTENCY_TABLE")?);
    let idempotency = Idempotency::new(&idempotency_store, notify::idempotency_config());
    let (outbox, sender, events, idempotency) = (&outbox, sender.as_ref(), &events, &idempotency);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        // In-progress records expire with this invocation.
        let guard = idempotency.with_deadline(deadline_from_millis(event.context.deadline));
        let deps = notify::Deps {
            outbox,
            sender,
            events,
            idempotency: &guard,
        };
        Ok::<SqsBatchResponse, Error>(
            lambda_kit::telemetry::invocation(
                notify::SOURCE,
                notify::handle(&deps, &event.payload, chrono::Utc::now()),
            )
            .await?,
        )
    }))
    .await
}
