//! Acknowledgement codes: what a health worker types to acknowledge by SMS reply
//! ("ACK 4K7Q2M"). Pure logic: deriving a target's code, and parsing a reply.
//!
//! A code is 6 characters of [`ALPHABET`] (no `0`/`O`, no `1`/`I`: nothing to confuse on a
//! feature phone's keypad), derived from a hash of the target, so a redelivered routing
//! derives the same code. Codes are registered (code -> target) before anyone is sent one;
//! the register refuses to point a code at a second target. When the 6-character code of a
//! target is taken by another one, the target gets its 8-character code instead
//! ([`AckCode::candidates`], in that order).

use serde::{Deserialize, Serialize};

use crate::ids::deterministic_uuid;

/// The characters of a code: digits 2-9 and the letters without `I` and `O` (32 symbols,
/// 5 bits each).
pub const ALPHABET: &[u8; 32] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";

/// The lengths a code may have, the shortest first: a target gets the first whose code is
/// free (6 characters: about 10^9 codes; 8: about 10^12).
pub const CODE_LENGTHS: [usize; 2] = [6, 8];

/// The word a reply starts with.
pub const KEYWORD: &str = "ACK";

/// What a code acknowledges.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum AckTarget {
    /// An alert routed to a health worker: the reply records `AlertAcknowledged`.
    Alert { alert_id: String },
    /// An emergency the worker was told about.
    Emergency { emergency_id: String },
}

impl AckTarget {
    pub fn alert(alert_id: impl Into<String>) -> AckTarget {
        AckTarget::Alert {
            alert_id: alert_id.into(),
        }
    }

    pub fn emergency(emergency_id: impl Into<String>) -> AckTarget {
        AckTarget::Emergency {
            emergency_id: emergency_id.into(),
        }
    }

    /// `alert` or `emergency`.
    pub fn kind(&self) -> &'static str {
        match self {
            AckTarget::Alert { .. } => "alert",
            AckTarget::Emergency { .. } => "emergency",
        }
    }

    /// The alert or emergency id.
    pub fn id(&self) -> &str {
        match self {
            AckTarget::Alert { alert_id } => alert_id,
            AckTarget::Emergency { emergency_id } => emergency_id,
        }
    }
}

/// A well-formed code: one of [`CODE_LENGTHS`] characters of [`ALPHABET`], upper case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AckCode(String);

impl AckCode {
    /// The codes `target` may get, shortest first (one per [`CODE_LENGTHS`]). Each is a
    /// hash of the target and the length, so they do not share a prefix.
    pub fn candidates(target: &AckTarget) -> Vec<AckCode> {
        CODE_LENGTHS
            .iter()
            .map(|&length| AckCode::derived(target, length))
            .collect()
    }

    /// The first 45 bits of the hash, 5 per character (at most 9 characters).
    fn derived(target: &AckTarget, length: usize) -> AckCode {
        let hash = deterministic_uuid(&["ack", target.kind(), target.id(), &length.to_string()]);
        // Bytes 0..6 of a UUID v5 are pure hash (the version and variant bits come later).
        let bits = hash.as_bytes()[..6]
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        let code = (0..length.min(9))
            .map(|i| char::from(ALPHABET[((bits >> (43 - 5 * i)) & 31) as usize]))
            .collect();
        AckCode(code)
    }

