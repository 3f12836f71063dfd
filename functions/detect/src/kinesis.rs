//! The Kinesis event Lambda invokes `detect` with, deserialised with a SIMD base64 decoder.
//!
//! [`KinesisEvent`] from `aws_lambda_events` decodes each record's `data` with the scalar
//! `base64` engine, about 3,300 instructions for a 450-character record: a fifth of what
//! decoding and evaluating a reading costs. [`Event`] mirrors its fields, attributes and
//! types one for one, except that `data` goes through [`decode_data`] (`base64-simd`,
//! SSSE3/AVX2 or NEON picked at run time). It converts into the very same
//! [`KinesisEvent`], which the handler takes; tests compare the two on whole events.

use aws_lambda_events::encodings::{Base64Data, SecondTimestamp};
use aws_lambda_events::event::kinesis::{
    KinesisEncryptionType, KinesisEvent, KinesisEventRecord, KinesisRecord,
};
use serde::{Deserialize, Deserializer};

/// Decodes a record's base64 `data`: the same bytes, and the same accepted input, as
/// `aws_lambda_events` (the `base64` crate's `STANDARD` engine: padded, canonical).
pub fn decode_data(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    match base64_simd::STANDARD.decode_to_vec(text) {
        Ok(bytes) => Ok(bytes),
        // Rejected: let the engine `aws_lambda_events` uses decide, and explain.
        Err(_) => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.decode(text)
        }
    }
}

fn deserialize_data<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    // As `aws_lambda_events`: an owned string, then decoded.
    let text = String::deserialize(deserializer)?;
    decode_data(&text).map_err(serde::de::Error::custom)
}

/// [`KinesisEvent`], field for field.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    #[serde(rename = "Records")]
    pub records: Vec<EventRecord>,
}

/// [`KinesisEventRecord`], field for field.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventRecord {
    #[serde(default)]
    pub aws_region: Option<String>,
    #[serde(default)]
    #[serde(rename = "eventID")]
    pub event_id: Option<String>,
    #[serde(default)]
    pub event_name: Option<String>,
    #[serde(default)]
    pub event_source: Option<String>,
    #[serde(default)]
    #[serde(rename = "eventSourceARN")]
    pub event_source_arn: Option<String>,
    #[serde(default)]
    pub event_version: Option<String>,
    #[serde(default)]
    pub invoke_identity_arn: Option<String>,
    pub kinesis: Record,
}

/// [`KinesisRecord`], field for field; `data` decoded by [`decode_data`].
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub approximate_arrival_timestamp: SecondTimestamp,
    #[serde(deserialize_with = "deserialize_data")]
    pub data: Vec<u8>,
    #[serde(default)]
    pub encryption_type: KinesisEncryptionType,
    #[serde(default)]
    pub partition_key: String,
    #[serde(default)]
    pub sequence_number: String,
    #[serde(default)]
    pub kinesis_schema_version: Option<String>,
}

impl From<Event> for KinesisEvent {
    fn from(event: Event) -> Self {
        // The aws_lambda_events types are `non_exhaustive`: built from their defaults.
        let mut out = KinesisEvent::default();
        out.records = event.records.into_iter().map(Into::into).collect();
        out
    }
}

impl From<EventRecord> for KinesisEventRecord {
    fn from(r: EventRecord) -> Self {
        let mut out = KinesisEventRecord::default();
        out.aws_region = r.aws_region;
        out.event_id = r.event_id;
        out.event_name = r.event_name;
        out.event_source = r.event_source;
        out.event_source_arn = r.event_source_arn;
        out.event_version = r.event_version;
        out.invoke_identity_arn = r.invoke_identity_arn;
        out.kinesis = r.kinesis.into();
        out
    }
}

