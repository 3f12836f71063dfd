//! Ports of the recent vitals and the village statistics (docs/read-side.md).

use std::collections::BTreeMap;

use async_trait::async_trait;

use domain::village_stats::StatsDelta;
use domain::vitals::HourBlock;

use crate::ports::PortError;

/// A stored block of recent vitals, as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredBlock {
    pub sort_key: String,
    pub block: HourBlock,
}

/// One page of a patient's blocks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BlockPage {
    pub blocks: Vec<StoredBlock>,
    /// The sort key to continue after, when the page was cut.
    pub next: Option<String>,
}

/// The vitals table: one item per patient-hour block, and its reader.
#[async_trait]
pub trait RecentVitals: Send + Sync {
    /// Writes the block (a plain put: the key is the hour and a digest of the content, so
    /// writing it again writes the same item).
    async fn put_block(&self, patient_id: &str, block: &HourBlock) -> Result<(), PortError>;
    /// The patient's blocks whose hour is in `[from_hour, to_hour]` (hour starts, Unix ms),
    /// in hour order, starting after the sort key `after`, at most `limit` (a Query).
    async fn blocks(
        &self,
        patient_id: &str,
        from_hour: i64,
        to_hour: i64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<BlockPage, PortError>;
}

/// The village statistics table: one item per (village, UTC day) of counters.
#[async_trait]
pub trait VillageStats: Send + Sync {
    /// Adds the counters (one `UpdateItem ADD`). With a marker, the item remembers it and
    /// a second add with the same marker changes nothing (returns false).
    async fn add(&self, delta: &StatsDelta) -> Result<bool, PortError>;
    /// The days of `village` from `from` to `to` (`YYYY-MM-DD`, inclusive): counters by
    /// day (a Query).
    async fn days(
        &self,
        village: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<(String, BTreeMap<String, i64>)>, PortError>;
}
