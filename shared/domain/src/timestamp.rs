//! RFC 3339 timestamps as events carry them, parsed fast in the common case.
//!
//! Events are written by chrono (`DateTime<Utc>` serialises as `2026-11-24T08:00:00Z`, with
//! 3, 6 or 9 fraction digits when the time has any). Parsing those with chrono's general
//! parser costs about 1,700 instructions per timestamp; [`parse_utc`] reads exactly that
//! shape directly and hands everything else to chrono, so what is accepted, the value and
//! the error are always chrono's.

use std::fmt;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, ParseError, Utc};
use serde::{Deserializer, de};

/// Parses a timestamp exactly as chrono's serde does for `DateTime<Utc>`
/// (`DateTime<FixedOffset>::from_str`, then converted to UTC).
pub fn parse_utc(text: &str) -> Result<DateTime<Utc>, ParseError> {
    match parse_utc_fast(text.as_bytes()) {
        Some(time) => Ok(time),
        None => text
            .parse::<DateTime<FixedOffset>>()
            .map(|t| t.with_timezone(&Utc)),
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.F{1,9}]Z` with an existing date and a time without leap second;
/// `None` for anything else (which chrono then parses or rejects).
fn parse_utc_fast(b: &[u8]) -> Option<DateTime<Utc>> {
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[b.len() - 1] != b'Z'
    {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let second = digits(&b[17..19])?;
    let nano = match &b[19..b.len() - 1] {
        [] => 0,
        [b'.', fraction @ ..] if (1..=9).contains(&fraction.len()) => {
            const SCALE: [u32; 10] = [
                0,
                100_000_000,
                10_000_000,
                1_000_000,
                100_000,
                10_000,
                1_000,
                100,
                10,
                1,
            ];
            digits(fraction)? * SCALE[fraction.len()]
        }
        _ => return None,
    };
    let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
    let time = NaiveTime::from_hms_nano_opt(hour, minute, second, nano)?;
    Some(date.and_time(time).and_utc())
}

/// The value of a run of ASCII digits (at most 9), or `None` if any byte is not a digit.
fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |n, &c| {
        c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
    })
}

/// `#[serde(deserialize_with = "crate::timestamp::deserialize")]` for a `DateTime<Utc>`:
/// the same input, value and error messages as chrono's own `Deserialize`, faster.
pub fn deserialize<'de, D>(deserializer: D) -> Result<DateTime<Utc>, D::Error>
where
    D: Deserializer<'de>,
{
    struct Visitor;

    impl de::Visitor<'_> for Visitor {
        type Value = DateTime<Utc>;

        fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
            // chrono's wording, so errors read as before.
            formatter.write_str("an RFC 3339 formatted date and time string")
        }

        fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
            parse_utc(value).map_err(E::custom)
        }
    }

    deserializer.deserialize_str(Visitor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chrono_parse(text: &str) -> Result<DateTime<Utc>, ParseError> {
        text.parse::<DateTime<FixedOffset>>()
            .map(|t| t.with_timezone(&Utc))
    }

    /// Same result as chrono, and tells whether the fast path took it.
    fn same_as_chrono(text: &str) -> bool {
        assert_eq!(parse_utc(text), chrono_parse(text), "{text:?}");
        parse_utc_fast(text.as_bytes()).is_some()
    }

    #[test]
    fn the_shapes_chrono_writes_take_the_fast_path() {
        for text in [
            "2026-11-24T08:00:00Z",
            "2026-11-24T08:00:00.1Z",
            "2026-11-24T08:00:00.123Z",
            "2026-11-24T08:00:00.123456Z",
            "2026-11-24T08:00:00.123456789Z",
            "2026-11-24T08:00:00.000000001Z",
            "2024-02-29T23:59:59.999Z",
            "2000-02-29T00:00:00Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999999Z",
            "1969-12-31T23:59:59.5Z",
        ] {
            assert!(same_as_chrono(text), "{text} should take the fast path");
        }
        // What chrono writes, read back.
        let t = chrono_parse("2026-11-24T08:00:00.123456Z").unwrap();
        let whole = chrono::Timelike::with_nanosecond(&t, 0).unwrap();
        for time in [t, t + chrono::Duration::nanoseconds(7), whole] {
            let written = serde_json::to_string(&time).unwrap();
            assert!(same_as_chrono(written.trim_matches('"')), "{written}");
        }
    }

    #[test]
    fn offsets_and_relaxed_forms_go_to_chrono() {
        for text in [
            "2026-11-24T10:00:00+02:00",
            "2026-11-24T08:00:00-00:00",
            "2026-11-24T08:00:00+00:00",
            "2026-11-24T08:00:00.5+05:30",
            "2026-11-24t08:00:00z",
            "2026-11-24 08:00:00Z",
            "2026-11-24T08:00:00 UTC",
            "2026-11-24T08:00:00Z ",
            "2026-11-24T08:00:00.1234567891Z",
            "+2026-11-24T08:00:00Z",
            "12026-11-24T08:00:00Z",
        ] {
            assert!(
                !same_as_chrono(text),
                "{text} should not take the fast path"
            );
        }
    }

    #[test]
    fn invalid_timestamps_are_rejected_as_chrono_rejects_them() {
        for text in [
            "",
            "yesterday",
            "2026-11-24",
            "2026-11-24T08:00Z",
            "2026-11-24T08:00:00",
            "2026-11-24T08:00:00ZZ",
            "2026-11-24T08:00:00.Z",
            "2026-13-01T00:00:00Z",
            "2026-00-01T00:00:00Z",
            "2026-11-00T00:00:00Z",
            "2026-11-31T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2026-11-24T24:00:00Z",
            "2026-11-24T08:60:00Z",
            "2026-11-24T08:00:61Z",
            "2026-11-24T08:00:0aZ",
            "2026-11-24T08:00:00.12a4Z",
            "2026-11-24T08:00:00.-1Z",
            "2026-1a-24T08:00:00Z",
            "2026-11-24T08:00:00\u{e9}Z",
        ] {
            assert!(parse_utc(text).is_err(), "{text:?} must be rejected");
            assert!(!same_as_chrono(text));
        }
    }

    #[test]
    fn leap_seconds_are_chronos() {
        // chrono accepts second 60 (a leap second); the fast path leaves it to chrono.
        for text in ["2016-12-31T23:59:60Z", "2016-12-31T23:59:60.5Z"] {
            assert!(!same_as_chrono(text));
        }
    }

    #[test]
    fn every_day_of_a_leap_cycle_and_many_times_match_chrono() {
        let mut checked = 0;
        for year in [1600, 1700, 1900, 1970, 2000, 2023, 2024, 2100] {
            for month in 0..=13 {
                for day in 0..=32 {
                    let text = format!("{year:04}-{month:02}-{day:02}T12:34:56Z");
                    same_as_chrono(&text);
                    checked += 1;
                }
            }
        }
        for hour in [0, 9, 23, 24, 99] {
            for minute in [0, 30, 59, 60] {
                for second in [0, 1, 59, 60, 61] {
                    for fraction in ["", ".0", ".05", ".999", ".000001", ".123456789"] {
                        let text =
                            format!("2026-11-24T{hour:02}:{minute:02}:{second:02}{fraction}Z");
                        same_as_chrono(&text);
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 3_000);
    }

    #[test]
    fn every_one_byte_change_of_a_valid_timestamp_matches_chrono() {
        let valid = b"2024-02-29T23:59:59.123456Z";
        for i in 0..valid.len() {
            for c in 0u8..=127 {
                let mut text = valid.to_vec();
                text[i] = c;
                let text = String::from_utf8(text).unwrap();
                same_as_chrono(&text);
            }
        }
    }

    #[test]
    fn deserialize_gives_chronos_values_and_errors() {
        #[derive(Debug, serde::Deserialize)]
        struct Fast {
            #[serde(deserialize_with = "deserialize")]
            t: DateTime<Utc>,
        }
        #[derive(Debug, serde::Deserialize)]
        struct Chrono {
            t: DateTime<Utc>,
        }
        for json in [
            r#"{"t": "2026-11-24T08:00:00Z"}"#,
            r#"{"t": "2026-11-24T10:00:00.25+02:00"}"#,
            r#"{"t": "2026-11-24T08:00:00\u005A"}"#,
            r#"{"t": "2026-02-30T08:00:00Z"}"#,
            r#"{"t": "soon"}"#,
            r#"{"t": 1764000000}"#,
            r#"{"t": null}"#,
            r#"{}"#,
        ] {
            let fast = serde_json::from_str::<Fast>(json).map_err(|e| e.to_string());
            let chrono = serde_json::from_str::<Chrono>(json).map_err(|e| e.to_string());
            assert_eq!(fast.map(|f| f.t), chrono.map(|c| c.t), "{json}");
        }
    }
}
