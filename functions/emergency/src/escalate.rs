//! Acknowledgement deadlines: a routed alert nobody acknowledged within the configured time
//! is sent to the next person of the village's chain, then to the district supervisor.
//! Info alerts are never escalated (they are for the dashboard only); resolved and
//! acknowledged alerts stop escalating.
//!
//! An alert that is not routed yet when its first deadline passes is checked again one
//! acknowledgement timeout later, up to [`MAX_ROUTING_WAITS`] times; an alert that cannot be
//! routed (its patient is in nobody's directory, so route parked it in `RouteDLQ`) or is
//! still not routed after those waits goes to the district supervisor of its village.
//!
//! Effect ordering: the fact (`AlertEscalated`, which pins who is told) is appended first,
//! then its effects (the SMS request, the next level's deadline). A check that finds the
//! latest fact was caused by its own message re-sends those effects: the earlier attempt
//! may have died between the fact and them. Both effects are idempotent downstream (notify
//! dedupes by notification id; a repeated deadline finds its level passed).

use std::collections::HashMap;

use application::ack_codes::assign_code;
use application::ports::{Channel, StoredEvent};
use chrono::{DateTime, Utc};
use domain::ack::AckTarget;
use domain::envelope::{Envelope, EventData, Lineage, decode};
use domain::escalation::*;
use domain::events::NotificationKind;
use domain::events::{AlertRaised, Severity, alert_resolution_stream, alert_stream};
use domain::ids::deterministic_id;
use domain::messages::texts::AlertSms;
use domain::routing::{DirectoryEntry, alert_notification, notification_id};
use lambda_kit::fault::crash_point;
use serde_json::Value;

use tracing::Instrument;

use crate::{Deps, EmergencyError, HOSPITAL_RECIPIENT, SOURCE};

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
    if domain::canary::is_canary_patient(&alert.data.patient_id) {
        // The pipeline heartbeat: nobody is there to acknowledge it.
        tracing::info!(alert_id = %alert.data.alert_id, "heartbeat alert: never escalated");
        return Ok(());
    }
    let due = Due {
        alert_id: alert.data.alert_id.clone(),
        level: 0,
        routing_waits: 0,
        message_id: alert.event_id.clone(),
    };
    check(deps, &due, alert.child_lineage(), now).await
}

/// The deadline of a later level, or a level-0 check waiting for the routing.
pub async fn on_escalation_due(
    deps: &Deps<'_>,
    bytes: &[u8],
    now: DateTime<Utc>,
) -> Result<(), EmergencyError> {
    let due = decode::<AlertEscalationDue>(bytes)?;
    let check_of = Due {
        alert_id: due.data.alert_id.clone(),
        level: due.data.level,
        routing_waits: due.data.routing_waits,
        message_id: due.event_id.clone(),
    };
    check(deps, &check_of, due.child_lineage(), now).await
}

/// One deadline check: of which alert and level, and the id of the message that carries it.
struct Due {
    alert_id: String,
    level: usize,
    routing_waits: u32,
    message_id: String,
}

/// The alert, its patient's directory entry (if any), and who is told at each level.
struct Chain {
    alert: AlertRaised,
    entry: Option<DirectoryEntry>,
    /// For a routed alert: the assigned worker, the village roster, the supervisor. For an
    /// unroutable one: nobody at level 0, then the supervisor.
    people: Vec<String>,
}

