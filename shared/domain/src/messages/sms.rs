//! How many SMS segments a text takes (3GPP TS 23.038 / 23.040).
//!
//! - **GSM-7** when every character is in the GSM 03.38 basic table or its extension
//!   table (`^ { } \ [ ~ ] | €` and form feed, each 2 septets: escape + character): 160
//!   septets in one SMS; a longer text is split into parts of 153 septets (7 bytes of each
//!   part carry the concatenation header), and an escape pair is never split across parts.
//! - **UCS-2** as soon as one character is outside both tables (Devanagari, an emoji, a
//!   curly quote, `…`): the whole text is UTF-16, 70 code units in one SMS, 67 per part of
//!   a longer one; a surrogate pair (a character outside the BMP) is never split.

/// The encoding a text is sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Gsm7,
    Ucs2,
}

/// A text's size as an SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmsSize {
    pub encoding: Encoding,
    /// Septets (GSM-7) or UTF-16 code units (UCS-2).
    pub units: usize,
    pub segments: usize,
}

/// GSM-7 single part / per part of a concatenated message, in septets.
pub const GSM7_SINGLE: usize = 160;
pub const GSM7_PART: usize = 153;
/// UCS-2 single part / per part of a concatenated message, in UTF-16 code units.
pub const UCS2_SINGLE: usize = 70;
pub const UCS2_PART: usize = 67;

/// The GSM 03.38 basic character set (1 septet each; 0x1B, the escape, is not a character).
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// The extension table (2 septets each: escape + character).
const GSM7_EXTENSION: &str = "\u{0C}^{}\\[~]|€";

/// Septets of `c` in GSM-7, or `None` when it is not in either table.
pub fn gsm7_septets(c: char) -> Option<usize> {
    if GSM7_BASIC.contains(c) {
        Some(1)
    } else if GSM7_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// The size of `text` as an SMS. An empty text is one (empty) segment.
pub fn sms_size(text: &str) -> SmsSize {
    let septets: Option<Vec<usize>> = text.chars().map(gsm7_septets).collect();
    match septets {
        Some(units) => SmsSize {
            encoding: Encoding::Gsm7,
            units: units.iter().sum(),
            segments: segments(&units, GSM7_SINGLE, GSM7_PART),
        },
        None => {
            let units: Vec<usize> = text.chars().map(char::len_utf16).collect();
            SmsSize {
                encoding: Encoding::Ucs2,
                units: units.iter().sum(),
                segments: segments(&units, UCS2_SINGLE, UCS2_PART),
            }
        }
    }
}

/// Parts of a text whose characters take `units` each: one when the whole fits `single`,
/// otherwise parts of at most `part` filled in order, a character never split.
fn segments(units: &[usize], single: usize, part: usize) -> usize {
    if units.iter().sum::<usize>() <= single {
        return 1;
    }
    let (mut parts, mut used) = (1, 0);
    for &u in units {
        if used + u > part {
            parts += 1;
            used = 0;
        }
        used += u;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm7_single_and_concatenated_limits() {
        let size = |n: usize| sms_size(&"a".repeat(n));
        assert_eq!(size(0).segments, 1);
        assert_eq!(
            (size(160).encoding, size(160).segments),
            (Encoding::Gsm7, 1)
        );
        assert_eq!(size(161).segments, 2);
        assert_eq!(size(306).segments, 2);
        assert_eq!(size(307).segments, 3);
    }

    #[test]
    fn the_extension_table_costs_two_septets_and_is_never_split() {
        assert_eq!(sms_size("€").units, 2);
        assert_eq!(sms_size("{[]}").encoding, Encoding::Gsm7);
        // 80 euro signs: 160 septets, one SMS; 81: two.
        assert_eq!(sms_size(&"€".repeat(80)).segments, 1);
        assert_eq!(sms_size(&"€".repeat(81)).segments, 2);
        // 152 septets then an escape pair: the pair goes whole into the second part.
        let text = format!("{}€{}", "a".repeat(152), "a".repeat(152));
        assert_eq!(sms_size(&text).units, 306);
        assert_eq!(sms_size(&text).segments, 3);
    }

    #[test]
    fn gsm7_basic_accents_stay_gsm7_but_others_do_not() {
        assert_eq!(
            sms_size("Ça été où? ¿Ñ? Δ £5 @ § ¤").encoding,
            Encoding::Gsm7
        );
        for other in ["ç", "á", "…", "’", "`", "₹", "ऑ", "😀"] {
            assert_eq!(sms_size(other).encoding, Encoding::Ucs2, "{other}");
        }
    }

    #[test]
    fn one_non_gsm_character_makes_the_whole_text_ucs2() {
        let text = format!("{}₹", "a".repeat(69));
        assert_eq!(sms_size(&text).encoding, Encoding::Ucs2);
        assert_eq!(sms_size(&text).segments, 1);
        let text = format!("{}₹", "a".repeat(70));
        assert_eq!(sms_size(&text).segments, 2);
        assert_eq!(sms_size(&"अ".repeat(134)).segments, 2);
        assert_eq!(sms_size(&"अ".repeat(135)).segments, 3);
    }

    #[test]
    fn a_surrogate_pair_counts_two_units_and_is_never_split() {
        assert_eq!(sms_size("😀").units, 2);
        assert_eq!(sms_size(&"😀".repeat(35)).segments, 1);
        // 66 units, then a pair: it does not fit the first part's last unit.
        let text = format!("{}😀{}", "अ".repeat(66), "अ".repeat(66));
        assert_eq!(sms_size(&text).units, 134);
        assert_eq!(sms_size(&text).segments, 3);
    }
}
