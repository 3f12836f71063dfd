use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use aws_adapters::{DynamoEventStore, DynamoReadModels, load_config};
use lambda_kit::config::required_env;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_kit::telemetry::init();
    let config = load_config().await;
    let events = DynamoEventStore::new(&config, required_env("EVENTS_TABLE")?);
    let views = DynamoReadModels::new(&config, required_env("DASHBOARD_TABLE")?);
    let upcasters = project::upcasters();
    let deps = &project::Deps {
        events: &events,
        views: &views,
        upcasters: &upcasters,
    };
    // A stream batch from the event source mapping, or a replay request (direct invocation).
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        lambda_kit::telemetry::invocation(project::SOURCE, async move {
            if let Some(request) = event.payload.get("rebuild") {
                let request: project::Rebuild = serde_json::from_value(request.clone())
                    .map_err(|e| format!("invalid rebuild request: {e}"))?;
                let rebuilt = project::rebuild(deps, &request).await?;
                return Ok::<Value, Error>(serde_json::to_value(rebuilt)?);
            }
            let batch: Event = serde_json::from_value(event.payload)
                .map_err(|e| format!("not a DynamoDB stream event: {e}"))?;
            let response: DynamoDbEventResponse = project::handle(deps, &batch).await?;
            Ok(serde_json::to_value(response)?)
        })
        .await
    }))
    .await
}
