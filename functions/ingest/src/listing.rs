//! How many field errors a 400 lists (issue 13): a body of 100,000 bad keys must not get a
//! response four times its size.

/// The most field errors a 400 lists; the rest are counted in `truncated`.
pub const MAX_LISTED_ERRORS: usize = 20;
