//! [`RecentVitals`] and [`VillageStats`] in memory.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;

use application::ports::PortError;
use application::vitals::{BlockPage, RecentVitals, StoredBlock, VillageStats};
use domain::village_stats::StatsDelta;
use domain::vitals::{HourBlock, hour_key};

use super::lock;

/// Blocks by (patient, sort key); every put is counted in `puts`.
#[derive(Default)]
pub struct MemoryVitals {
    pub blocks: Mutex<BTreeMap<(String, String), HourBlock>>,
    pub puts: Mutex<usize>,
}

impl MemoryVitals {
    /// Every block of a patient, in sort-key order.
    pub fn of(&self, patient_id: &str) -> Vec<HourBlock> {
        lock(&self.blocks)
            .iter()
            .filter(|((p, _), _)| p == patient_id)
            .map(|(_, b)| b.clone())
            .collect()
    }
}

#[async_trait]
impl RecentVitals for MemoryVitals {
    async fn put_block(&self, patient_id: &str, block: &HourBlock) -> Result<(), PortError> {
        *lock(&self.puts) += 1;
        lock(&self.blocks).insert(
            (patient_id.to_string(), block.sort_key(patient_id)),
            block.clone(),
        );
        Ok(())
    }

    async fn blocks(
        &self,
        patient_id: &str,
        from_hour: i64,
        to_hour: i64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<BlockPage, PortError> {
        let low = hour_key(from_hour);
        let high = format!("{}~", hour_key(to_hour));
        let all: Vec<StoredBlock> = lock(&self.blocks)
            .iter()
            .filter(|((p, sk), _)| {
                p == patient_id
                    && *sk >= low
                    && *sk <= high
                    && after.is_none_or(|a| sk.as_str() > a)
            })
            .map(|((_, sk), block)| StoredBlock {
                sort_key: sk.clone(),
                block: block.clone(),
            })
            .collect();
        let limit = limit.max(1);
        let next = (all.len() > limit)
            .then(|| all.get(limit - 1).map(|b| b.sort_key.clone()))
            .flatten();
        Ok(BlockPage {
            blocks: all.into_iter().take(limit).collect(),
            next,
        })
    }
}

/// Counters by (village, date), with the markers each item has counted.
#[derive(Default)]
pub struct MemoryVillageStats {
    pub days: Mutex<BTreeMap<(String, String), BTreeMap<String, i64>>>,
    pub markers: Mutex<BTreeSet<(String, String, String)>>,
    pub adds: Mutex<usize>,
}

#[async_trait]
impl VillageStats for MemoryVillageStats {
    async fn add(&self, delta: &StatsDelta) -> Result<bool, PortError> {
        *lock(&self.adds) += 1;
        if let Some(marker) = &delta.marker
            && !lock(&self.markers).insert((
                delta.village.clone(),
                delta.date.clone(),
                marker.clone(),
            ))
        {
            return Ok(false);
        }
        let mut days = lock(&self.days);
        let counters = days
            .entry((delta.village.clone(), delta.date.clone()))
            .or_default();
        for (name, value) in &delta.counters {
            *counters.entry(name.clone()).or_default() += value;
        }
        Ok(true)
    }

    async fn days(
        &self,
        village: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<(String, BTreeMap<String, i64>)>, PortError> {
        Ok(lock(&self.days)
            .iter()
            .filter(|((v, d), _)| v == village && d.as_str() >= from && d.as_str() <= to)
            .map(|((_, d), c)| (d.clone(), c.clone()))
            .collect())
    }
}