async fn check(
    deps: &Deps<'_>,
    due: &Due,
    lineage: Lineage,
    now: DateTime<Utc>,
) -> Result<(), EmergencyError> {
    let span = tracing::info_span!("escalate", alert_id = %due.alert_id, level = due.level, correlation_id = %lineage.correlation_id);
    // Instrumented (not entered): the span must follow the future across awaits.
    async {
        let stream = alert_stream(&due.alert_id);
        let stored = deps.reader.read_stream(&stream).await?;
        let Some(raised) = stored.first() else {
            return Err(EmergencyError::NotFound(format!(
                "alert {} has no events yet",
                due.alert_id
            )));
        };
        let progress = AlertProgress::fold(stored.iter().map(|e: &StoredEvent| {
            (
                e.event_type.as_str(),
                e.data.get("level").and_then(Value::as_u64),
            )
        }));
        if progress.acknowledged {
            tracing::info!("acknowledged: no escalation");
            return Ok(());
        }
        let resolution = deps
            .reader
            .read_stream(&alert_resolution_stream(&due.alert_id))
            .await?;
        if !resolution.is_empty() {
            tracing::info!("resolved: no escalation");
            return Ok(());
        }
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

        let chain = chain(deps, alert, progress.routed).await?;

        // Re-send when the last fact is ours: an earlier attempt of this very check recorded
        // the escalation and may have died before its effects.
        if let Some(last) = stored.last().filter(|e| {
            e.event_type == AlertEscalated::EVENT_TYPE && e.causation_id == due.message_id
        }) {
            let fact: AlertEscalated =
                serde_json::from_value(last.data.clone()).map_err(|source| {
                    EmergencyError::Unreadable {
                        what: format!("event {} of {stream}", last.event_id),
                        expected: "an AlertEscalated",
                        source,
                    }
                })?;
            tracing::info!(
                level = fact.level,
                "escalation recorded by this check; re-sending its effects"
            );
            return effects(deps, &chain, &fact, last_lineage(last), now).await;
        }

        let (next_level, recipient_id) = if progress.routed {
            if !progress.should_escalate(due.level) {
                tracing::info!(
                    level = progress.level,
                    "level already passed: no escalation"
                );
                return Ok(());
            }
            let available = available_people(deps, &chain.people).await?;
            match next_recipient(&chain.people, due.level, |id| available.contains_key(id)) {
                Some(found) => found,
                None => {
                    tracing::warn!("escalation chain exhausted; nobody left to tell");
                    return Ok(());
                }
            }
        } else if progress.unroutable(chain.entry.is_some(), due.routing_waits) {
            tracing::warn!(
                patient_known = chain.entry.is_some(),
                waits = due.routing_waits,
                "alert never routed: the district supervisor is told"
            );
            match chain.people.get(1) {
                Some(supervisor) => (1, supervisor.clone()),
                None => return Ok(()),
            }
        } else if progress.level == 0 {
            // Routing is still under way (or being retried): look again later.
            return wait_for_routing(deps, &chain.alert, due, lineage, now).await;
        } else {
            return Ok(());
        };

        // The recipient must exist before the fact is recorded (its effects need them).
        let (recipient, _) = recipient_entry(deps, &chain, &recipient_id).await?;
        let fact = AlertEscalated {
            alert_id: due.alert_id.clone(),
            level: next_level,
            recipient_id: recipient_id.clone(),
            notification_id: notification_id(
                &chain.alert.alert_id,
                &recipient.worker_id,
                NotificationKind::Alert,
            ),
        };
        let escalated = Envelope::new(
            deterministic_id(&["AlertEscalated", &due.alert_id, &next_level.to_string()]),
            SOURCE,
            lineage,
            now,
            fact.clone(),
        );
        let record = StoredEvent::from_envelope(&escalated)?;
        // Conflict (an acknowledgement got there first): retried, and then finds it.
        deps.events
            .append(&stream, progress.version, &record)
            .await?;
        crash_point("escalate.after_append");
        tracing::info!(%recipient_id, next_level, "alert escalated");
        effects(deps, &chain, &fact, escalated.child_lineage(), now).await
    }
    .instrument(span)
    .await
}

/// The lineage of the effects of a stored fact.
fn last_lineage(fact: &StoredEvent) -> Lineage {
    Lineage {
        correlation_id: fact.correlation_id.clone(),
        causation_id: fact.event_id.clone(),
    }
}

/// Who is told at each level of this alert.
async fn chain(deps: &Deps<'_>, alert: AlertRaised, routed: bool) -> Result<Chain, EmergencyError> {
    let entry = deps.directory.get(&alert.patient_id).await?;
    let people = match &entry {
        Some(entry) if routed => {
            let roster = deps.contacts.roster(&entry.village).await?;
            escalation_chain(entry, roster.as_ref())
        }
        // Nobody was told at level 0 (the empty id): the village's supervisor is level 1,
        // or the district hospital's desk for a village without a roster (an unregistered
        // patient's alert says village "unknown").
        _ => match deps.contacts.roster(&alert.village).await? {
            Some(roster) => vec![String::new(), roster.supervisor_id],
            None => vec![String::new(), HOSPITAL_RECIPIENT.to_string()],
        },
    };
    Ok(Chain {
        alert,
        entry,
        people,
    })
}

