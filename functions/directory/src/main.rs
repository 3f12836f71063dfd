use std::convert::Infallible;

use aws_adapters::{DynamoDirectory, DynamoOnboarding, DynamoWorkers, load_config};
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use lambda_kit::config::required_env;
use lambda_kit::{Error, Invocation};

/// The directory and workers tables, read and written.
struct Adapters {
    directory: DynamoDirectory,
    workers: DynamoWorkers,
    writer: DynamoOnboarding,
}

async fn adapters() -> Result<Adapters, Error> {
    let config = load_config().await;
    let directory_table = required_env("DIRECTORY_TABLE")?;
    let workers_table = required_env("WORKERS_TABLE")?;
    Ok(Adapters {
        directory: DynamoDirectory::new(&config, directory_table.clone()),
        workers: DynamoWorkers::new(&config, workers_table.clone()),
        writer: DynamoOnboarding::new(&config, directory_table, workers_table),
    })
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_kit::run(
        directory::SOURCE,
        adapters(),
        // Every outcome of a request, failures included, is an HTTP response.
        async |a: &Adapters, invocation: Invocation<ApiGatewayV2httpRequest>| {
            let deps = directory::Deps {
                directory: &a.directory,
                contacts: &a.directory,
                access: &a.directory,
                workers: &a.workers,
                writer: &a.writer,
            };
            Ok::<_, Infallible>(directory::handle(&deps, &invocation.payload).await)
        },
    )
    .await
}