impl From<Record> for KinesisRecord {
    fn from(r: Record) -> Self {
        let mut out = KinesisRecord::default();
        out.approximate_arrival_timestamp = r.approximate_arrival_timestamp;
        out.data = Base64Data::default();
        *out.data = r.data;
        out.encryption_type = r.encryption_type;
        out.partition_key = r.partition_key;
        out.sequence_number = r.sequence_number;
        out.kinesis_schema_version = r.kinesis_schema_version;
        out
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use serde_json::json;

    use super::*;

    fn reference(text: &str) -> Result<Vec<u8>, String> {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn decodes_as_the_base64_crate_does() {
        let mut cases: Vec<String> = (0..200usize)
            .map(|n| {
                let bytes: Vec<u8> = (0..n).map(|i| (i * 37 + n) as u8).collect();
                base64::engine::general_purpose::STANDARD.encode(bytes)
            })
            .collect();
        cases.extend(
            [
                "",
                "=",
                "==",
                "A",
                "AA",
                "AA=",
                "AA==",
                "AB==",
                "AAA=",
                "AAB=",
                "AAAA",
                "A===",
                "AA=A",
                "AAAA====",
                "AA==AA==",
                " AAAA",
                "AAAA ",
                "AA\nAA",
                "AAA-",
                "AAA_",
                "YWJj\u{e9}",
                "YWJjZA",
                "YWJjZA=",
            ]
            .map(String::from),
        );
        // Every one-character change of a valid encoding.
        let valid = base64::engine::general_purpose::STANDARD.encode(b"{\"eventId\":\"e\"}");
        for i in 0..valid.len() {
            for c in (0u8..128).map(char::from) {
                let mut changed: Vec<char> = valid.chars().collect();
                changed[i] = c;
                cases.push(changed.into_iter().collect());
            }
        }
        for text in &cases {
            let ours = decode_data(text).map_err(|e| e.to_string());
            assert_eq!(ours, reference(text), "{text:?}");
        }
    }

    #[test]
    fn deserialises_to_the_same_kinesis_event() {
        let data = base64::engine::general_purpose::STANDARD.encode(b"{\"hello\": \"world\"}");
        let full = json!({
            "awsRegion": "eu-west-1",
            "eventID": "shardId-000000000000:1",
            "eventName": "aws:kinesis:record",
            "eventSource": "aws:kinesis",
            "eventSourceARN": "arn:aws:kinesis:eu-west-1:123456789012:stream/readings",
            "eventVersion": "1.0",
            "invokeIdentityArn": "arn:aws:iam::123456789012:role/detect",
            "kinesis": {
                "approximateArrivalTimestamp": 1_764_000_000.428,
                "data": data,
                "encryptionType": "KMS",
                "partitionKey": "p-1",
                "sequenceNumber": "49590338271490256608559692538361571095921575989136588898",
                "kinesisSchemaVersion": "1.0"
            }
        });
        let minimal = json!({
            "eventID": null,
            "kinesis": {"approximateArrivalTimestamp": 1_764_000_000, "data": ""},
            "unknown": 1
        });
        let accepted = [
            json!({"Records": [full.clone(), minimal.clone()]}),
            json!({"Records": []}),
        ];
        for event in &accepted {
            let text = event.to_string();
            let ours: Event = serde_json::from_str(&text).unwrap();
            let theirs: KinesisEvent = serde_json::from_str(&text).unwrap();
            assert_eq!(KinesisEvent::from(ours), theirs);
        }

        let mut bad_data = full.clone();
        bad_data["kinesis"]["data"] = json!("not base64!");
        let mut no_data = full.clone();
        no_data["kinesis"].as_object_mut().unwrap().remove("data");
        let mut bad_encryption = full;
        bad_encryption["kinesis"]["encryptionType"] = json!("AES");
        for event in [
            json!({"Records": [bad_data]}),
            json!({"Records": [no_data]}),
            json!({"Records": [bad_encryption]}),
            json!({"Records": [minimal], "extra": true}),
            json!({}),
        ] {
            let text = event.to_string();
            let ours = serde_json::from_str::<Event>(&text).map(KinesisEvent::from);
            let theirs = serde_json::from_str::<KinesisEvent>(&text);
            match (ours, theirs) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{text}"),
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{text}"),
                (a, b) => panic!("{text}: ours {a:?}, aws_lambda_events {b:?}"),
            }
        }
    }
}
