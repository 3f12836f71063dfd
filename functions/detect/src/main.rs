//! `detect` and the detection sweep: one binary, two functions. `DETECT_MODE` chooses:
//! `stream` (default) handles Kinesis batches of readings; `sweep` handles the scheduled
//! event (EventBridge) and evaluates every patient whose state is due.

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};
use aws_adapters::{
    DynamoDirectory, DynamoEventStore, DynamoIdempotencyStore, DynamoStateStore, SnsAlertPublisher,
    SqsDeadLetters, load_config,
};
use lambda_kit::config::{ConfigError, required_env};
use application::idempotency::{Idempotency, deadline_from_millis};

/// Environment variable choosing the function: `stream` (default) or `sweep`.
const MODE_ENV: &str = "DETECT_MODE";

fn auto_dispatch_max_age() -> Result<chrono::Duration, ConfigError> {
    let Ok(value) = std::env::var(detect::AUTO_DISPATCH_MAX_AGE_ENV) else {
        return Ok(chrono::Duration::seconds(
            detect::DEFAULT_AUTO_DISPATCH_MAX_AGE_SECONDS,
        ));
    };
    value
        .trim()
        .parse::<u32>()
        .map(|s| chrono::Duration::seconds(i64::from(s)))
        .map_err(|e| ConfigError::Invalid {
            name: detect::AUTO_DISPATCH_MAX_AGE_ENV.to_string(),
            value,
            reason: e.to_string(),
        })
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_kit::telemetry::init();
    let mode = std::env::var(MODE_ENV).unwrap_or_else(|_| "stream".to_string());
    if mode != "stream" && mode != "sweep" {
        return Err(format!("{MODE_ENV} must be `stream` or `sweep` (got {mode:?})").into());
    }
    let config = load_config().await;
    let rules_path = std::env::var_os(detect::RULES_PATH_ENV).map(std::path::PathBuf::from);
    let rules = detect::load_rules(rules_path.as_deref())?;
    tracing::info!(
        mode,
        rules = rules.rules().len(),
        allowed_lateness_seconds = rules.config().allowed_lateness_seconds,
        source = %rules_path.as_deref().map_or("embedded rules.yaml".to_string(), |p| p.display().to_string()),
        "detection rules loaded"
    );
    let state = DynamoStateStore::new(&config, required_env("STATE_TABLE")?);
    let events = DynamoEventStore::new(&config, required_env("EVENTS_TABLE")?);
    let directory = DynamoDirectory::new(&config, required_env("DIRECTORY_TABLE")?);
    let publisher = SnsAlertPublisher::new(&config, required_env("ALERTS_TOPIC_ARN")?);
    let dead_letters = SqsDeadLetters::new(&config, required_env("DEAD_LETTER_QUEUE_URL")?);
    let idempotency_store =
        DynamoIdempotencyStore::new(&config, required_env("IDEMPOTENCY_TABLE")?);
    let publish_guard = Idempotency::new(&idempotency_store, detect::publish_idempotency_config());
    let deps = detect::Deps {
        rules: &rules,
        state: &state,
        events: &events,
        directory: &directory,
        publisher: &publisher,
        dead_letters: &dead_letters,
        publish_guard: &publish_guard,
        auto_dispatch_max_age: auto_dispatch_max_age()?,
    };
    let (deps, publish_guard) = (&deps, &publish_guard);
    if mode == "sweep" {
        return lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
            let guard = publish_guard.with_deadline(deadline_from_millis(event.context.deadline));
            let deps = detect::Deps {
                publish_guard: &guard,
                ..*deps
            };
            let summary =
                lambda_kit::telemetry::invocation("sweep", detect::sweep(&deps, chrono::Utc::now()))
                    .await?;
            Ok::<Value, Error>(json!({
                "due": summary.due,
                "failed": summary.failed,
                "evaluated": summary.batch.evaluated,
                "alertsRaised": summary.batch.alerts_raised,
                "alertsResolved": summary.batch.alerts_resolved,
            }))
        }))
        .await;
    }
    lambda_runtime::run(service_fn(
        // `detect::kinesis::Event` is `KinesisEvent` with a faster base64 decoder.
        move |event: LambdaEvent<detect::kinesis::Event>| async move {
            // In-progress publish records expire with this invocation.
            let guard = publish_guard.with_deadline(deadline_from_millis(event.context.deadline));
            let deps = detect::Deps {
                publish_guard: &guard,
                ..*deps
            };
            let batch = KinesisEvent::from(event.payload);
            Ok::<KinesisEventResponse, Error>(
                lambda_kit::telemetry::invocation(
                    detect::SOURCE,
                    detect::handle(&deps, &batch, chrono::Utc::now()),
                )
                .await,
            )
        },
    ))
    .await
}