/// The people of the chain who can be told now (the supervisor always can, see
/// [`next_recipient`]).
async fn available_people(
    deps: &Deps<'_>,
    people: &[String],
) -> Result<HashMap<String, Worker>, EmergencyError> {
    let mut available = HashMap::new();
    for id in people.iter().filter(|id| !id.is_empty()) {
        if let Some(worker) = deps.workers.get(id).await?
            && worker.available
            && worker.reserved_by.is_none()
        {
            available.insert(id.clone(), worker);
        }
    }
    Ok(available)
}

/// The directory entry the escalation SMS goes out with: the patient's, with the recipient
/// as its worker; and the recipient's language.
async fn recipient_entry(
    deps: &Deps<'_>,
    chain: &Chain,
    recipient_id: &str,
) -> Result<(DirectoryEntry, String), EmergencyError> {
    let recipient = if recipient_id == HOSPITAL_RECIPIENT {
        Worker {
            worker_id: HOSPITAL_RECIPIENT.to_string(),
            name: "District hospital".to_string(),
            phone: deps.config.hospital_phone.clone(),
            village: chain.alert.village.clone(),
            available: true,
            reserved_by: None,
            language: deps.config.hospital_language.clone(),
        }
    } else {
        deps.workers.get(recipient_id).await?.ok_or_else(|| {
            EmergencyError::NotFound(format!("worker {recipient_id} is not in the workers table"))
        })?
    };
    let mut to = chain.entry.clone().unwrap_or_else(|| DirectoryEntry {
        patient_id: chain.alert.patient_id.clone(),
        patient_name: domain::messages::catalogue(&recipient.language)
            .unregistered_patient(&chain.alert.patient_id),
        village: chain.alert.village.clone(),
        worker_id: String::new(),
        worker_name: String::new(),
        worker_phone: String::new(),
        device_ids: Vec::new(),
    });
    to.worker_id = recipient.worker_id;
    to.worker_name = recipient.name;
    to.worker_phone = recipient.phone;
    Ok((to, recipient.language))
}

/// The effects of an escalation fact: the SMS request to its recipient and, unless the
/// chain ends there, the deadline of its level.
async fn effects(
    deps: &Deps<'_>,
    chain: &Chain,
    fact: &AlertEscalated,
    lineage: Lineage,
    now: DateTime<Utc>,
) -> Result<(), EmergencyError> {
    let (recipient, language) = recipient_entry(deps, chain, &fact.recipient_id).await?;
    // The code exists before anyone can reply to it (registering it again is a no-op).
    let code = assign_code(deps.ack_codes, &AckTarget::alert(&fact.alert_id)).await?;
    // In the recipient's language, saying why it is forwarded (domain::messages).
    let why = if chain.entry.is_some() {
        AlertSms::Escalated { level: fact.level }
    } else {
        AlertSms::Unrouted
    };
    let request = alert_notification(&chain.alert, &recipient, &language, &code, why);
    let notification = Envelope::new(
        deterministic_id(&["NotificationRequested", &request.notification_id]),
        SOURCE,
        lineage.clone(),
        now,
        request,
    );
    deps.notifications.send(&notification).await?;
    crash_point("escalate.after_notify");
    if fact.level + 1 < chain.people.len() {
        let due = Envelope::new(
            deterministic_id(&[
                "AlertEscalationDue",
                &fact.alert_id,
                &fact.level.to_string(),
            ]),
            SOURCE,
            lineage,
            now,
            AlertEscalationDue {
                alert_id: fact.alert_id.clone(),
                patient_id: chain.alert.patient_id.clone(),
                level: fact.level,
                routing_waits: 0,
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
    Ok(())
}

/// The alert is not routed yet: the level-0 check comes back one acknowledgement timeout
/// later.
async fn wait_for_routing(
    deps: &Deps<'_>,
    alert: &AlertRaised,
    due: &Due,
    lineage: Lineage,
    now: DateTime<Utc>,
) -> Result<(), EmergencyError> {
    let waits = due.routing_waits + 1;
    let again = Envelope::new(
        deterministic_id(&[
            "AlertEscalationDue",
            &alert.alert_id,
            "0",
            &waits.to_string(),
        ]),
        SOURCE,
        lineage,
        now,
        AlertEscalationDue {
            alert_id: alert.alert_id.clone(),
            patient_id: alert.patient_id.clone(),
            level: 0,
            routing_waits: waits,
        },
    );
    let body = serde_json::to_string(&again)?;
    deps.bus
        .send(
            Channel::Escalation,
            &again.event_type,
            &body,
            deps.config.ack_timeout_seconds,
        )
        .await?;
    tracing::info!(waits, "alert not routed yet; checking again later");
    Ok(())
}
