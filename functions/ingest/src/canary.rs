//! The pipeline heartbeat (`HeartbeatFunction`: this binary with `INGEST_MODE=canary`, on a
//! schedule): puts one beat of the canary patient's readings (`domain::canary::beat`) on
//! the readings stream, as `ingest` puts a request's readings. Their alert travels detect,
//! the alerts topic, route and notify like any other; notify counts its arrival
//! (`HeartbeatDelivered`), and the heartbeat alarm fires when none arrived for 15 minutes.
//!
//! It writes to the stream directly (IAM), not through the HTTP API: the API's health is
//! watched by its own 5xx alarm, and a canary with API credentials would be one more
//! secret to rotate.

use application::ports::{PortError, ReadingSink};
use chrono::{DateTime, Utc};
use domain::envelope::Lineage;

/// The `source` of the canary's reading envelopes.
pub const CANARY_SOURCE: &str = "canary";

/// Puts one beat on the stream; returns the number of readings put.
pub async fn beat(
    sink: &dyn ReadingSink,
    now: DateTime<Utc>,
    deadline: Option<DateTime<Utc>>,
    correlation_id: &str,
) -> Result<usize, PortError> {
    let mut records = Vec::new();
    for reading in domain::canary::beat(now) {
        let lineage = Lineage {
            correlation_id: correlation_id.to_string(),
            causation_id: correlation_id.to_string(),
        };
        let record = crate::stream_record(reading, CANARY_SOURCE, lineage, now)
            .map_err(|e| PortError::backend("serialising a canary reading", e))?;
        records.push(record);
    }
    let count = records.len();
    sink.put(records, deadline).await?;
    tracing::info!(readings = count, "heartbeat readings put on the stream");
    Ok(count)
}
