use std::convert::Infallible;

use application::retry::RetryPolicy;
use aws_adapters::{DynamoDirectory, KinesisSink, load_config};
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use lambda_kit::config::required_env;
use lambda_kit::{Error, Invocation};

/// The readings stream, and the directory that says who may post for whom.
struct Adapters {
    sink: KinesisSink,
    directory: DynamoDirectory,
}

async fn adapters() -> Result<Adapters, Error> {
    let config = load_config().await;
    Ok(Adapters {
        sink: KinesisSink::new(
            &config,
            required_env("READINGS_STREAM")?,
            RetryPolicy::default(),
        ),
        directory: DynamoDirectory::new(&config, required_env("DIRECTORY_TABLE")?),
    })
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_kit::run(
        ingest::SOURCE,
        adapters(),
        // Every outcome of a request, failures included, is an HTTP response.
        async |a: &Adapters, invocation: Invocation<ApiGatewayV2httpRequest>| {
            let response =
                ingest::handle(&a.sink, &a.directory, &invocation.payload, invocation.now).await;
            Ok::<_, Infallible>(response)
        },
    )
    .await
}
