//! `project`: the events table's DynamoDB stream -> the dashboard read models
//! (`domain::dashboard`): one view per alert and per emergency.
//!
//! Records run in order and the batch stops at the first failure, which is reported by its
//! sequence number (`lambda_kit::batch::dynamodb_stream`); Lambda retries from it. Only INSERTs
//! of event items matter: the dedupe items, TTL removals and a former table's `$all`
//! counter are skipped.
//!
//! Exactly-once effect on at-least-once delivery: a view records the last version it has
//! applied of each source stream, so a redelivered event changes nothing; the view is
//! saved conditioned on the version it was read at, so two invocations updating one view
//! cannot lose an update. When a view finds a gap (an event whose predecessors in its
//! stream it has not applied, e.g. after records were skipped), the missing events are read
//! from the event store first: the store, not the stream, is the source of truth.
//!
//! Failures, reported for a retry: an event of a known type with a schema version newer
//! than this function knows (deploy the projector first), a malformed event, and errors of
//! DynamoDB.
//!
//! Replay: invoked directly with `{"rebuild": {"maxEvents": 5000}}` (from the start) or
//! `{"rebuild": {"after": "<checkpoint>"}}`, the function reads every event of the store
//! (`read_all`, a resumable pass) and applies each, as the stream would have. Views are
//! idempotent and tolerate any order across streams (a gap within a stream is filled from
//! the store), so a replay over views that are already up to date changes nothing, and an
//! emptied (or new) dashboard table is rebuilt while the stream keeps feeding new events.
//! The answer says where to continue: `{"read": n, "projected": n, "next": checkpoint,
//! "done": bool}`. `{"afterPosition": 0}` (the request of the global-counter store) is
//! still accepted and means from the start.

use application::event_store::{
    Checkpoint, EventStoreError, EventStreams, RecordedEvent, Upcasters,
};
use application::ports::{PortError, ReadModels};
use aws_adapters::event_from_stream_image;
use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use domain::dashboard::{Applied, Projection, ProjectionError, View, apply, classify};
use domain::village_stats;
use lambda_kit::batch::{BatchError, dynamodb_stream};
use serde::{Deserialize, Serialize};
use tracing::Instrument;

/// The function name used in logs and metrics.
pub const SOURCE: &str = "project";

/// Saves of one view attempted before giving the record up for a retry (another invocation
/// keeps winning the version check).
pub const SAVE_ATTEMPTS: u32 = 5;

