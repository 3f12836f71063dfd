//! The per-shard path of `detect` (issue 15): a Kinesis batch applied to its shard's
//! session ([`crate::shard`]), and the sweep over the shards whose snapshot is due.
//! docs/detection.md, "State per shard", argues durability and ordering.

use std::sync::Arc;

use application::ports::PortError;
use application::shard_state::ReplayRecord;
use aws_lambda_events::event::kinesis::{KinesisEvent, KinesisEventRecord};
use aws_lambda_events::event::streams::KinesisEventResponse;
use chrono::{DateTime, Utc};
use domain::detection::Input;
use domain::detection::snapshot::is_new;
use futures::StreamExt;

use crate::shard::{SessionStore, ShardSession, Shards, Wanted, load};
use crate::{
    BatchSummary, Decoded, Deps, PATIENT_CONCURRENCY, SWEEP_PAGE, SweepSummary, decode_record,
    group_by_patient, process_patient, vitals,
};

/// One record to apply: its sequence number in the shard and its data.
#[derive(Debug, Clone, Copy)]
pub struct RecordRef<'a> {
    pub seq: &'a str,
    pub data: &'a [u8],
}

/// The shard id of a Kinesis record (`eventID` is `shardId-…:sequence`).
pub fn shard_of(record: &KinesisEventRecord) -> Option<String> {
    let id = record.event_id.as_deref()?;
    let (shard, _) = id.split_once(':')?;
    (!shard.is_empty()).then(|| shard.to_string())
}

/// Handles one Kinesis batch on its shard's in-memory state, restoring the state first
/// if this process does not hold it (or lost it), and writing the snapshot when
/// [`ShardSession::flush_wanted`]. Reports the first record not fully processed.
pub async fn handle_stream(
    deps: &Deps<'_>,
    shards: &Shards<'_>,
    event: &KinesisEvent,
    now: DateTime<Utc>,
) -> (KinesisEventResponse, BatchSummary) {
    let records = &event.records;
    let mut summary = BatchSummary {
        records: records.len(),
        ..BatchSummary::default()
    };
    let mut response = KinesisEventResponse::default();
    let Some(first) = records.first() else {
        return (response, summary);
    };
    let (Some(shard), Some(arn)) = (shard_of(first), first.event_source_arn.clone()) else {
        tracing::error!(
            "a Kinesis record without eventID or eventSourceARN: cannot keep its shard's state"
        );
        response.add_failure(first.kinesis.sequence_number.clone());
        return (response, summary);
    };
    let first_seq = first.kinesis.sequence_number.as_str();
    let session = match shards.cache.get(&shard) {
        Some(session) => session,
        None => match restore(
            deps,
            shards,
            &shard,
            &arn,
            Some(first_seq),
            now,
            &mut summary,
        )
        .await
        {
            Ok(session) => {
                session.started(now);
                let session = Arc::new(session);
                shards.cache.put(Arc::clone(&session));
                session
            }
            Err(err) => {
                tracing::error!(shard, error = %err, "could not restore the shard's state: the batch will be retried");
                response.add_failure(first_seq.to_string());
                return (response, summary);
            }
        },
    };
    let refs: Vec<RecordRef<'_>> = records
        .iter()
        .map(|r| RecordRef {
            seq: r.kinesis.sequence_number.as_str(),
            data: &r.kinesis.data.0,
        })
        .collect();
    let first_failure = apply_records(
        deps,
        shards,
        &session,
        &refs,
        Some(records),
        now,
        &mut summary,
    )
    .await;
    due_patients(deps, shards, &session, now, &mut summary).await;
    session.add_village(&std::mem::take(&mut summary.village_readings));
    if first_failure.is_none() {
        // The sweep comes within twice the interval unless a snapshot moves the promise.
        let promise = now.timestamp_millis() + 2 * shards.flush_interval.num_milliseconds();
        let due = session.earliest_due().map_or(promise, |d| d.min(promise));
        match session.write_wanted(now, shards.flush_interval) {
            Wanted::Snapshot => {
                let last = records.last().map(|r| r.kinesis.sequence_number.as_str());
                flush(deps, shards, &session, last, Some(due), now, &mut summary).await;
            }
            Wanted::Promise => match session.promise(shards.store, due).await {
                Ok(()) => summary.state_writes += 1,
                Err(err) => tracing::warn!(shard, error = %err, "shard header not written"),
            },
            Wanted::Nothing => {}
        }
    }
    if session.is_stale() {
        shards.cache.forget(&shard);
    }
    if let Some(index) = first_failure {
        response.add_failure(records[index].kinesis.sequence_number.clone());
    }
    crate::log_batch(&summary, &response);
    (response, summary)
}

