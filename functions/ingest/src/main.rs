use std::convert::Infallible;

use application::retry::RetryPolicy;
use aws_adapters::{DynamoDirectory, KinesisSink, SdkConfig, load_config};
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use lambda_kit::config::required_env;
use lambda_kit::{Error, Invocation};
use serde_json::{Value, json};

/// The readings stream, and the directory that says who may post for whom.
struct Adapters {
    sink: KinesisSink,
    directory: DynamoDirectory,
}

fn kinesis_sink(config: &SdkConfig) -> Result<KinesisSink, Error> {
    Ok(KinesisSink::new(
        config,
        required_env("READINGS_STREAM")?,
        RetryPolicy::default(),
    ))
}

async fn sink() -> Result<KinesisSink, Error> {
    kinesis_sink(&load_config().await)
}

async fn adapters() -> Result<Adapters, Error> {
    let config = load_config().await;
    Ok(Adapters {
        sink: kinesis_sink(&config)?,
        directory: DynamoDirectory::new(&config, required_env("DIRECTORY_TABLE")?),
    })
}

/// Selects what this binary does: `http` (default: `POST /readings`) or `canary` (the
/// scheduled pipeline heartbeat, `ingest::canary`; it needs only the stream).
const MODE_ENV: &str = "INGEST_MODE";

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mode = std::env::var(MODE_ENV).unwrap_or_else(|_| "http".to_string());
    match mode.as_str() {
        "http" => {
            lambda_kit::run(
                ingest::SOURCE,
                adapters(),
                // Every outcome of a request, failures included, is an HTTP response.
                async |a: &Adapters, invocation: Invocation<ApiGatewayV2httpRequest>| {
                    let response = ingest::handle_until(
                        &a.sink,
                        &a.directory,
                        &invocation.payload,
                        invocation.now,
                        invocation.deadline(),
                    )
                    .await;
                    Ok::<_, Infallible>(response)
                },
            )
            .await
        }
        "canary" => {
            lambda_kit::run(
                ingest::canary::CANARY_SOURCE,
                sink(),
                async |sink: &KinesisSink, invocation: Invocation<Value>| {
                    let correlation_id = format!("heartbeat-{}", invocation.context.request_id);
                    let readings = ingest::canary::beat(
                        sink,
                        invocation.now,
                        invocation.deadline(),
                        &correlation_id,
                    )
                    .await?;
                    Ok::<_, application::ports::PortError>(
                        json!({"readings": readings, "correlationId": correlation_id}),
                    )
                },
            )
            .await
        }
        other => Err(format!("{MODE_ENV} must be `http` or `canary` (got {other:?})").into()),
    }
}
