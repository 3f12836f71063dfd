use aws_adapters::{DynamoEventStore, DynamoReadModels, DynamoVillageStats, load_config};
use domain::upcast::Upcasters;
use lambda_kit::config::required_env;
use lambda_kit::{Error, Invocation};
use serde_json::Value;

/// The adapters `project` runs with, built once per process.
struct Adapters {
    events: DynamoEventStore,
    views: DynamoReadModels,
    upcasters: Upcasters,
    stats: DynamoVillageStats,
}

async fn adapters() -> Result<Adapters, Error> {
    let config = load_config().await;
    Ok(Adapters {
        events: DynamoEventStore::new(&config, required_env("EVENTS_TABLE")?),
        views: DynamoReadModels::new(&config, required_env("DASHBOARD_TABLE")?),
        upcasters: project::upcasters(),
        stats: DynamoVillageStats::new(&config, required_env("VILLAGE_STATS_TABLE")?),
    })
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_kit::run(
        project::SOURCE,
        adapters(),
        async |a: &Adapters, invocation: Invocation<Value>| {
            let deps = project::Deps {
                events: &a.events,
                views: &a.views,
                upcasters: &a.upcasters,
                stats: &a.stats,
            };
            project::invoke(&deps, invocation.payload).await
        },
    )
    .await
}
