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
    /// Level 0 only: how many times the check found the alert not routed yet and delayed
    /// itself again (see [`MAX_ROUTING_WAITS`]).
    #[serde(default)]
    pub routing_waits: u32,
}

/// How many acknowledgement timeouts a level-0 check waits for an alert's routing before it
/// treats the alert as unroutable and tells the district supervisor.
pub const MAX_ROUTING_WAITS: u32 = 2;

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
    /// The language the worker reads their SMS in (a BCP 47 tag; items written before
    /// issue 14 have none and read as [`DEFAULT_LANGUAGE`]).
    #[serde(default = "default_language")]
    pub language: String,
}

/// The language of a worker whose item names none.
pub const DEFAULT_LANGUAGE: &str = "en";

fn default_language() -> String {
    DEFAULT_LANGUAGE.to_string()
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
    /// The language the family reads its SMS in (a BCP 47 tag; items written before issue
    /// 16 have none and read as [`DEFAULT_LANGUAGE`]).
    #[serde(default = "default_language")]
    pub language: String,
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
            // A roster onboarded before its supervisor has none yet (empty id).
            if !id.is_empty() && !chain.contains(id) {
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

    /// Whether a level-0 check of an alert that was never routed should tell the district
    /// supervisor: nobody acknowledged it, nobody was told yet, and the patient is unknown
    /// or the check has waited [`MAX_ROUTING_WAITS`] times for the routing.
    pub fn unroutable(&self, patient_known: bool, routing_waits: u32) -> bool {
        !self.routed
            && !self.acknowledged
            && self.level == 0
            && (!patient_known || routing_waits >= MAX_ROUTING_WAITS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Given/when/then for escalation, in the style of cqrs-es' `TestFramework`: given an
    /// alert's stream (folded as the acknowledgement check loads it), the patient's chain and
    /// who is available; when the acknowledgement deadline of a level passes; then who is told
    /// next, if anyone (as the emergency function's escalation decides).
    struct EscalationTest {
        stream: Vec<(&'static str, Option<u64>)>,
        chain: Vec<String>,
        unavailable: Vec<&'static str>,
        story: String,
    }

    /// Given a patient looked after by w-2, whose village may have a roster.
    fn given_patient(roster: Option<VillageRoster>) -> EscalationTest {
        let chain = escalation_chain(&entry(), roster.as_ref());
        EscalationTest {
            // Routed to the assigned worker, nobody acknowledged it yet.
            stream: vec![("AlertRaised", None), ("AlertRouted", None)],
            chain,
            unavailable: Vec::new(),
            story: format!("given roster {roster:?}"),
        }
    }

    /// Given an alert whose stream holds these `(eventType, level)` events.
    fn given_alert_stream(
        stream: impl IntoIterator<Item = (&'static str, Option<u64>)>,
    ) -> EscalationTest {
        let stream: Vec<_> = stream.into_iter().collect();
        EscalationTest {
            story: format!("given {stream:?}"),
            stream,
            ..given_patient(Some(roster()))
        }
    }

    /// Given a chain of these people (for the edge cases of the chain itself).
    fn given_chain(chain: &[&str]) -> EscalationTest {
        EscalationTest {
            chain: chain.iter().map(|id| id.to_string()).collect(),
            story: format!("given chain {chain:?}"),
            ..given_patient(None)
        }
    }

    impl EscalationTest {
        /// And these people are off duty or reserved.
        fn unavailable(mut self, ids: &[&'static str]) -> Self {
            self.unavailable.extend(ids);
            self.story.push_str(&format!(", unavailable {ids:?}"));
            self
        }

        /// Then the chain is, in order:
        fn then_chain(self, expected: &[&str]) -> Self {
            assert_eq!(self.chain, expected, "{}", self.story);
            self
        }

        fn progress(&self) -> AlertProgress {
            AlertProgress::fold(self.stream.iter().copied())
        }

        /// When the acknowledgement deadline of `level` passes.
        fn when_deadline_of(self, level: usize) -> Then {
            let progress = self.progress();
            let told = progress
                .should_escalate(level)
                .then(|| next_recipient(&self.chain, level, |id| !self.unavailable.contains(&id)))
                .flatten();
            Then {
                progress,
                told,
                story: format!("{}, when the deadline of level {level} passes", self.story),
            }
        }
    }

    struct Then {
        progress: AlertProgress,
        /// The level and the person told, if anyone.
        told: Option<(usize, String)>,
        story: String,
    }

    impl Then {
        /// Then the alert escalates to `level`: `recipient` is told.
        fn then_expect_told(self, level: usize, recipient: &str) -> Self {
            assert_eq!(
                self.told,
                Some((level, recipient.to_string())),
                "{}",
                self.story
            );
            self
        }

        /// Then nobody is told (`why`: for the failure message).
        fn then_expect_nobody_told(self, why: &str) -> Self {
            assert_eq!(self.told, None, "{why}: {}", self.story);
            self
        }

        /// Then the folded progress is at `version` (the stream's length).
        fn then_version(self, version: u64) -> Self {
            assert_eq!(self.progress.version, version, "{}", self.story);
            self
        }
    }

    fn entry() -> DirectoryEntry {
        DirectoryEntry {
            patient_id: "p-1".into(),
            patient_name: "Amina".into(),
            village: "Bondo".into(),
            worker_id: "w-2".into(),
            worker_name: "Joseph".into(),
            worker_phone: "+254700000002".into(),
            device_ids: Vec::new(),
        }
    }

    fn roster() -> VillageRoster {
        VillageRoster {
            village: "Bondo".into(),
            worker_ids: vec!["w-1".into(), "w-2".into(), "w-3".into()],
            supervisor_id: "s-1".into(),
        }
    }

    const ROUTED: [(&str, Option<u64>); 2] = [("AlertRaised", None), ("AlertRouted", None)];

    #[test]
    fn chain_is_assigned_worker_then_village_then_supervisor() {
        given_patient(Some(roster())).then_chain(&["w-2", "w-1", "w-3", "s-1"]);
        given_patient(None).then_chain(&["w-2"]);
    }

    #[test]
    fn a_missed_deadline_tells_the_next_available_worker_of_the_village() {
        given_patient(Some(roster()))
            .when_deadline_of(0)
            .then_expect_told(1, "w-1");
    }

    #[test]
    fn unavailable_workers_are_skipped() {
        given_patient(Some(roster()))
            .unavailable(&["w-1"])
            .when_deadline_of(0)
            .then_expect_told(2, "w-3");
    }

    #[test]
    fn the_supervisor_is_told_even_when_unavailable() {
        given_patient(Some(roster()))
            .unavailable(&["w-1", "w-2", "w-3", "s-1"])
            .when_deadline_of(0)
            .then_expect_told(3, "s-1");
    }

    #[test]
    fn after_the_supervisor_nobody_is_told() {
        given_alert_stream(ROUTED.into_iter().chain([("AlertEscalated", Some(3))]))
            .when_deadline_of(3)
            .then_expect_nobody_told("the chain is exhausted");
        given_chain(&[])
            .when_deadline_of(0)
            .then_expect_nobody_told("an empty chain");
    }

    #[test]
    fn a_routed_unacknowledged_alert_escalates() {
        given_alert_stream(ROUTED)
            .when_deadline_of(0)
            .then_expect_told(1, "w-1")
            .then_version(2);
    }

    #[test]
    fn a_repeated_check_of_a_level_already_escalated_is_a_no_op() {
        let escalated = ROUTED.into_iter().chain([("AlertEscalated", Some(1))]);
        given_alert_stream(escalated.clone())
            .when_deadline_of(0)
            .then_expect_nobody_told("a repeated level-0 check is a no-op");
        given_alert_stream(escalated)
            .when_deadline_of(1)
            .then_expect_told(2, "w-3")
            .then_version(3);
    }

    #[test]
    fn an_acknowledged_alert_does_not_escalate() {
        given_alert_stream(ROUTED.into_iter().chain([("AlertAcknowledged", None)]))
            .when_deadline_of(0)
            .then_expect_nobody_told("acknowledged");
    }

    #[test]
    fn an_alert_not_routed_yet_does_not_escalate() {
        given_alert_stream([("AlertRaised", None)])
            .when_deadline_of(0)
            .then_expect_nobody_told("not routed yet");
    }
}
