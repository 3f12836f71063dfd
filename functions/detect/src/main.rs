//! `detect` and the detection sweep: one binary, two functions. `DETECT_MODE` chooses:
//! `stream` (default) handles Kinesis batches of readings; `sweep` handles the scheduled
//! event (EventBridge) and evaluates every patient whose state is due.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;

use application::idempotency::{Config, Idempotency};
use aws_adapters::{
    DynamoDirectory, DynamoEventStore, DynamoIdempotencyStore, DynamoShardStore, DynamoStateStore,
    DynamoVillageStats, DynamoVitals, KinesisReplay, SnsAlertPublisher, SqsDeadLetters,
    load_config,
};
use aws_lambda_events::event::kinesis::KinesisEvent;
use detect::shard::{ShardCache, Shards};
use domain::detection::RuleSet;
use lambda_kit::config::{parsed_or, required_env};
use lambda_kit::{Error, Invocation};
use serde_json::{Value, json};

/// Environment variable choosing the function: `stream` (default) or `sweep`.
const MODE_ENV: &str = "DETECT_MODE";

/// The rules and adapters `detect` runs with, built once per process.
struct Adapters {
    rules: RuleSet,
    state: DynamoStateStore,
    events: DynamoEventStore,
    directory: DynamoDirectory,
    publisher: SnsAlertPublisher,
    dead_letters: SqsDeadLetters,
    idempotency: DynamoIdempotencyStore,
    publish_config: Arc<Config>,
    auto_dispatch_max_age: chrono::Duration,
    vitals: DynamoVitals,
    village_stats: DynamoVillageStats,
    // Detection state per stream shard (issue 15): the snapshot store, the stream replay
    // and this process's sessions.
    shard_store: DynamoShardStore,
    replay: KinesisReplay,
    sessions: ShardCache,
    buckets: u32,
    flush_interval: chrono::Duration,
    /// `DETECT_STATE=shard`: state per stream shard; otherwise per patient.
    per_shard: bool,
}

impl Adapters {
    /// The handler's dependencies for one invocation, whose in-progress publish records
    /// expire with it.
    fn deps<'a>(&'a self, publish_guard: &'a Idempotency<'a>) -> detect::Deps<'a> {
        detect::Deps {
            rules: &self.rules,
            state: &self.state,
            events: &self.events,
            directory: &self.directory,
            publisher: &self.publisher,
            dead_letters: &self.dead_letters,
            publish_guard,
            auto_dispatch_max_age: self.auto_dispatch_max_age,
            vitals: &self.vitals,
            village_stats: &self.village_stats,
        }
    }

    fn shards(&self) -> Shards<'_> {
        Shards {
            store: &self.shard_store,
            replay: &self.replay,
            cache: &self.sessions,
            buckets: self.buckets,
            flush_interval: self.flush_interval,
        }
    }

    fn publish_guard<E>(&self, invocation: &Invocation<E>) -> Idempotency<'_> {
        Idempotency::new(&self.idempotency, Arc::clone(&self.publish_config))
            .with_deadline(invocation.deadline())
    }
}

async fn adapters(mode: &str) -> Result<Adapters, Error> {
    let config = load_config().await;
    let rules_path = std::env::var_os(detect::RULES_PATH_ENV).map(PathBuf::from);
    let rules = detect::load_rules(rules_path.as_deref())?;
    tracing::info!(
        mode,
        rules = rules.rules().len(),
        allowed_lateness_seconds = rules.config().allowed_lateness_seconds,
        source = %rules_path.as_deref().map_or("embedded rules.yaml".to_string(), |p| p.display().to_string()),
        "detection rules loaded"
    );
    let max_age: u32 = parsed_or(
        detect::AUTO_DISPATCH_MAX_AGE_ENV,
        detect::DEFAULT_AUTO_DISPATCH_MAX_AGE_SECONDS,
    )?;
    let buckets: u32 = parsed_or(detect::shard::BUCKETS_ENV, detect::shard::DEFAULT_BUCKETS)?;
    let flush_seconds: u32 = parsed_or(
        detect::shard::FLUSH_SECONDS_ENV,
        detect::shard::DEFAULT_FLUSH_SECONDS,
    )?;
    let state_table = required_env("STATE_TABLE")?;
    let per_shard = detect::shard::per_shard_from_env()?;
    Ok(Adapters {
        per_shard,
        shard_store: DynamoShardStore::new(&config, state_table.clone()),
        replay: KinesisReplay::new(&config),
        sessions: ShardCache::default(),
        buckets: buckets.max(1),
        flush_interval: chrono::Duration::seconds(i64::from(flush_seconds.max(1))),
        rules,
        state: DynamoStateStore::new(&config, state_table),
        events: DynamoEventStore::new(&config, required_env("EVENTS_TABLE")?),
        directory: DynamoDirectory::new(&config, required_env("DIRECTORY_TABLE")?),
        publisher: SnsAlertPublisher::new(&config, required_env("ALERTS_TOPIC_ARN")?),
        dead_letters: SqsDeadLetters::new(&config, required_env("DEAD_LETTER_QUEUE_URL")?),
        idempotency: DynamoIdempotencyStore::new(&config, required_env("IDEMPOTENCY_TABLE")?),
        publish_config: Arc::new(detect::publish_idempotency_config()),
        auto_dispatch_max_age: chrono::Duration::seconds(i64::from(max_age)),
        vitals: DynamoVitals::new(&config, required_env("VITALS_TABLE")?),
        village_stats: DynamoVillageStats::new(&config, required_env("VILLAGE_STATS_TABLE")?),
    })
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mode = std::env::var(MODE_ENV).unwrap_or_else(|_| "stream".to_string());
    match mode.as_str() {
        "stream" => {
            lambda_kit::run(
                detect::SOURCE,
                adapters(&mode),
                // `detect::kinesis::Event` is `KinesisEvent` with a faster base64 decoder.
                async |a: &Adapters, invocation: Invocation<detect::kinesis::Event>| {
                    let guard = a.publish_guard(&invocation);
                    let batch = KinesisEvent::from(invocation.payload);
                    let deps = a.deps(&guard);
                    let response = if a.per_shard {
                        detect::stream::handle_stream(&deps, &a.shards(), &batch, invocation.now)
                            .await
                            .0
                    } else {
                        detect::handle(&deps, &batch, invocation.now).await
                    };
                    Ok::<_, Infallible>(response)
                },
            )
            .await
        }
        "sweep" => {
            lambda_kit::run(
                "sweep",
                adapters(&mode),
                async |a: &Adapters, invocation: Invocation<Value>| {
                    let guard = a.publish_guard(&invocation);
                    let deps = a.deps(&guard);
                    let summary = if a.per_shard {
                        detect::stream::sweep_shards(&deps, &a.shards(), invocation.now).await?
                    } else {
                        detect::sweep(&deps, invocation.now).await?
                    };
                    Ok::<_, application::ports::PortError>(json!({
                        "due": summary.due,
                        "failed": summary.failed,
                        "evaluated": summary.batch.evaluated,
                        "alertsRaised": summary.batch.alerts_raised,
                        "alertsResolved": summary.batch.alerts_resolved,
                        "vitalsWrites": summary.batch.vitals_writes,
                    }))
                },
            )
            .await
        }
        other => Err(format!("{MODE_ENV} must be `stream` or `sweep` (got {other:?})").into()),
    }
}
