//! What a batch (or a sweep page) did: [`BatchSummary`].

use std::collections::BTreeMap;

/// What one batch did: logged as one structured line (`batch summary`) and returned so
/// the counts can feed metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchSummary {
    pub records: usize,
    /// Undecodable records sent to the dead-letter queue.
    pub poison: usize,
    pub patients: usize,
    /// Readings already seen (redelivery).
    pub duplicates: usize,
    /// Readings beyond the allowed lateness, evaluated by backfill.
    pub late: usize,
    /// Readings evaluated by the rules in this batch.
    pub evaluated: usize,
    /// Readings waiting for the allowed lateness to pass, over the patients of the batch.
    pub pending: usize,
    pub alerts_raised: usize,
    pub alerts_resolved: usize,
    /// Patient state saves (DynamoDB `PutItem`).
    pub state_writes: usize,
    /// Event appends (DynamoDB `PutItem`): alerts, resolutions, late readings.
    pub event_writes: usize,
    /// Patients whose readings will be retried.
    pub failed_patients: usize,
    /// Blocks of recent vitals written (DynamoDB `PutItem`, one per closed patient-hour).
    pub vitals_writes: usize,
    /// Readings flushed to the vitals table, by (village, UTC day): added to the village
    /// statistics once per batch.
    pub village_readings: BTreeMap<(String, String), i64>,
}

/// How many patients of a batch (or a sweep page) are processed at once.
pub const PATIENT_CONCURRENCY: usize = 16;

impl BatchSummary {
    /// Adds another summary's counts (of other patients) to this one.
    pub fn add(&mut self, other: &BatchSummary) {
        self.duplicates += other.duplicates;
        self.late += other.late;
        self.evaluated += other.evaluated;
        self.pending += other.pending;
        self.alerts_raised += other.alerts_raised;
        self.alerts_resolved += other.alerts_resolved;
        self.state_writes += other.state_writes;
        self.event_writes += other.event_writes;
        self.failed_patients += other.failed_patients;
        self.vitals_writes += other.vitals_writes;
        for (key, count) in &other.village_readings {
            *self.village_readings.entry(key.clone()).or_default() += count;
        }
    }
}
