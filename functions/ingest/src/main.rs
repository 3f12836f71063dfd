use std::convert::Infallible;

use application::retry::RetryPolicy;
use aws_adapters::{KinesisSink, load_config};
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use lambda_kit::config::required_env;
use lambda_kit::{Error, Invocation};

async fn sink() -> Result<KinesisSink, Error> {
    let config = load_config().await;
    Ok(KinesisSink::new(
        &config,
        required_env("READINGS_STREAM")?,
        RetryPolicy::default(),
    ))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_kit::run(
        ingest::SOURCE,
        sink(),
        // Every outcome of a request, failures included, is an HTTP response.
        async |sink: &KinesisSink, invocation: Invocation<ApiGatewayV2httpRequest>| {
            Ok::<_, Infallible>(ingest::handle(sink, &invocation.payload, invocation.now).await)
        },
    )
    .await
}
