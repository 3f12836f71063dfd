use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use aws_adapters::{KinesisSink, load_config};
use lambda_kit::config::required_env;
use application::retry::RetryPolicy;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_kit::telemetry::init();
    let config = load_config().await;
    let sink = KinesisSink::new(
        &config,
        required_env("READINGS_STREAM")?,
        RetryPolicy::default(),
    );
    let sink = &sink;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayV2httpRequest>| async move {
            Ok::<ApiGatewayV2httpResponse, Error>(
                lambda_kit::telemetry::invocation(
                    ingest::SOURCE,
                    ingest::handle(sink, &event.payload, chrono::Utc::now()),
                )
                .await,
            )
        },
    ))
    .await
}
