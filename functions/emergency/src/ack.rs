//! Acknowledging an alert: `POST /alerts/{id}/ack` and an SMS reply "ACK <code>" both end
//! here. `AlertAcknowledged` is appended to the alert's stream with the version read, so an
//! acknowledgement and an escalation cannot both take the same version.

use application::ports::{Appended, PortError, StoredEvent};
use chrono::{DateTime, Utc};
use domain::envelope::{Envelope, Lineage};
use domain::escalation::{AlertAcknowledged, AlertProgress};
use domain::events::alert_stream;
use domain::ids::deterministic_id;
use serde_json::Value;

use crate::{Deps, EmergencyError, SOURCE};

/// What an acknowledgement found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOutcome {
    /// `AlertAcknowledged` was recorded now.
    Acknowledged,
    /// Someone had acknowledged the alert before: nothing recorded.
    AlreadyAcknowledged,
    /// The alert is not routed yet (nobody was told): nothing recorded.
    NotRouted,
    /// There is no such alert.
    NoAlert,
}

/// Attempts at the append when a concurrent escalation takes the version read.
const ATTEMPTS: usize = 3;

/// Records `AlertAcknowledged` by `by` once. Errors are failures worth a retry: the store
/// failed, or the alert stayed busy (escalations kept taking the version) for every attempt
/// ([`EmergencyError::Busy`]).
pub async fn acknowledge_alert(
    deps: &Deps<'_>,
    alert_id: &str,
    by: &str,
    now: DateTime<Utc>,
) -> Result<AckOutcome, EmergencyError> {
    let stream = alert_stream(alert_id);
    // A concurrent escalation may take the version we read: read again and retry.
    for _ in 0..ATTEMPTS {
        let stored = deps.reader.read_stream(&stream).await?;
        let Some(raised) = stored.first() else {
            return Ok(AckOutcome::NoAlert);
        };
        let progress = AlertProgress::fold(stored.iter().map(|e| {
            (
                e.event_type.as_str(),
                e.data.get("level").and_then(Value::as_u64),
            )
        }));
        if progress.acknowledged {
            return Ok(AckOutcome::AlreadyAcknowledged);
        }
        if !progress.routed {
            return Ok(AckOutcome::NotRouted);
        }
        let ack = Envelope::new(
            deterministic_id(&["AlertAcknowledged", alert_id]),
            SOURCE,
            Lineage {
                correlation_id: raised.correlation_id.clone(),
                causation_id: raised.event_id.clone(),
            },
            now,
            AlertAcknowledged {
                alert_id: alert_id.to_string(),
                acknowledged_by: by.to_string(),
            },
        );
        let record = StoredEvent::from_envelope(&ack)?;
        match deps.events.append(&stream, progress.version, &record).await {
            Ok(Appended::Written) => {
                tracing::info!(alert_id, acknowledged_by = %by, "alert acknowledged");
                return Ok(AckOutcome::Acknowledged);
            }
            Ok(Appended::Duplicate) => return Ok(AckOutcome::AlreadyAcknowledged),
            Err(PortError::Conflict { .. }) => continue,
            Err(err) => return Err(err.into()),
        }
    }
    Err(EmergencyError::Busy(format!(
        "alert {alert_id} is busy; try again"
    )))
}
