//! Alert escalation: who is told next when a routed alert is not acknowledged. Pure logic.
//!
//! Level 0 is the patient's assigned health worker (the routing of the alert). Each missed
//! acknowledgement deadline moves one level on: the next available worker of the village
//! (roster order), then the district supervisor. After the supervisor nobody else is told.

use serde::{Deserialize, Serialize};

use crate::envelope::EventData;
use crate::routing::DirectoryEntry;

/// A health worker acknowledged an alert (`POST /alerts/{id}/ack`; alert stream).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, EventData)]
#[serde(rename_all = "camelCase")]
pub struct AlertAcknowledged {
    pub alert_id: String,
    pub acknowledged_by: String,
}

/// Nobody acknowledged an alert in time: the next person of the chain was told (alert stream).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, EventData)]
#[serde(rename_all = "camelCase")]
pub struct AlertEscalated {
    pub alert_id: String,
    pub level: usize,
    pub recipient_id: String,
    pub notification_id: String,
}

/// The acknowledgement deadline of `level` of an alert has passed (escalation queue, sent
/// with a delay of the acknowledgement timeout).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, EventData)]
#[serde(rename_all = "camelCase")]
pub struct AlertEscalationDue {
    pub alert_id: String,
    pub patient_id: String,
    pub level: usize,
}

/// A health worker or supervisor as the workers table keeps them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Worker {
    pub worker_id: String,
    pub name: String,
    /// E.164.
    pub phone: String,
    pub village: String,
    /// Off duty workers are skipped by escalation and never reserved by an emergency.
    pub available: bool,
    /// The emergency holding this worker, if any (written only by conditional updates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved_by: Option<String>,
}

/// A village's workers in escalation order and its district supervisor. Stored in the
/// directory table under the key `village#{village}` (see [`roster_key`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VillageRoster {
    pub village: String,
    pub worker_ids: Vec<String>,
    pub supervisor_id: String,
}

/// Who is told when an emergency is raised for a patient. Stored in the directory table under
/// the key `family#{patientId}` (see [`family_key`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FamilyContact {
    pub patient_id: String,
    pub name: String,
    /// E.164.
    pub phone: String,
}

/// Directory-table key of a patient's family contact.
pub fn family_key(patient_id: &str) -> String {
    format!("family#{patient_id}")
}

/// Directory-table key of a village roster (patient ids never start with `village#`).
pub fn roster_key(village: &str) -> String {
    format!("village#{village}")
}

/// Who is told at each level: the assigned worker, the other village workers in roster
/// order, then the supervisor. No one appears twice.
pub fn escalation_chain(entry: &DirectoryEntry, roster: Option<&VillageRoster>) -> Vec<String> {
    let mut chain = vec![entry.worker_id.clone()];
    if let Some(roster) = roster {
        for id in roster.worker_ids.iter().chain([&roster.supervisor_id]) {
            if !chain.contains(id) {
                chain.push(id.clone());
            }
        }
    }
    chain
}

/// The level after `level` whose person is available, with their id; `None` when the chain
/// is exhausted. The supervisor (last of the chain) is told even when marked unavailable.
pub fn next_recipient(
    chain: &[String],
    level: usize,
    available: impl Fn(&str) -> bool,
) -> Option<(usize, String)> {
    let last = chain.len().checked_sub(1)?;
    (level + 1..chain.len())
        .find(|&l| l == last || available(&chain[l]))
        .map(|l| (l, chain[l].clone()))
}

/// The acknowledgement and escalation progress of an alert, folded from its stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertProgress {
    pub routed: bool,
    pub acknowledged: bool,
    /// Highest level told so far (0 = the assigned worker).
    pub level: usize,
    /// Events in the alert stream (= its version).
    pub version: u64,
}

impl AlertProgress {
    /// Folds `(eventType, data.level)` pairs of an alert stream.
    pub fn fold<'a>(events: impl IntoIterator<Item = (&'a str, Option<u64>)>) -> AlertProgress {
        let mut p = AlertProgress::default();
        for (event_type, level) in events {
            p.version += 1;
            match event_type {
                "AlertRouted" => p.routed = true,
                "AlertAcknowledged" => p.acknowledged = true,
                "AlertEscalated" => {
                    let level = level.and_then(|l| usize::try_from(l).ok()).unwrap_or(0);
                    p.level = p.level.max(level);
                }
                _ => {}
            }
        }
        p
    }

    /// Whether a deadline check for `level` should escalate: the alert was routed, nobody
    /// acknowledged it and it is still at that level (a repeated check does nothing).
    pub fn should_escalate(&self, level: usize) -> bool {
        self.routed && !self.acknowledged && self.level == level
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> DirectoryEntry {
        DirectoryEntry {
            patient_id: "p-1".into(),
            patient_name: "Amina".into(),
            village: "Bondo".into(),
            worker_id: "w-2".into(),
            worker_name: "Joseph".into(),
            worker_phone: "+254700000002".into(),
        }
    }

    fn roster() -> VillageRoster {
        VillageRoster {
            village: "Bondo".into(),
            worker_ids: vec!["w-1".into(), "w-2".into(), "w-3".into()],
            supervisor_id: "s-1".into(),
        }
    }

    #[test]
    fn chain_is_assigned_worker_then_village_then_supervisor() {
        assert_eq!(
            escalation_chain(&entry(), Some(&roster())),
            ["w-2", "w-1", "w-3", "s-1"]
        );
        assert_eq!(escalation_chain(&entry(), None), ["w-2"]);
    }

    #[test]
    fn next_recipient_skips_unavailable_workers_but_never_the_supervisor() {
        let chain = escalation_chain(&entry(), Some(&roster()));
        assert_eq!(
            next_recipient(&chain, 0, |_| true),
            Some((1, "w-1".to_string()))
        );
        assert_eq!(
            next_recipient(&chain, 0, |id| id != "w-1"),
            Some((2, "w-3".to_string()))
        );
        assert_eq!(
            next_recipient(&chain, 0, |_| false),
            Some((3, "s-1".to_string()))
        );
        assert_eq!(next_recipient(&chain, 3, |_| true), None);
        assert_eq!(next_recipient(&[], 0, |_| true), None);
    }

    #[test]
    fn progress_escalates_only_unacknowledged_alerts_at_the_checked_level() {
        let routed = [("AlertRaised", None), ("AlertRouted", None)];
        let p = AlertProgress::fold(routed);
        assert!(p.should_escalate(0));
        assert_eq!(p.version, 2);

        let p = AlertProgress::fold(routed.into_iter().chain([("AlertEscalated", Some(1))]));
        assert!(!p.should_escalate(0), "a repeated level-0 check is a no-op");
        assert!(p.should_escalate(1));

        let p = AlertProgress::fold(routed.into_iter().chain([("AlertAcknowledged", None)]));
        assert!(!p.should_escalate(0));

        let p = AlertProgress::fold([("AlertRaised", None)]);
        assert!(!p.should_escalate(0), "not routed yet");
    }
}
