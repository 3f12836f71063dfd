//! Inbound SMS: a health worker replies "ACK <code>" to an alert SMS.
//!
//! The phone number's two-way SMS channel (AWS End User Messaging SMS) publishes each
//! reply to the inbound topic, which delivers it to the inbound queue as an SNS
//! notification (raw delivery off): the SQS body is the SNS envelope, and its `Message` is
//! the two-way SMS JSON (`originationNumber`, `destinationNumber`, `messageKeyword`,
//! `messageBody`, `inboundMessageId`, `previousPublishedMessageId`). A body that is the
//! two-way SMS JSON itself (raw delivery on) is read too.
//!
//! The reply's code is resolved in the register route filled (`AckCodes`). For an alert,
//! the sender must be one of the people the alert was sent to: the routed worker
//! (`AlertRouted`) or an escalation recipient (`AlertEscalated`), whose phones are in the
//! workers table (and the routed worker's in the patient's directory entry, where route
//! took it from). Then `AlertAcknowledged` is recorded by that worker
//! ([`ack::acknowledge_alert`]). For an emergency, the sender must be the worker assigned
//! to it; the saga records `EmergencyAcknowledged` ([`coordinator::acknowledge_emergency`]).
//!
//! A reply that acknowledges nothing (not "ACK <code>", an unknown code, a sender who was
//! not sent the alert or assigned the emergency, one already acknowledged) is logged and counted
//! (`InboundSmsIgnored`, dimension `Reason`) and the message is done: retrying would not
//! change it. Failures of the stores are errors, so the message is retried.

use std::collections::BTreeSet;

use aws_lambda_events::event::sns::SnsMessage;
use aws_lambda_events::event::sqs::SqsMessage;
use chrono::{DateTime, Utc};
use domain::ack::{AckTarget, parse_reply};
use domain::events::alert_stream;
use domain::ids::deterministic_id;
use domain::saga::SagaState;
use lambda_kit::batch::body;
use lambda_kit::metrics;
use serde::Deserialize;
use serde_json::Value;
use tracing::Instrument;

use crate::ack::{self, AckOutcome};
use crate::{Deps, EmergencyError, coordinator};

/// Replies that acknowledged an alert.
pub const ACKNOWLEDGED_BY_SMS: &str = "InboundSmsAcknowledged";
/// Replies that acknowledged nothing, by `Reason`.
pub const IGNORED: &str = "InboundSmsIgnored";

/// The two-way SMS message (the SNS notification's `Message`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InboundSms {
    /// The sender's phone (E.164).
    pub origination_number: String,
    /// Our number the reply was sent to.
    #[serde(default)]
    pub destination_number: Option<String>,
    #[serde(default)]
    pub message_keyword: Option<String>,
    pub message_body: String,
    #[serde(default)]
    pub inbound_message_id: Option<String>,
    #[serde(default)]
    pub previous_published_message_id: Option<String>,
}

/// Handles one message of the inbound queue.
pub async fn on_inbound_sms(
    deps: &Deps<'_>,
    message: &SqsMessage,
    now: DateTime<Utc>,
) -> Result<(), EmergencyError> {
    let sms = read_inbound(body(message))?;
    let span = tracing::info_span!(
        "inbound_sms",
        inbound_message_id = sms.inbound_message_id.as_deref().unwrap_or_default(),
        sender = %masked(&sms.origination_number),
    );
    // Instrumented (not entered): the span must follow the future across awaits.
    async {
        match acknowledge(deps, &sms, now).await? {
            Handled::Acknowledged { target, by } => {
                tracing::info!(%target, acknowledged_by = %by, "acknowledged by SMS reply");
                metrics::count(ACKNOWLEDGED_BY_SMS, 1);
            }
            Handled::Ignored { reason, detail } => {
                tracing::warn!(reason, %detail, "inbound SMS acknowledged nothing");
                metrics::count_by(IGNORED, 1, &[("Reason", reason)]);
            }
        }
        Ok(())
    }
    .instrument(span)
    .await
}

/// What a reply did.
enum Handled {
    /// `target`: "alert {id}" or "emergency {id}".
    Acknowledged { target: String, by: String },
    Ignored {
        reason: &'static str,
        detail: String,
    },
}