/// Writes the snapshot, then adds the readings it no longer buffers to the village
/// statistics. A failure is not the batch's: its records are in memory, and whoever
/// restores the shard replays them from the watermark.
async fn flush(
    deps: &Deps<'_>,
    shards: &Shards<'_>,
    session: &ShardSession,
    watermark: Option<&str>,
    due: Option<i64>,
    now: DateTime<Utc>,
    summary: &mut BatchSummary,
) -> bool {
    match session
        .flush(shards.store, deps.vitals, deps.rules, watermark, due, now)
        .await
    {
        Ok(flushed) => {
            summary.state_writes += flushed.buckets + usize::from(flushed.meta);
            let mut counted = BatchSummary::default();
            for (patient_id, blocks) in &flushed.blocks {
                summary.vitals_writes += blocks.len();
                vitals::count(deps, patient_id, blocks, &mut counted).await;
            }
            session.add_village(&counted.village_readings);
            let counts = BatchSummary {
                village_readings: session.take_village(),
                ..BatchSummary::default()
            };
            vitals::add_village_readings(deps, &counts).await;
            true
        }
        Err(err) => {
            tracing::warn!(shard = %session.shard, error = %err, "shard snapshot not written (kept in memory; a restore replays the stream)");
            false
        }
    }
}

/// Loads the shard's snapshot and replays the stream from its watermark up to `until`
/// (the batch's first record; the shard's end when `None`).
pub async fn restore(
    deps: &Deps<'_>,
    shards: &Shards<'_>,
    shard: &str,
    stream_arn: &str,
    until: Option<&str>,
    now: DateTime<Utc>,
    summary: &mut BatchSummary,
) -> Result<ShardSession, PortError> {
    let session = load(shards, shard, stream_arn).await?;
    catch_up(deps, shards, &session, until, now, summary).await?;
    Ok(session)
}

/// Applies the records of the stream the snapshot does not hold yet.
pub async fn catch_up(
    deps: &Deps<'_>,
    shards: &Shards<'_>,
    session: &ShardSession,
    until: Option<&str>,
    now: DateTime<Utc>,
    summary: &mut BatchSummary,
) -> Result<Option<String>, PortError> {
    let meta = session.meta();
    let replayed: Vec<ReplayRecord> = shards
        .replay
        .records(
            &meta.stream_arn,
            &session.shard,
            meta.watermark.as_deref(),
            until,
        )
        .await?;
    tracing::info!(shard = %session.shard, watermark = ?meta.watermark, records = replayed.len(), patients = session.patients(), "shard state restored");
    let refs: Vec<RecordRef<'_>> = replayed
        .iter()
        .map(|r| RecordRef {
            seq: &r.sequence_number,
            data: &r.data,
        })
        .collect();
    let mut own = BatchSummary::default();
    if let Some(index) = apply_records(deps, shards, session, &refs, None, now, &mut own).await {
        return Err(PortError::Backend(format!(
            "replaying shard {}: record {} not processed",
            session.shard, refs[index].seq
        )));
    }
    summary.add(&own);
    session.add_village(&std::mem::take(&mut summary.village_readings));
    Ok(replayed.last().map(|r| r.sequence_number.clone()))
}

