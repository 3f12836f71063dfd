//! A direct reader for the one layout `ingest` writes a `ReadingRecorded` envelope in.
//!
//! `ingest` writes every record with `serde_json::to_vec(&Envelope<Reading>)`: no
//! whitespace, the fields in declaration order. serde_json's general deserialiser spends
//! about 7,000 instructions on such a 340-byte record, over half of what decoding and
//! evaluating a reading costs. [`parse`] reads exactly that layout, with strings that need
//! no unescaping, and returns `None` for anything else (other field order, whitespace,
//! escapes, unusual numbers, a bad timestamp, an unknown type...), which serde_json then
//! decodes or rejects as it always did. What `parse` returns is what serde_json would
//! have: tests compare the two on valid records and on every one-byte change of them.

use std::borrow::Cow;

use domain::envelope::BorrowedEnvelope;
use domain::reading::VitalType;

use crate::ReadingView;
use domain::timestamp::parse_utc;

/// The envelope of `text`, if it is in the compact layout; `None` otherwise (not an error:
/// the caller decodes it the general way).
pub fn parse(text: &str) -> Option<BorrowedEnvelope<'_, ReadingView<'_>>> {
    let mut c = Cursor { text, pos: 0 };
    c.literal("{\"eventId\":")?;
    let event_id = c.string()?;
    c.literal(",\"eventType\":")?;
    let event_type = c.string()?;
    c.literal(",\"version\":")?;
    let version = c.small_unsigned()?;
    c.literal(",\"timestamp\":")?;
    let timestamp = parse_utc(c.string()?).ok()?;
    c.literal(",\"source\":")?;
    let source = c.string()?;
    c.literal(",\"correlationId\":")?;
    let correlation_id = c.string()?;
    c.literal(",\"causationId\":")?;
    let causation_id = c.string()?;
    c.literal(",\"data\":{\"patientId\":")?;
    let patient_id = c.string()?;
    c.literal(",\"type\":")?;
    let vital = VitalType::parse(c.string()?)?;
    c.literal(",\"value\":")?;
    let value = c.number()?;
    c.literal(",\"unit\":")?;
    let unit = c.string()?;
    c.literal(",\"timestamp\":")?;
    let reading_time = parse_utc(c.string()?).ok()?;
    c.literal(",\"deviceId\":")?;
    let device_id = c.string()?;
    c.literal("}}")?;
    if c.pos != text.len() {
        return None;
    }
    Some(BorrowedEnvelope {
        event_id: Cow::Borrowed(event_id),
        event_type: Cow::Borrowed(event_type),
        version,
        timestamp,
        source: Cow::Borrowed(source),
        correlation_id: Cow::Borrowed(correlation_id),
        causation_id: Cow::Borrowed(causation_id),
        data: ReadingView {
            patient_id: Cow::Borrowed(patient_id),
            vital,
            value,
            unit: Cow::Borrowed(unit),
            timestamp: reading_time,
            device_id: Cow::Borrowed(device_id),
        },
    })
}

struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a [u8] {
        self.text.as_bytes().get(self.pos..).unwrap_or_default()
    }

    /// Exactly `expected`.
    fn literal(&mut self, expected: &str) -> Option<()> {
        self.rest().starts_with(expected.as_bytes()).then(|| {
            self.pos += expected.len();
        })
    }

    /// A JSON string without escapes or control characters: its contents.
    fn string(&mut self) -> Option<&'a str> {
        let rest = self.rest();
        if rest.first() != Some(&b'"') {
            return None;
        }
        let len = string_end(&rest[1..])?;
        if rest[1 + len] != b'"' {
            // An escape or a control character: serde_json's to handle.
            return None;
        }
        // Both ends are next to an ASCII quote, so they are character boundaries.
        let contents = self.text.get(self.pos + 1..self.pos + 1 + len)?;
        self.pos += len + 2;
        Some(contents)
    }

    /// An unsigned integer of 1 to 9 digits without a leading zero (or `0`).
    fn small_unsigned(&mut self) -> Option<u32> {
        let digits = self
            .rest()
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let text = self.text.get(self.pos..self.pos + digits)?;
        if digits == 0 || digits > 9 || (digits > 1 && text.starts_with('0')) {
            return None;
        }
        self.pos += digits;
        text.parse().ok()
    }

    /// A JSON number (`-? int frac? exp?`), converted by serde_json itself so the value is
    /// exactly the one the general path would give.
    fn number(&mut self) -> Option<f64> {
        let rest = self.rest();
        let mut i = usize::from(rest.first() == Some(&b'-'));
        let int_digits = count_digits(&rest[i..]);
        if int_digits == 0 || (int_digits > 1 && rest[i] == b'0') {
            return None;
        }
        i += int_digits;
        if rest.get(i) == Some(&b'.') {
            let fraction = count_digits(&rest[i + 1..]);
            if fraction == 0 {
                return None;
            }
            i += 1 + fraction;
        }
        if matches!(rest.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(rest.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            let exponent = count_digits(&rest[i..]);
            if exponent == 0 {
                return None;
            }
            i += exponent;
        }
        let number = self.text.get(self.pos..self.pos + i)?;
        let value = serde_json::from_str::<f64>(number).ok()?;
        self.pos += i;
        Some(value)
    }
}

