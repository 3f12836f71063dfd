use aws_adapters::{
    DynamoDirectory, DynamoEventStore, DynamoReadModels, DynamoShardStore, DynamoStateStore,
    DynamoVillageStats, DynamoVitals, load_config,
};
use domain::upcast::Upcasters;
use lambda_kit::config::required_env;
use lambda_kit::{Error, Invocation};
use serde_json::Value;

/// The adapters `query` runs with, built once per process.
struct Adapters {
    views: DynamoReadModels,
    events: DynamoEventStore,
    directory: DynamoDirectory,
    upcasters: Upcasters,
    vitals: DynamoVitals,
    // issue 15 (detect-state): per stream shard (`DETECT_STATE=shard`, the default), or per
    // patient (`DETECT_STATE=patient`).
    states: Box<dyn application::ports::PatientStateStore>,
    stats: DynamoVillageStats,
}

async fn adapters() -> Result<Adapters, Error> {
    let config = load_config().await;
    Ok(Adapters {
        views: DynamoReadModels::new(&config, required_env("DASHBOARD_TABLE")?),
        events: DynamoEventStore::new(&config, required_env("EVENTS_TABLE")?),
        directory: DynamoDirectory::new(&config, required_env("DIRECTORY_TABLE")?),
        upcasters: Upcasters::default(),
        vitals: DynamoVitals::new(&config, required_env("VITALS_TABLE")?),
        states: if std::env::var("DETECT_STATE").as_deref() != Ok("patient") {
            Box::new(application::shard_state::ShardedStates {
                store: DynamoShardStore::new(&config, required_env("STATE_TABLE")?),
            })
        } else {
            Box::new(DynamoStateStore::new(&config, required_env("STATE_TABLE")?))
        },
        stats: DynamoVillageStats::new(&config, required_env("VILLAGE_STATS_TABLE")?),
    })
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_kit::run(
        query::SOURCE,
        adapters(),
        async |a: &Adapters, invocation: Invocation<Value>| {
            let deps = query::Deps {
                views: &a.views,
                models: &a.views,
                events: &a.events,
                access: &a.directory,
                upcasters: &a.upcasters,
                vitals: &a.vitals,
                states: a.states.as_ref(),
                stats: &a.stats,
                now: invocation.now,
            };
            query::invoke(&deps, invocation.payload).await
        },
    )
    .await
}