    /// Checks a code as typed (already upper case, no separators).
    pub fn parse(code: &str) -> Result<AckCode, ReplyError> {
        if !CODE_LENGTHS.contains(&code.chars().count()) {
            return Err(ReplyError::WrongLength {
                code: code.to_string(),
            });
        }
        if let Some(c) = code
            .chars()
            .find(|c| !c.is_ascii() || !ALPHABET.contains(&(*c as u8)))
        {
            return Err(ReplyError::BadCharacter {
                code: code.to_string(),
                character: c,
            });
        }
        Ok(AckCode(code.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for AckCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for AckCode {
    type Error = ReplyError;

    fn try_from(code: String) -> Result<AckCode, ReplyError> {
        AckCode::parse(&code)
    }
}

impl From<AckCode> for String {
    fn from(code: AckCode) -> String {
        code.0
    }
}

/// Why a reply is not an acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("the reply is empty")]
    Empty,
    #[error("the reply does not start with {KEYWORD}")]
    NotAnAck,
    #[error("the reply has no code after {KEYWORD}")]
    MissingCode,
    #[error("{code:?} is not a code: a code has 6 or 8 characters")]
    WrongLength { code: String },
    #[error("{code:?} is not a code: {character:?} never occurs in one")]
    BadCharacter { code: String, character: char },
}

impl ReplyError {
    /// A short name for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ReplyError::Empty => "empty",
            ReplyError::NotAnAck => "not-an-ack",
            ReplyError::MissingCode => "missing-code",
            ReplyError::WrongLength { .. } => "wrong-length",
            ReplyError::BadCharacter { .. } => "bad-character",
        }
    }
}

/// Reads the code of a reply such as `ACK 4K7Q2M`. Tolerated: any case, spaces around and
/// inside the code (`ack 4k7 q2m`), no space after the keyword (`ACK4K7Q2M`), a `:`, `-` or
/// `#` after the keyword, dashes inside the code, punctuation after it, and further words
/// after the code (`ACK 4K7Q2M on my way`).
pub fn parse_reply(text: &str) -> Result<AckCode, ReplyError> {
    let text = text.trim().to_uppercase();
    if text.is_empty() {
        return Err(ReplyError::Empty);
    }
    let rest = text.strip_prefix(KEYWORD).ok_or(ReplyError::NotAnAck)?;
    let rest = rest.trim_start_matches(|c: char| c.is_whitespace() || matches!(c, ':' | '-' | '#'));
    // The code is the first word, or the first words joined until they are long enough
    // (a code typed in two halves).
    let shortest = CODE_LENGTHS[0];
    let mut code = String::new();
    for word in rest.split_whitespace() {
        let word = word.trim_end_matches(['.', ',', '!', '?', ';', ':']);
        code.extend(word.chars().filter(|&c| c != '-'));
        if code.chars().count() >= shortest {
            break;
        }
    }
    if code.is_empty() {
        return Err(ReplyError::MissingCode);
    }
    AckCode::parse(&code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> AckCode {
        AckCode::parse(s).unwrap()
    }

    #[test]
    fn codes_are_derived_from_the_target_and_use_the_alphabet_only() {
        let alert = AckTarget::alert("a3f1e2d4-1111-5222-8333-944455566677");
        let codes = AckCode::candidates(&alert);
        assert_eq!(codes, AckCode::candidates(&alert));
        assert_eq!(
            codes.iter().map(|c| c.as_str().len()).collect::<Vec<_>>(),
            [6, 8]
        );
        for c in &codes {
            assert!(c.as_str().bytes().all(|b| ALPHABET.contains(&b)), "{c}");
            assert!(!c.as_str().contains(['0', 'O', '1', 'I']), "{c}");
        }
        // Another target, or the same id of another kind, gets another code.
        assert_ne!(
            codes,
            AckCode::candidates(&AckTarget::alert("a3f1e2d4-1111-5222-8333-944455566678"))
        );
        assert_ne!(
            codes,
            AckCode::candidates(&AckTarget::emergency(
                "a3f1e2d4-1111-5222-8333-944455566677"
            ))
        );
    }

    #[test]
    fn codes_spread_over_the_alphabet() {
        // 2000 targets: every symbol occurs in every position of the 6-character codes, and
        // the codes are distinct (a collision among 2000 of 2^30 codes is very unlikely).
        let codes: Vec<AckCode> = (0..2000)
            .map(|i| AckCode::candidates(&AckTarget::alert(format!("alert-{i}")))[0].clone())
            .collect();
        for position in 0..6 {
            let used: std::collections::BTreeSet<u8> = codes
                .iter()
                .map(|c| c.as_str().as_bytes()[position])
                .collect();
            assert_eq!(used.len(), 32, "position {position}");
        }
        let distinct: std::collections::BTreeSet<&AckCode> = codes.iter().collect();
        assert_eq!(distinct.len(), codes.len());
    }

    #[test]
    fn replies_are_read_whatever_the_case_and_spacing() {
        for reply in [
            "ACK 4K7Q2M",
            "ack 4k7q2m",
            "Ack 4K7Q2M",
            "ACK4K7Q2M",
            "  ack   4k7q2m  ",
            "ACK: 4K7Q2M",
            "ACK #4K7Q2M",
            "ACK 4K7-Q2M",
            "ack 4k7 q2m",
            "ACK 4K7Q2M.",
            "ACK 4K7Q2M on my way",
            "ACK\n4K7Q2M",
        ] {
            assert_eq!(parse_reply(reply), Ok(code("4K7Q2M")), "{reply:?}");
        }
        assert_eq!(parse_reply("ack 4k7q2m9x"), Ok(code("4K7Q2M9X")));
    }

    #[test]
    fn anything_else_is_a_clear_error() {
        assert_eq!(parse_reply(""), Err(ReplyError::Empty));
        assert_eq!(parse_reply("   "), Err(ReplyError::Empty));
        assert_eq!(parse_reply("yes 4K7Q2M"), Err(ReplyError::NotAnAck));
        assert_eq!(parse_reply("4K7Q2M"), Err(ReplyError::NotAnAck));
        assert_eq!(parse_reply("ACK"), Err(ReplyError::MissingCode));
        assert_eq!(parse_reply("ack  !"), Err(ReplyError::MissingCode));
        assert_eq!(
            parse_reply("ACK 4K7Q2"),
            Err(ReplyError::WrongLength {
                code: "4K7Q2".into()
            })
        );
        assert_eq!(
            parse_reply("ACK 4K7Q2M9"),
            Err(ReplyError::WrongLength {
                code: "4K7Q2M9".into()
            })
        );
        // 0, O, 1 and I never occur in a code: a code that has them was mistyped.
        assert_eq!(
            parse_reply("ACK 4K7Q0M"),
            Err(ReplyError::BadCharacter {
                code: "4K7Q0M".into(),
                character: '0'
            })
        );
        assert_eq!(
            parse_reply("ACK 4K7QÉM").map_err(|e| e.reason()),
            Err("bad-character")
        );
        assert_eq!(
            parse_reply("ACKNOWLEDGED").map_err(|e| e.reason()),
            Err("wrong-length")
        );
    }

    #[test]
    fn a_code_round_trips_through_json_and_refuses_a_bad_one() {
        let json = serde_json::to_string(&code("4K7Q2M")).unwrap();
        assert_eq!(json, "\"4K7Q2M\"");
        assert_eq!(
            serde_json::from_str::<AckCode>(&json).unwrap(),
            code("4K7Q2M")
        );
        assert!(serde_json::from_str::<AckCode>("\"4K7Q0M\"").is_err());
    }

    #[test]
    fn targets_serialise_with_their_kind() {
        let alert = serde_json::to_value(AckTarget::alert("a-1")).unwrap();
        assert_eq!(
            alert,
            serde_json::json!({"kind": "alert", "alertId": "a-1"})
        );
        let emergency = serde_json::to_value(AckTarget::emergency("e-1")).unwrap();
        assert_eq!(
            emergency,
            serde_json::json!({"kind": "emergency", "emergencyId": "e-1"})
        );
        let back: AckTarget = serde_json::from_value(emergency).unwrap();
        assert_eq!(back, AckTarget::emergency("e-1"));
    }
}