/// Index of the first `"`, `\\` or control character in `bytes` (where a JSON string
/// without escapes ends), looking at eight bytes at a time as serde_json's reader does.
fn string_end(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::MAX / 255;
    const HIGH: u64 = ONES << 7;
    let mut start = 0;
    while let Some(chunk) = bytes.get(start..start + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let quote = x ^ (ONES * u64::from(b'"'));
        let backslash = x ^ (ONES * u64::from(b'\\'));
        // The high bit of a byte is set where it is below 0x20, a quote or a backslash
        // (borrows can only mark bytes above a true match, so the lowest mark is exact).
        let found = ((x.wrapping_sub(ONES * 0x20) & !x)
            | (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash))
            & HIGH;
        if found != 0 {
            return Some(start + found.trailing_zeros() as usize / 8);
        }
        start += 8;
    }
    let tail = bytes.get(start..)?;
    let i = tail
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
    Some(start + i)
}

fn count_digits(bytes: &[u8]) -> usize {
    bytes.iter().take_while(|b| b.is_ascii_digit()).count()
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Duration, Utc};
    use domain::envelope::{Envelope, Lineage, decode_borrowed};
    use domain::reading::Reading;

    use super::*;

    fn envelope(vital: VitalType, value: f64, id: &str, nanos: i64) -> Envelope<Reading> {
        let t0 = DateTime::parse_from_rfc3339("2026-11-24T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let reading = Reading {
            patient_id: format!("p-{id}"),
            vital,
            value,
            unit: vital.unit().to_string(),
            timestamp: t0 + Duration::nanoseconds(nanos),
            device_id: format!("dev-{id}"),
        };
        let lineage = Lineage {
            correlation_id: format!("c-{id}"),
            causation_id: format!("r-{id}"),
        };
        Envelope::new(
            reading.event_id(),
            "ingest",
            lineage,
            t0 + Duration::nanoseconds(nanos * 3),
            reading,
        )
    }

    /// [`crate::decode_record`] (this reader, then serde_json) agrees with serde_json
    /// alone: the same envelope or the same error. Tells whether this reader read it.
    fn agrees(text: &str) -> bool {
        let bytes = text.as_bytes();
        let general = decode_borrowed::<Reading>(bytes)
            .map(|e| e.into_owned())
            .map_err(|e| e.to_string());
        let ours = crate::decode_record(bytes)
            .map(|e| e.map_data(ReadingView::into_owned).into_owned())
            .map_err(|e| e.to_string());
        assert_eq!(ours, general, "{text}");
        if let (Ok(ours), Ok(general)) = (&ours, &general) {
            // f64 by bits: -0.0 and 0.0 must not pass for each other.
            assert_eq!(ours.data.value.to_bits(), general.data.value.to_bits());
        }
        match parse(text) {
            Some(fast) => {
                // Read only what serde_json reads, to the same envelope (before the
                // type and version check).
                let unchecked: Envelope<Reading> = serde_json::from_str(text)
                    .unwrap_or_else(|e| panic!("{text}: serde_json: {e}"));
                let fast = fast.map_data(ReadingView::into_owned).into_owned();
                assert_eq!(fast, unchecked, "{text}");
                true
            }
            None => false,
        }
    }

    fn samples() -> Vec<String> {
        let values = [
            72.0,
            152.7,
            36.65,
            -0.0,
            0.0,
            0.1,
            1e-7,
            1.5e300,
            123456789.123,
            98.6,
            1e22,
            5e-324,
        ];
        let ids = ["0001", "é-ü", "a\"b", "tab\there", "x\\y", "😀"];
        let mut out = Vec::new();
        for (i, vital) in VitalType::ALL.into_iter().enumerate() {
            for (j, value) in values.iter().enumerate() {
                let id = ids[(i + j) % ids.len()];
                let nanos = [0, 1_000_000, 123_456_000, 7][j % 4];
                out.push(serde_json::to_string(&envelope(vital, *value, id, nanos)).unwrap());
            }
        }
        out
    }

    #[test]
    fn string_end_finds_the_first_quote_backslash_or_control_character() {
        let naive = |b: &[u8]| b.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
        for len in 0..40 {
            for at in 0..=len {
                for special in [b'"', b'\\', 0x00, 0x1f, b' ', 0x7f, 0x80, 0xff, b'!', b'#'] {
                    // Bytes around the special one that are close to, but not, special.
                    let mut bytes: Vec<u8> = (0..len)
                        .map(|i| [b' ', b'!', b'#', b'[', b']', 0x7f, 0x80, 0xff][i % 8])
                        .collect();
                    if at < len {
                        bytes[at] = special;
                        // A second special byte after it must not matter.
                        if at + 3 < len {
                            bytes[at + 3] = b'"';
                        }
                    }
                    assert_eq!(string_end(&bytes), naive(&bytes), "{bytes:?}");
                }
            }
        }
    }

    #[test]
    fn reads_what_ingest_writes_as_serde_json_does() {
        for text in samples() {
            let escaped = text.contains('\\');
            assert_eq!(agrees(&text), !escaped, "{text}");
        }
    }

    #[test]
    fn leaves_other_layouts_to_serde_json() {
        let text = samples().remove(0);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        for other in [
            serde_json::to_string_pretty(&value).unwrap(),
            format!("{text} "),
            format!(" {text}"),
            text.replace("\"version\":1", "\"version\":1.0"),
            text.replace("\"version\":1", "\"version\":01"),
            text.replace("\"version\":1", "\"version\":4294967296"),
            text.replace("\"value\":72.0", "\"value\":72"),
            text.replace("\"value\":72.0", "\"value\":-72.5e-1"),
            text.replace("\"value\":72.0", "\"value\":1E400"),
            text.replace(
                "\"eventType\":\"ReadingRecorded\"",
                "\"eventType\":\"AlertRaised\"",
            ),
        ] {
            agrees(&other);
        }
        // Numbers serde_json writes differently, read back by both.
        assert!(agrees(
            &text.replace("\"value\":72.0", "\"value\":-72.5e-1")
        ));
        assert!(agrees(&text.replace("\"value\":72.0", "\"value\":72")));
    }

    #[test]
    fn every_one_byte_change_is_read_as_serde_json_reads_it() {
        let texts = samples();
        let replacements = [
            b'"', b'\\', b' ', b'0', b'1', b'9', b'-', b'+', b'.', b'e', b'E', b'}', b'{', b',',
            b':', b'a', b'Z', 0x01, 0x7f,
        ];
        let mut read = 0;
        for text in texts.iter().take(8) {
            let bytes = text.as_bytes();
            for i in 0..bytes.len() {
                let mut deleted = bytes.to_vec();
                deleted.remove(i);
                let variants = replacements
                    .iter()
                    .map(|&b| {
                        let mut changed = bytes.to_vec();
                        changed[i] = b;
                        changed
                    })
                    .chain([deleted]);
                for variant in variants {
                    if let Ok(variant) = String::from_utf8(variant) {
                        read += usize::from(agrees(&variant));
                    }
                }
            }
        }
        assert!(read > 100, "the fast path read {read} variants");
    }
}
