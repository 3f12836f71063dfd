//! Acknowledgement deadlines: a routed alert nobody acknowledged within the configured time
//! is sent to the next person of the village's chain, then to the district supervisor.
//! Info alerts are never escalated (they are for the dashboard only).

use std::collections::HashMap;

use application::ports::{Channel, StoredEvent};
use chrono::{DateTime, Utc};
use domain::envelope::{Envelope, Lineage, decode};
use domain::escalation::*;
use domain::events::{AlertRaised, Severity, alert_stream};
use domain::ids::deterministic_id;
use domain::routing::notification_for;
use serde_json::Value;

use tracing::Instrument;

use crate::{Deps, EmergencyError, SOURCE};

/// An alert delivered by the escalation queue after its delay: the level-0 deadline.
pub async fn on_alert_due(
    deps: &Deps<'_>,
    bytes: &[u8],
    now: DateTime<Utc>,
) -> Result<(), EmergencyError> {
    let alert = decode::<AlertRaised>(bytes)?;
    if alert.data.severity == Severity::Info {
        // Info alerts go to the dashboard only (the filter policy keeps them off the queue).
        tracing::info!(alert_id = %alert.data.alert_id, "info alert: never escalated");
        return Ok(());
    }
    check(deps, &alert.data.alert_id, 0, alert.child_lineage(), now).await
}

/// The deadline of a later level.
pub async fn on_escalation_due(
    deps: &Deps<'_>,
    bytes: &[u8],
    now: DateTime<Utc>,
) -> Result<(), EmergencyError> {
    let due = decode::<AlertEscalationDue>(bytes)?;
    check(
        deps,
        &due.data.alert_id,
        due.data.level,
        due.child_lineage(),
        now,
    )
    .await
}

async fn check(
    deps: &Deps<'_>,
    alert_id: &str,
    level: usize,
    lineage: Lineage,
    now: DateTime<Utc>,
) -> Result<(), EmergencyError> {
    let span =
        tracing::info_span!("escalate", alert_id, level, correlation_id = %lineage.correlation_id);
    // Instrumented (not entered): the span must follow the future across awaits.
    async {
        let stream = alert_stream(alert_id);
        let stored = deps.reader.read_stream(&stream).await?;
        let progress = AlertProgress::fold(stored.iter().map(|e: &StoredEvent| {
            (
                e.event_type.as_str(),
                e.data.get("level").and_then(Value::as_u64),
            )
        }));
        if !progress.routed {
            // The check comes a whole acknowledgement timeout after the alert: routing failed
            // (the alert is in RouteDLQ) or never happened. Nobody was told, so there is no one
            // to escalate from.
            tracing::warn!("alert was never routed; nothing to escalate");
            return Ok(());
        }
        if !progress.should_escalate(level) {
            tracing::info!(acknowledged = progress.acknowledged, "no escalation needed");
            return Ok(());
        }
        let raised = stored
            .first()
            .ok_or_else(|| EmergencyError::NotFound(format!("alert {alert_id} has no events")))?;
        let alert: AlertRaised = serde_json::from_value(raised.data.clone()).map_err(|source| {
            EmergencyError::Unreadable {
                what: format!("the first event of {stream}"),
                expected: "an AlertRaised",
                source,
            }
        })?;
        if alert.severity == Severity::Info {
            tracing::info!("info alert: never escalated");
            return Ok(());
        }
        let entry = deps
            .directory
            .get(&alert.patient_id)
            .await?
            .ok_or_else(|| {
                EmergencyError::NotFound(format!(
                    "patient {} is not in the directory",
                    alert.patient_id
                ))
            })?;
        let roster = deps.contacts.roster(&entry.village).await?;
        let chain = escalation_chain(&entry, roster.as_ref());
        let mut people = HashMap::new();
        for id in &chain {
            if let Some(worker) = deps.workers.get(id).await? {
                people.insert(id.clone(), worker);
            }
        }
        let available = |id: &str| {
            people
                .get(id)
                .is_some_and(|w| w.available && w.reserved_by.is_none())
        };
        let Some((next_level, recipient_id)) = next_recipient(&chain, level, available) else {
            tracing::warn!("escalation chain exhausted; nobody left to tell");
            return Ok(());
        };
        let recipient = people.get(&recipient_id).ok_or_else(|| {
            EmergencyError::NotFound(format!("worker {recipient_id} is not in the workers table"))
        })?;

        let mut to = entry.clone();
        to.worker_id = recipient.worker_id.clone();
        to.worker_name = recipient.name.clone();
        to.worker_phone = recipient.phone.clone();
        let mut request = notification_for(&alert, &to);
        request.message = format!(
            "[ESCALATED: not acknowledged, level {next_level}] {}",
            request.message
        );

        let escalated = Envelope::new(
            deterministic_id(&["AlertEscalated", alert_id, &next_level.to_string()]),
            SOURCE,
            lineage,
            now,
            AlertEscalated {
                alert_id: alert_id.to_string(),
                level: next_level,
                recipient_id: recipient_id.clone(),
                notification_id: request.notification_id.clone(),
            },
        );
        let record = StoredEvent::from_envelope(&escalated)?;
        // Conflict (an acknowledgement got there first): retried, and then finds it.
        let appended = deps
            .events
            .append(&stream, progress.version, &record)
            .await?;

        let notification = Envelope::new(
            deterministic_id(&["NotificationRequested", &request.notification_id]),
            SOURCE,
            escalated.child_lineage(),
            now,
            request,
        );
        deps.notifications.send(&notification).await?;
        if next_level + 1 < chain.len() {
            let due = Envelope::new(
                deterministic_id(&["AlertEscalationDue", alert_id, &next_level.to_string()]),
                SOURCE,
                escalated.child_lineage(),
                now,
                AlertEscalationDue {
                    alert_id: alert_id.to_string(),
                    patient_id: alert.patient_id.clone(),
                    level: next_level,
                },
            );
            let body = serde_json::to_string(&due)?;
            deps.bus
                .send(
                    Channel::Escalation,
                    &due.event_type,
                    &body,
                    deps.config.ack_timeout_seconds,
                )
                .await?;
        }
        tracing::info!(%recipient_id, next_level, ?appended, "alert escalated");
        Ok(())
    }
    .instrument(span)
    .await
}