fn ignored(reason: &'static str, detail: impl Into<String>) -> Result<Handled, EmergencyError> {
    Ok(Handled::Ignored {
        reason,
        detail: detail.into(),
    })
}

async fn acknowledge(
    deps: &Deps<'_>,
    sms: &InboundSms,
    now: DateTime<Utc>,
) -> Result<Handled, EmergencyError> {
    let code = match parse_reply(&sms.message_body) {
        Ok(code) => code,
        Err(err) => return ignored(err.reason(), err.to_string()),
    };
    let Some(target) = deps.ack_codes.resolve(&code).await? else {
        return ignored(
            "unknown-code",
            format!("no alert or emergency has code {code}"),
        );
    };
    let alert_id = match target {
        AckTarget::Alert { alert_id } => alert_id,
        AckTarget::Emergency { emergency_id } => {
            return acknowledge_emergency(deps, &emergency_id, sms, now).await;
        }
    };
    let Some(by) = recipient_with_phone(deps, &alert_id, &sms.origination_number).await? else {
        return ignored(
            "not-a-recipient",
            format!("the sender was not sent alert {alert_id}"),
        );
    };
    match ack::acknowledge_alert(deps, &alert_id, &by, now).await? {
        AckOutcome::Acknowledged => Ok(Handled::Acknowledged {
            target: format!("alert {alert_id}"),
            by,
        }),
        AckOutcome::AlreadyAcknowledged => {
            ignored("already-acknowledged", format!("alert {alert_id}"))
        }
        // A recipient was found, so the alert exists and is routed: not reached.
        AckOutcome::NotRouted | AckOutcome::NoAlert => {
            ignored("not-routed", format!("alert {alert_id}"))
        }
    }
}

/// An emergency's code: the worker assigned to it acknowledges it
/// ([`coordinator::acknowledge_emergency`]); anyone else acknowledges nothing.
async fn acknowledge_emergency(
    deps: &Deps<'_>,
    emergency_id: &str,
    sms: &InboundSms,
    now: DateTime<Utc>,
) -> Result<Handled, EmergencyError> {
    let (stored, events) = coordinator::load(deps, emergency_id).await?;
    let Some(first) = stored.first() else {
        return ignored("no-emergency", format!("no emergency {emergency_id}"));
    };
    let state = SagaState::fold(&events);
    let sender = e164(&sms.origination_number);
    let mut by = None;
    if let Some(worker_id) = &state.worker_id
        && let Some(worker) = deps.workers.get(worker_id).await?
        && sender.len() > 1
        && e164(&worker.phone) == sender
    {
        by = Some(worker_id.clone());
    }
    let Some(by) = by else {
        return ignored(
            "not-a-recipient",
            format!("the sender is not the worker of emergency {emergency_id}"),
        );
    };
    // One saga input per reply: a redelivered reply is the same input.
    let reply_id = sms
        .inbound_message_id
        .clone()
        .unwrap_or_else(|| deterministic_id(&[&sms.origination_number, &sms.message_body]));
    let input_id = deterministic_id(&["sms-ack", &reply_id]);
    let advanced = coordinator::acknowledge_emergency(
        deps,
        emergency_id,
        &by,
        &input_id,
        &first.correlation_id,
        now,
    )
    .await?;
    if advanced.applied {
        Ok(Handled::Acknowledged {
            target: format!("emergency {emergency_id}"),
            by,
        })
    } else {
        ignored(
            "already-acknowledged",
            format!("emergency {emergency_id} (or it is over)"),
        )
    }
}