/// Why a record (or a replay) was not projected (the stream retries the record).
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("stream record is not a readable event item: {0}")]
    Unreadable(#[source] EventStoreError),
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    #[error(transparent)]
    Views(#[from] PortError),
    #[error(transparent)]
    Store(#[from] EventStoreError),
    #[error("view {view_id} kept changing; gave up after {SAVE_ATTEMPTS} attempts")]
    KeptChanging { view_id: String },
    #[error("stream {stream_id} has no version {version} in the store")]
    MissingVersion { stream_id: String, version: u64 },
    #[error("stream {stream_id} version {version} is not readable in the store yet")]
    NotReadableYet { stream_id: String, version: u64 },
    #[error("invalid rebuild request: {0}")]
    InvalidRebuild(#[source] serde_json::Error),
    #[error(
        "invalid rebuild request: afterPosition {0} is a position of the former global counter; the store has none any more: start from the beginning (no afterPosition) or pass the \"after\" checkpoint a rebuild answered"
    )]
    StalePosition(u64),
    #[error("not a DynamoDB stream event: {0}")]
    NotAStreamEvent(#[source] serde_json::Error),
    #[error("encoding the response: {0}")]
    Encode(#[source] serde_json::Error),
    #[error(transparent)]
    Batch(#[from] BatchError),
}

pub struct Deps<'a> {
    /// Read when a view has a gap.
    pub events: &'a dyn EventStreams,
    pub views: &'a dyn ReadModels,
    pub upcasters: &'a Upcasters,
    /// Village statistics: alerts, emergencies and acknowledgement times per (village,
    /// day), each event counted once (docs/read-side.md).
    pub stats: &'a dyn application::vitals::VillageStats,
}

/// The upcasters of the events the projection reads (none needed yet: every event type is
/// at its first schema version).
pub fn upcasters() -> Upcasters {
    Upcasters::new()
}

/// What happened to one stream record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Not an event insert, or an event the dashboard does not show.
    Skipped,
    /// The view already had it.
    Duplicate,
    Projected,
}

/// Handles one invocation: a stream batch from the event source mapping, or a replay
/// request `{"rebuild": {...}}` (direct invocation).
pub async fn invoke(
    deps: &Deps<'_>,
    payload: serde_json::Value,
) -> Result<serde_json::Value, ProjectError> {
    if let Some(request) = payload.get("rebuild") {
        let request = Rebuild::deserialize(request).map_err(ProjectError::InvalidRebuild)?;
        let rebuilt = rebuild(deps, &request).await?;
        return serde_json::to_value(rebuilt).map_err(ProjectError::Encode);
    }
    let batch = Event::deserialize(&payload).map_err(ProjectError::NotAStreamEvent)?;
    let response = handle(deps, &batch).await?;
    serde_json::to_value(response).map_err(ProjectError::Encode)
}

/// Handles one batch of stream records; reports the first failed record.
pub async fn handle(deps: &Deps<'_>, event: &Event) -> Result<DynamoDbEventResponse, BatchError> {
    dynamodb_stream(&event.records, |record| async move {
        let outcome = project_record(deps, record).await?;
        if outcome == Outcome::Duplicate {
            lambda_kit::metrics::count(lambda_kit::metrics::DUPLICATES_SKIPPED, 1);
        }
        Ok::<(), ProjectError>(())
    })
    .await
}

/// Projects one stream record.
pub async fn project_record(
    deps: &Deps<'_>,
    record: &EventRecord,
) -> Result<Outcome, ProjectError> {
    if record.event_name != "INSERT" {
        return Ok(Outcome::Skipped);
    }
    let event = event_from_stream_image(record.change.new_image.clone())
        .map_err(ProjectError::Unreadable)?;
    match event {
        Some(event) => project_event(deps, &event).await,
        None => Ok(Outcome::Skipped),
    }
}

/// Applies one stored event to its view and saves the view.
pub async fn project_event(
    deps: &Deps<'_>,
    event: &RecordedEvent,
) -> Result<Outcome, ProjectError> {
    let projection = classify(deps.upcasters, event)?;
    let (Some(view_id), Some(empty)) = (projection.view_id(), projection.empty_view()) else {
        return Ok(Outcome::Skipped);
    };
    // Instrumented (not entered): the span must follow the future across awaits.
    let span = tracing::info_span!("project", correlation_id = %event.event.correlation_id, view_id = %view_id, event_type = %event.event.event_type);
    let (outcome, view) = update_view(deps, &view_id, empty, event, &projection)
        .instrument(span)
        .await?;
    // Also for a view that had the event already: the statistics may not have it yet (a
    // crash between the two); their marker makes a second add a no-op.
    let at = event.event.timestamp;
    if let Some(delta) = village_stats::delta(&event.event.event_id, at, &projection, &view) {
        deps.stats.add(&delta).await?;
    }
    Ok(outcome)
}

/// Loads the view, applies the event and saves it, again while another save wins.
async fn update_view(
    deps: &Deps<'_>,
    view_id: &str,
    empty: View,
    event: &RecordedEvent,
    projection: &Projection,
) -> Result<(Outcome, View), ProjectError> {
    for attempt in 1..=SAVE_ATTEMPTS {
        let loaded = deps.views.load(view_id).await?;
        let mut view = loaded.value.unwrap_or_else(|| empty.clone());
        if !catch_up(deps, &mut view, event, projection).await? {
            tracing::debug!("already projected");
            return Ok((Outcome::Duplicate, view));
        }
        match deps.views.save(loaded.version, &view).await {
            Ok(()) => {
                lambda_kit::fault::crash_point("project.after_save_view");
                tracing::info!(status = %view.status_text(), "view updated");
                return Ok((Outcome::Projected, view));
            }
            Err(PortError::Conflict { .. }) => {
                tracing::info!(attempt, "the view changed meanwhile; reading it again");
            }
            Err(err) => return Err(err.into()),
        }
    }
    Err(ProjectError::KeptChanging {
        view_id: view_id.to_string(),
    })
}

/// Applies `event` to `view`, first applying the earlier events of its stream that the
/// view lacks (read from the store). False when the view already had the event.
async fn catch_up(
    deps: &Deps<'_>,
    view: &mut View,
    event: &RecordedEvent,
    projection: &Projection,
) -> Result<bool, ProjectError> {
    let at = event.event.timestamp;
    match apply(view, &event.stream_id, event.stream_version, at, projection) {
        Applied::Changed => Ok(true),
        Applied::AlreadyApplied => Ok(false),
        Applied::Gap { expected } => {
            let count = usize::try_from(event.stream_version - expected + 1).unwrap_or(usize::MAX);
            tracing::info!(stream = %event.stream_id, from = expected, to = event.stream_version, "gap in the view; reading the missing events from the store");
            let missing = deps
                .events
                .read_stream(&event.stream_id, expected, count)
                .await?;
            for earlier in &missing {
                let p = classify(deps.upcasters, earlier)?;
                let at = earlier.event.timestamp;
                if let Applied::Gap { expected } =
                    apply(view, &earlier.stream_id, earlier.stream_version, at, &p)
                {
                    return Err(ProjectError::MissingVersion {
                        stream_id: earlier.stream_id.clone(),
                        version: expected,
                    });
                }
            }
            if view.next_version(&event.stream_id) <= event.stream_version {
                return Err(ProjectError::NotReadableYet {
                    stream_id: event.stream_id.clone(),
                    version: event.stream_version,
                });
            }
            Ok(true)
        }
    }
}

/// A replay request (direct invocation).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rebuild {
    /// Continue the pass from this checkpoint (a former answer's `next`); absent = from the
    /// beginning.
    #[serde(default)]
    pub after: Checkpoint,
    /// The former request's global position: only 0 (from the beginning) is accepted.
    #[serde(default)]
    pub after_position: Option<u64>,
    /// Stop after this many events (the answer says where to continue).
    #[serde(default = "default_max_events")]
    pub max_events: usize,
}

impl Rebuild {
    /// From `after`, at most `max_events`.
    pub fn from(after: Checkpoint, max_events: usize) -> Rebuild {
        Rebuild {
            after,
            after_position: None,
            max_events,
        }
    }
}

fn default_max_events() -> usize {
    5_000
}

/// What a replay did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rebuilt {
    /// Events read from the store.
    pub read: usize,
    /// Events that changed a view.
    pub projected: usize,
    /// The checkpoint to continue from.
    pub next: Checkpoint,
    /// True when the pass reached the end of the store.
    pub done: bool,
}

/// Events read from the store per `read_all` page.
const REPLAY_PAGE: usize = 100;

/// Replays the store's events onto the views (one pass of `read_all`).
pub async fn rebuild(deps: &Deps<'_>, request: &Rebuild) -> Result<Rebuilt, ProjectError> {
    if let Some(position) = request.after_position.filter(|p| *p != 0) {
        return Err(ProjectError::StalePosition(position));
    }
    let mut after = request.after.clone();
    let mut read = 0;
    let mut projected = 0;
    loop {
        let page = REPLAY_PAGE
            .min(request.max_events.saturating_sub(read))
            .max(1);
        let slice = deps.events.read_all(&after, page).await?;
        let done = slice.done;
        for event in &slice.events {
            if project_event(deps, event).await? == Outcome::Projected {
                projected += 1;
            }
        }
        read += slice.events.len();
        after = slice.next;
        if done || read >= request.max_events {
            tracing::info!(
                read,
                projected,
                next = after.as_str(),
                done,
                "replay finished"
            );
            return Ok(Rebuilt {
                read,
                projected,
                next: after,
                done,
            });
        }
    }
}
