//! Authorizes a request ([`domain::access`]): reads the directory facts that decide, in at
//! most two batches (the patients' entries with the device's binding, then the village
//! rosters those entries leave open, only if any), and decides.

use std::collections::BTreeSet;

use domain::access::{
    Action, Caller, Denied, DirectoryFacts, Lookup, authorize, lookup, permitted, roster_lookup,
};

use crate::ports::{AccessDirectory, PortError};

/// Whether `caller` may do `action` to every one of `patient_ids`: `Ok(Ok(()))` allowed,
/// `Ok(Err(denied))` refused, `Err` when the directory could not be read.
pub async fn check<'a>(
    directory: &dyn AccessDirectory,
    caller: &Caller,
    action: Action,
    patient_ids: impl IntoIterator<Item = &'a str> + Clone,
) -> Result<Result<(), Denied>, PortError> {
    let first = lookup(caller, action, patient_ids.clone());
    let mut facts = if first.is_empty() {
        DirectoryFacts::default()
    } else {
        directory.facts(&first).await?
    };
    let villages = roster_lookup(caller, action, patient_ids.clone(), &facts);
    if !villages.is_empty() {
        let rosters = directory
            .facts(&Lookup {
                villages,
                ..Lookup::default()
            })
            .await?;
        facts.merge(rosters);
    }
    Ok(authorize(caller, action, patient_ids, &facts))
}

/// The directory facts that decide `caller` doing `action` to `patient_ids` (at most two
/// batches, as [`check`] reads them).
async fn facts_for<'a>(
    directory: &dyn AccessDirectory,
    caller: &Caller,
    action: Action,
    patient_ids: impl IntoIterator<Item = &'a str> + Clone,
) -> Result<DirectoryFacts, PortError> {
    let first = lookup(caller, action, patient_ids.clone());
    let mut facts = if first.is_empty() {
        DirectoryFacts::default()
    } else {
        directory.facts(&first).await?
    };
    let villages = roster_lookup(caller, action, patient_ids, &facts);
    if !villages.is_empty() {
        let rosters = directory
            .facts(&Lookup {
                villages,
                ..Lookup::default()
            })
            .await?;
        facts.merge(rosters);
    }
    Ok(facts)
}

/// Which of `patient_ids` `caller` may do `action` to (a listing keeps the items of those
/// only); reads the directory as [`check`] does, nothing for an operator.
pub async fn permitted_patients<'a>(
    directory: &dyn AccessDirectory,
    caller: &Caller,
    action: Action,
    patient_ids: impl IntoIterator<Item = &'a str> + Clone,
) -> Result<BTreeSet<String>, PortError> {
    let facts = facts_for(directory, caller, action, patient_ids.clone()).await?;
    Ok(permitted(caller, action, patient_ids, &facts))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use async_trait::async_trait;
    use domain::access::{DeviceBinding, Role};
    use domain::escalation::VillageRoster;
    use domain::routing::DirectoryEntry;

    use super::*;

    /// p-1 (Bondo, w-1), p-2 (Bondo, w-2); Bondo's roster w-1, w-2, supervisor s-1;
    /// kiosk-3 in Bondo. Records every lookup.
    #[derive(Default)]
    struct Directory {
        lookups: Mutex<Vec<Lookup>>,
    }

    #[async_trait]
    impl AccessDirectory for Directory {
        async fn facts(&self, lookup: &Lookup) -> Result<DirectoryFacts, PortError> {
            self.lookups.lock().unwrap().push(lookup.clone());
            let entries: HashMap<&str, DirectoryEntry> = [("p-1", "w-1"), ("p-2", "w-2")]
                .into_iter()
                .map(|(p, w)| {
                    (
                        p,
                        DirectoryEntry {
                            patient_id: p.into(),
                            patient_name: p.into(),
                            village: "Bondo".into(),
                            worker_id: w.into(),
                            worker_name: w.into(),
                            worker_phone: "+254700000001".into(),
                            device_ids: Vec::new(),
                        },
                    )
                })
                .collect();
            Ok(DirectoryFacts {
                patients: lookup
                    .patient_ids
                    .iter()
                    .filter_map(|p| entries.get(p.as_str()).map(|e| (p.clone(), e.clone())))
                    .collect(),
                rosters: lookup
                    .villages
                    .iter()
                    .filter(|v| *v == "Bondo")
                    .map(|v| {
                        (
                            v.clone(),
                            VillageRoster {
                                village: v.clone(),
                                worker_ids: vec!["w-1".into(), "w-2".into()],
                                supervisor_id: "s-1".into(),
                            },
                        )
                    })
                    .collect(),
                device: lookup
                    .device_id
                    .as_deref()
                    .filter(|d| *d == "kiosk-3")
                    .map(|_| DeviceBinding::Kiosk {
                        village: "Bondo".into(),
                    }),
            })
        }
    }

    #[tokio::test]
    async fn a_worker_posting_for_their_own_patients_costs_one_read() {
        let directory = Directory::default();
        let worker = Caller::new(Role::HealthWorker, "w-1");
        let ids = ["p-1", "p-1", "p-9"];
        let decided = check(&directory, &worker, Action::PostReadings, ids)
            .await
            .unwrap();
        assert_eq!(decided, Ok(()));
        assert_eq!(directory.lookups.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_roster_decides_in_a_second_read() {
        let directory = Directory::default();
        let worker = Caller::new(Role::HealthWorker, "w-1");
        let decided = check(&directory, &worker, Action::PostReadings, ["p-1", "p-2"])
            .await
            .unwrap();
        assert_eq!(decided, Ok(()));
        let lookups = directory.lookups.lock().unwrap();
        assert_eq!(lookups.len(), 2);
        assert_eq!(lookups[1].villages, ["Bondo"]);
    }

    #[tokio::test]
    async fn a_supervisor_of_another_district_is_denied() {
        let directory = Directory::default();
        let other = Caller::new(Role::Supervisor, "s-2");
        let denied = check(&directory, &other, Action::ReadEmergency, ["p-1"])
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(denied.patient_ids, ["p-1"]);
        let own = Caller::new(Role::Supervisor, "s-1");
        let decided = check(&directory, &own, Action::ReadEmergency, ["p-1"])
            .await
            .unwrap();
        assert_eq!(decided, Ok(()));
    }

    #[tokio::test]
    async fn a_device_reads_its_binding_with_the_patients() {
        let directory = Directory::default();
        let kiosk = Caller::new(Role::Device, "kiosk-3");
        let decided = check(&directory, &kiosk, Action::PostReadings, ["p-1", "p-2"])
            .await
            .unwrap();
        assert_eq!(decided, Ok(()));
        let lookups = directory.lookups.lock().unwrap();
        assert_eq!(lookups.len(), 1);
        assert_eq!(lookups[0].device_id.as_deref(), Some("kiosk-3"));
    }

    #[tokio::test]
    async fn an_operator_reads_nothing() {
        let directory = Directory::default();
        let operator = Caller::new(Role::Operator, "op-1");
        let decided = check(&directory, &operator, Action::PostReadings, ["p-7"])
            .await
            .unwrap();
        assert_eq!(decided, Ok(()));
        assert!(directory.lookups.lock().unwrap().is_empty());
    }
}
