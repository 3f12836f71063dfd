//! Decoding a Kinesis batch: each record's reading envelope (borrowing from the record's
//! data), and the batch grouped by patient as the engine takes it.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use domain::detection::ReadingInput;
use domain::envelope::{BorrowedEnvelope, DecodeError, check_header, decode_borrowed};
use domain::reading::{Reading, VitalType};

use crate::compact;

/// A [`Reading`] whose strings borrow from the record's data (copied only when the JSON
/// escapes a character): what `detect` decodes, saving three allocations per reading.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadingView<'a> {
    pub patient_id: Cow<'a, str>,
    pub vital: VitalType,
    pub value: f64,
    pub unit: Cow<'a, str>,
    pub timestamp: DateTime<Utc>,
    pub device_id: Cow<'a, str>,
}

impl From<Reading> for ReadingView<'static> {
    fn from(r: Reading) -> Self {
        ReadingView {
            patient_id: Cow::Owned(r.patient_id),
            vital: r.vital,
            value: r.value,
            unit: Cow::Owned(r.unit),
            timestamp: r.timestamp,
            device_id: Cow::Owned(r.device_id),
        }
    }
}

impl ReadingView<'_> {
    /// The owned reading: the same fields, copied.
    pub fn into_owned(self) -> Reading {
        Reading {
            patient_id: self.patient_id.into_owned(),
            vital: self.vital,
            value: self.value,
            unit: self.unit.into_owned(),
            timestamp: self.timestamp,
            device_id: self.device_id.into_owned(),
        }
    }
}

/// One decoded record and where it sits in the batch. Its strings borrow from the
/// record's data.
#[derive(Debug)]
pub struct Decoded<'a> {
    pub index: usize,
    pub envelope: BorrowedEnvelope<'a, ReadingView<'a>>,
}

impl ReadingInput for &Decoded<'_> {
    fn event_id(&self) -> &str {
        &self.envelope.event_id
    }
    fn correlation_id(&self) -> &str {
        &self.envelope.correlation_id
    }
    fn vital(&self) -> VitalType {
        self.envelope.data.vital
    }
    fn value(&self) -> f64 {
        self.envelope.data.value
    }
    fn timestamp(&self) -> DateTime<Utc> {
        self.envelope.data.timestamp
    }
    fn device_id(&self) -> &str {
        &self.envelope.data.device_id
    }
    fn received_at(&self) -> DateTime<Utc> {
        // The envelope's time is ingest's clock when it accepted the reading.
        self.envelope.timestamp
    }
}

/// Decodes one record's data: the JSON envelope of a `ReadingRecorded` event, checked for
/// type and version ([`domain::envelope::decode`]'s rules, values and errors). The layout
/// `ingest` writes is read directly ([`compact`]); anything else goes through serde_json.
pub fn decode_record(data: &[u8]) -> Result<BorrowedEnvelope<'_, ReadingView<'_>>, DecodeError> {
    if let Ok(text) = std::str::from_utf8(data)
        && let Some(envelope) = compact::parse(text)
    {
        check_header::<Reading>(&envelope.event_type, envelope.version)?;
        return Ok(envelope);
    }
    decode_borrowed::<Reading>(data).map(|envelope| envelope.map_data(ReadingView::from))
}

/// One patient's readings of a batch, in batch order, as the engine takes them.
#[derive(Debug)]
pub struct PatientReadings<'a> {
    pub patient_id: &'a str,
    /// Batch index of the patient's first record (where a retry must start).
    pub first_index: usize,
    pub inputs: Vec<&'a Decoded<'a>>,
}

/// Groups decoded records by patient: patients in id order, each one's readings in batch
/// order.
pub fn group_by_patient<'a>(decoded: &'a [Decoded<'a>]) -> Vec<PatientReadings<'a>> {
    let patient = |d: &&'a Decoded<'a>| -> &'a str { &d.envelope.data.patient_id };
    let mut sorted: Vec<&Decoded<'a>> = decoded.iter().collect();
    // A stable sort: each patient's readings stay in batch order.
    sorted.sort_by(|a, b| patient(a).cmp(patient(b)));
    sorted
        .chunk_by(|a, b| patient(a) == patient(b))
        .filter_map(|group| {
            let first = group.first()?;
            Some(PatientReadings {
                patient_id: patient(first),
                first_index: first.index,
                inputs: group.to_vec(),
            })
        })
        .collect()
}