/// The id of the person who was sent the alert at `phone`: the routed worker or an
/// escalation recipient. `None` when nobody the alert went to has that phone.
async fn recipient_with_phone(
    deps: &Deps<'_>,
    alert_id: &str,
    phone: &str,
) -> Result<Option<String>, EmergencyError> {
    let sender = e164(phone);
    if sender.len() < 2 {
        return Ok(None);
    }
    let stored = deps.reader.read_stream(&alert_stream(alert_id)).await?;
    let text = |e: &Value, field: &str| e.get(field).and_then(Value::as_str).map(str::to_string);
    let mut recipients = Vec::new();
    for event in &stored {
        match event.event_type.as_str() {
            "AlertRouted" => {
                let (Some(worker_id), Some(patient_id)) = (
                    text(&event.data, "workerId"),
                    text(&event.data, "patientId"),
                ) else {
                    continue;
                };
                // The alert SMS went to the worker's phone in the workers table (route reads
                // it there, issue 14); to a directory entry's copy only for a worker missing
                // from the table (entries written before), so a stale copy acknowledges
                // nothing.
                let phone = match deps.workers.get(&worker_id).await? {
                    Some(worker) => Some(worker.phone),
                    None => deps
                        .directory
                        .get(&patient_id)
                        .await?
                        .filter(|entry| entry.worker_id == worker_id)
                        .map(|entry| entry.worker_phone),
                };
                if phone.is_some_and(|phone| e164(&phone) == sender) {
                    return Ok(Some(worker_id));
                }
                recipients.push(worker_id);
            }
            "AlertEscalated" => recipients.extend(text(&event.data, "recipientId")),
            _ => {}
        }
    }
    let mut seen = BTreeSet::new();
    for id in recipients {
        if !seen.insert(id.clone()) {
            continue;
        }
        if let Some(worker) = deps.workers.get(&id).await?
            && e164(&worker.phone) == sender
        {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// The SMS of a queue message: an SNS notification whose `Message` is the two-way SMS JSON,
/// or (raw delivery) that JSON itself.
pub fn read_inbound(bytes: &[u8]) -> Result<InboundSms, EmergencyError> {
    let unreadable = |expected, source| EmergencyError::Unreadable {
        what: "an inbound queue message".into(),
        expected,
        source,
    };
    let value: Value = serde_json::from_slice(bytes).map_err(|e| unreadable("JSON", e))?;
    if value.get("Type").is_none() {
        return serde_json::from_value(value).map_err(|e| unreadable("a two-way SMS message", e));
    }
    let notification: SnsMessage =
        serde_json::from_value(value).map_err(|e| unreadable("an SNS notification", e))?;
    if notification.sns_message_type != "Notification" {
        return Err(EmergencyError::Invalid(format!(
            "SNS message of type {} on the inbound queue",
            notification.sns_message_type
        )));
    }
    serde_json::from_str(&notification.message)
        .map_err(|e| unreadable("an SNS notification of a two-way SMS message", e))
}

/// A phone number reduced to `+` and digits, `00` read as `+` (`+254 700-000 101` and
/// `00254700000101` are `+254700000101`).
fn e164(phone: &str) -> String {
    let kept: String = phone
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '+')
        .collect();
    match kept.strip_prefix("00") {
        Some(rest) => format!("+{rest}"),
        None => kept,
    }
}

/// A phone for logs: its last three digits only.
fn masked(phone: &str) -> String {
    let digits: Vec<char> = phone.chars().filter(char::is_ascii_digit).collect();
    let tail: String = digits[digits.len().saturating_sub(3)..].iter().collect();
    format!("***{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_compare_as_e164() {
        assert_eq!(e164("+254 700-000 101"), "+254700000101");
        assert_eq!(e164("00254700000101"), "+254700000101");
        assert_eq!(masked("+254700000101"), "***101");
        assert_eq!(masked(""), "***");
    }

    #[test]
    fn an_sns_notification_and_a_raw_message_both_read() {
        let sms = r#"{"originationNumber":"+254700000101","destinationNumber":"+254700009000","messageKeyword":"ACK","messageBody":"ACK 4K7Q2M","inboundMessageId":"i-1","previousPublishedMessageId":"p-1"}"#;
        let raw = read_inbound(sms.as_bytes()).unwrap();
        assert_eq!(raw.message_body, "ACK 4K7Q2M");
        let notification = serde_json::json!({
            "Type": "Notification",
            "MessageId": "m-1",
            "TopicArn": "arn:aws:sns:us-east-1:000000000000:inbound",
            "Message": sms,
            "Timestamp": "2026-11-24T08:05:00.000Z",
            "SignatureVersion": "1",
            "Signature": "c2ln",
            "SigningCertURL": "https://sns.us-east-1.amazonaws.com/cert.pem",
            "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
        });
        let wrapped = read_inbound(notification.to_string().as_bytes()).unwrap();
        assert_eq!(wrapped.origination_number, "+254700000101");
        assert_eq!(wrapped.inbound_message_id.as_deref(), Some("i-1"));
        assert!(read_inbound(b"{not json").is_err());
        assert!(read_inbound(br#"{"Type":"Notification"}"#).is_err());
    }
}
