//! How many field errors a 400 lists (issue 13): a body of 100,000 bad keys must not get a
//! response four times its size.

/// The most field errors a 400 lists; the rest are counted in `truncated`.
pub const MAX_LISTED_ERRORS: usize = 20;

use domain::reading::FieldError;
use serde_json::{Map, Value, json};

/// Adds the first [`MAX_LISTED_ERRORS`] of `fields` to an error body as `errors`, and how
/// many more there were as `truncated` (only when some were left out). Nothing is added
/// for no fields.
pub fn add_errors(extra: &mut Map<String, Value>, fields: &[FieldError]) {
    if fields.is_empty() {
        return;
    }
    let listed = fields.get(..MAX_LISTED_ERRORS).unwrap_or(fields);
    extra.insert("errors".into(), json!(listed));
    let rest = fields.len() - listed.len();
    if rest > 0 {
        extra.insert("truncated".into(), json!(rest));
    }
}