/// Applies records to the session, each patient's in order and only those newer than
/// what its state already holds. Undecodable records of a live batch go to the
/// dead-letter queue (`live`); a replay skips them (they were sent when first seen).
/// Returns the index of the first record not fully processed.
async fn apply_records(
    deps: &Deps<'_>,
    shards: &Shards<'_>,
    session: &ShardSession,
    records: &[RecordRef<'_>],
    live: Option<&[KinesisEventRecord]>,
    now: DateTime<Utc>,
    summary: &mut BatchSummary,
) -> Option<usize> {
    let mut first_failure: Option<usize> = None;
    let mut decoded = Vec::with_capacity(records.len());
    for (index, record) in records.iter().enumerate() {
        match decode_record(record.data) {
            Ok(envelope) => decoded.push(Decoded { index, envelope }),
            Err(err) => {
                summary.poison += 1;
                let Some(live) = live else { continue };
                tracing::error!(
                    sequence_number = %record.seq,
                    partition_key = %live[index].kinesis.partition_key,
                    error = %err,
                    "undecodable record: sending it to the dead-letter queue"
                );
                if !crate::send_poison(deps, &live[index], &err.to_string()).await {
                    first_failure = Some(index);
                    break;
                }
            }
        }
    }
    // End-to-end lag of a delivered batch, as the per-patient path measures it: its oldest
    // reading's event time to now (a replay is not a delivery).
    if live.is_some()
        && let Some(oldest) = decoded.iter().map(|d| d.envelope.data.timestamp).min()
    {
        lambda_kit::metrics::milliseconds(
            lambda_kit::metrics::END_TO_END_LAG_MS,
            (now - oldest).num_milliseconds() as f64,
        );
    }
    let by_patient = group_by_patient(&decoded);
    summary.patients += by_patient.len();
    let store = SessionStore {
        session,
        store: shards.store,
    };
    let deps = Deps {
        state: &store,
        ..*deps
    };
    let deps = &deps;
    let results: Vec<(usize, BatchSummary, Result<(), PortError>)> =
        futures::stream::iter(by_patient.iter().filter_map(|readings| {
            let applied = session.applied(readings.patient_id);
            let inputs: Vec<&Decoded<'_>> = readings
                .inputs
                .iter()
                .copied()
                .filter(|d| is_new(records[d.index].seq, applied.as_deref()))
                .collect();
            let last = inputs.last()?;
            session.set_seq(readings.patient_id, records[last.index].seq);
            Some(async move {
                let mut own = BatchSummary::default();
                let result =
                    process_patient(deps, readings.patient_id, &inputs, now, &mut own).await;
                (readings.first_index, own, result)
            })
        }))
        .buffer_unordered(PATIENT_CONCURRENCY)
        .collect()
        .await;
    for (index, own, result) in results {
        summary.add(&own);
        if let Err(err) = result {
            summary.failed_patients += 1;
            tracing::error!(error = %err, "patient's readings not processed; will be retried");
            first_failure = Some(first_failure.map_or(index, |f| f.min(index)));
        }
    }
    first_failure
}

/// Evaluates the session's patients that are due, with no readings (what the sweep does
/// for a shard that receives nothing).
async fn due_patients(
    deps: &Deps<'_>,
    shards: &Shards<'_>,
    session: &ShardSession,
    now: DateTime<Utc>,
    summary: &mut BatchSummary,
) -> usize {
    let due = session.due_patients(now.timestamp_millis());
    let store = SessionStore {
        session,
        store: shards.store,
    };
    let deps = Deps {
        state: &store,
        ..*deps
    };
    let deps = &deps;
    let none: &[Input<'_>] = &[];
    let results: Vec<(BatchSummary, Result<(), PortError>)> =
        futures::stream::iter(due.iter().map(|patient_id| async move {
            let mut own = BatchSummary::default();
            let result = process_patient(deps, patient_id, none, now, &mut own).await;
            (own, result)
        }))
        .buffer_unordered(PATIENT_CONCURRENCY)
        .collect()
        .await;
    let mut failed = 0;
    for (own, result) in results {
        summary.add(&own);
        if let Err(err) = result {
            failed += 1;
            tracing::warn!(error = %err, "due patient not processed; stays due");
        }
    }
    failed
}

/// The scheduled sweep over shards: each shard whose snapshot header is due (the
/// `due-at` index, never a scan) is restored up to the stream's end, its due patients
/// evaluated, and its snapshot written. A shard that fails stays due.
pub async fn sweep_shards(
    deps: &Deps<'_>,
    shards: &Shards<'_>,
    now: DateTime<Utc>,
) -> Result<SweepSummary, PortError> {
    let mut summary = SweepSummary::default();
    let now_ms = now.timestamp_millis();
    for sweep_shard in 0..domain::detection::DUE_SHARDS {
        for shard in shards
            .store
            .due_shards(sweep_shard, now_ms, SWEEP_PAGE)
            .await?
        {
            summary.due += 1;
            let mut own = BatchSummary::default();
            let ok = sweep_one(deps, shards, &shard, now, &mut own).await;
            if !ok {
                summary.failed += 1;
            }
            summary.batch.add(&own);
            summary.batch.records += own.records;
            summary.batch.patients += own.patients;
        }
    }
    tracing::info!(
        due = summary.due,
        failed = summary.failed,
        evaluated = summary.batch.evaluated,
        alerts_raised = summary.batch.alerts_raised,
        alerts_resolved = summary.batch.alerts_resolved,
        state_writes = summary.batch.state_writes,
        "sweep summary"
    );
    Ok(summary)
}

async fn sweep_one(
    deps: &Deps<'_>,
    shards: &Shards<'_>,
    shard: &str,
    now: DateTime<Utc>,
    summary: &mut BatchSummary,
) -> bool {
    // A session this process holds is about to be out of date.
    shards.cache.forget(shard);
    let session = match load(shards, shard, "").await {
        Ok(session) => session,
        Err(err) => {
            tracing::error!(shard, error = %err, "sweep: shard state not loaded; stays due");
            return false;
        }
    };
    let last = match catch_up(deps, shards, &session, None, now, summary).await {
        Ok(last) => last,
        Err(err) => {
            tracing::error!(shard, error = %err, "sweep: shard not replayed; stays due");
            return false;
        }
    };
    let failed = due_patients(deps, shards, &session, now, summary).await;
    session.add_village(&std::mem::take(&mut summary.village_readings));
    // Everything is in the snapshot after this write: the header promises nothing more
    // than the patients' own due times.
    let ok = flush(
        deps,
        shards,
        &session,
        last.as_deref(),
        session.earliest_due(),
        now,
        summary,
    )
    .await;
    ok && failed == 0
}
