//! Paging shared by every list route: `limit` (1..=100, default 25), the opaque cursor
//! (versioned, base64url of the last index entry returned; a bad one is a 400), and the
//! loop that fills a page from an index through filters.
//!
//! A cursor is `base64url(JSON {"v": 1, "i": <index>, "k": {<key attributes>}})`. It is
//! valid only for the listing (index and partition) that issued it. A page whose filters
//! keep few items reads at most [`MAX_INDEX_PAGES`] index pages, then answers what it found
//! with a `nextCursor` to continue from: every request's cost is bounded, even when the
//! filters keep nothing.

use application::ports::PortError;
use application::views::{
    IndexQuery, KEY_ATTRIBUTE, PageKey, SORT_ATTRIBUTE, ViewIndex, ViewQueries,
};
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::dashboard::View;
use lambda_kit::http::HttpError;
use serde::{Deserialize, Serialize};

/// Items per page when the request does not say.
pub const DEFAULT_LIMIT: usize = 25;
/// The largest `limit`.
pub const MAX_LIMIT: usize = 100;
/// Index pages one request reads at most.
pub const MAX_INDEX_PAGES: usize = 10;
/// The cursor format's version.
pub const CURSOR_VERSION: u32 = 1;

/// One query-string parameter, if present (the first value).
pub fn param<'a>(request: &'a ApiGatewayV2httpRequest, name: &str) -> Option<&'a str> {
    request.query_string_parameters.first(name)
}

/// A non-empty query-string parameter, trimmed (an empty one counts as absent).
pub fn filter_param(request: &ApiGatewayV2httpRequest, name: &str) -> Option<String> {
    param(request, name)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// A filter that must be one of `allowed` (400 otherwise).
pub fn enum_param(
    request: &ApiGatewayV2httpRequest,
    name: &str,
    allowed: &[&str],
) -> Result<Option<String>, HttpError> {
    match filter_param(request, name) {
        Some(value) if !allowed.contains(&value.as_str()) => Err(HttpError::new(
            400,
            "InvalidParameter",
            format!(
                "{name} must be one of {}; got {value:?}",
                allowed.join(", ")
            ),
        )),
        other => Ok(other),
    }
}

/// The `limit` parameter: 1..=100, default 25.
pub fn limit(request: &ApiGatewayV2httpRequest) -> Result<usize, HttpError> {
    let Some(text) = param(request, "limit") else {
        return Ok(DEFAULT_LIMIT);
    };
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(HttpError::new(
            400,
            "InvalidLimit",
            format!("limit must be an integer from 1 to {MAX_LIMIT}; got {text:?}"),
        )),
    }
}

/// What a list reads: one partition of one index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub index: ViewIndex,
    pub partition: String,
}

#[derive(Serialize, Deserialize)]
struct CursorBody {
    v: u32,
    i: String,
    k: PageKey,
}

/// The opaque cursor of an index entry.
pub fn encode_cursor(listing: &Listing, key: &PageKey) -> String {
    let body = CursorBody {
        v: CURSOR_VERSION,
        i: listing.index.name().to_string(),
        k: key.clone(),
    };
    // A map of strings always serialises.
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&body).unwrap_or_default())
}

fn invalid_cursor(why: &str) -> HttpError {
    HttpError::new(
        400,
        "InvalidCursor",
        format!("cursor is not one this list issued ({why}); start again without it"),
    )
}

/// The index entry a cursor continues after; 400 `InvalidCursor` unless this listing
/// issued it.
pub fn decode_cursor(listing: &Listing, cursor: &str) -> Result<PageKey, HttpError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor.trim().trim_end_matches('='))
        .map_err(|_| invalid_cursor("not base64url"))?;
    let body: CursorBody =
        serde_json::from_slice(&bytes).map_err(|_| invalid_cursor("not a cursor"))?;
    if body.v != CURSOR_VERSION {
        return Err(invalid_cursor("unknown version"));
    }
    if body.i != listing.index.name() {
        return Err(invalid_cursor("another list's"));
    }
    let partition = listing.index.partition_attribute();
    let expected = [KEY_ATTRIBUTE, partition, SORT_ATTRIBUTE];
    let well_formed = body.k.len() == expected.len()
        && expected
            .iter()
            .all(|a| body.k.get(*a).is_some_and(|v| !v.is_empty()))
        && body.k.get(partition) == Some(&listing.partition);
    if !well_formed {
        return Err(invalid_cursor("another list's"));
    }
    Ok(body.k)
}

/// The `limit` and the decoded `cursor` of a request for `listing`.
pub fn page_request(
    request: &ApiGatewayV2httpRequest,
    listing: &Listing,
) -> Result<(usize, Option<PageKey>), HttpError> {
    let limit = limit(request)?;
    let after = match param(request, "cursor") {
        Some(cursor) if !cursor.trim().is_empty() => Some(decode_cursor(listing, cursor)?),
        _ => None,
    };
    Ok((limit, after))
}

/// A page of views and the cursor of the next one (None: the list ends here).
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub items: Vec<View>,
    pub next_cursor: Option<String>,
}

/// 503 for a read model or directory that cannot be read.
pub fn unavailable(what: &str, err: PortError) -> HttpError {
    HttpError::new(
        503,
        "Unavailable",
        format!("{what} cannot be read now: {err}"),
    )
}

/// Reads `listing` after `after` until `limit` items passed `keep` (which answers, for a
/// batch of views, whether each stays), the index ends, or [`MAX_INDEX_PAGES`] index pages
/// were read. Items come in index order (newest first).
pub async fn collect(
    views: &dyn ViewQueries,
    listing: &Listing,
    limit: usize,
    after: Option<PageKey>,
    mut keep: impl AsyncFnMut(&[View]) -> Result<Vec<bool>, HttpError>,
) -> Result<Page, HttpError> {
    let mut items = Vec::new();
    let mut after = after;
    for _ in 0..MAX_INDEX_PAGES {
        let want = limit - items.len();
        let page = views
            .query(&IndexQuery {
                index: listing.index,
                partition: listing.partition.clone(),
                after: after.clone(),
                // One more than needed: a full page then knows whether anything follows.
                limit: want + 1,
            })
            .await
            .map_err(|e| unavailable("the dashboard", e))?;
        let batch: Vec<View> = page.items.iter().map(|(_, v)| v.clone()).collect();
        let kept = keep(&batch).await?;
        let count = page.items.len();
        for (i, ((key, view), stays)) in page.items.into_iter().zip(kept).enumerate() {
            after = Some(key);
            if !stays {
                continue;
            }
            items.push(view);
            if items.len() == limit {
                let more = i + 1 < count || page.last.is_some();
                let next_cursor = after
                    .as_ref()
                    .filter(|_| more)
                    .map(|k| encode_cursor(listing, k));
                return Ok(Page { items, next_cursor });
            }
        }
        match page.last {
            None => {
                return Ok(Page {
                    items,
                    next_cursor: None,
                });
            }
            Some(last) => after = Some(last),
        }
    }
    Ok(Page {
        items,
        next_cursor: after.as_ref().map(|k| encode_cursor(listing, k)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing() -> Listing {
        Listing {
            index: ViewIndex::Inbox,
            partition: "w-1".into(),
        }
    }

    fn key(partition: &str) -> PageKey {
        [
            ("viewId", "alert#a-1"),
            ("inbox", partition),
            ("since", "2026-01-01T00:00:00.000000Z"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn a_cursor_round_trips_and_is_url_safe() {
        let cursor = encode_cursor(&listing(), &key("w-1"));
        assert!(
            cursor
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_eq!(decode_cursor(&listing(), &cursor).unwrap(), key("w-1"));
    }

    #[test]
    fn a_cursor_of_another_list_or_garbage_is_a_400() {
        let other_worker = encode_cursor(&listing(), &key("w-2"));
        let other_index = encode_cursor(
            &Listing {
                index: ViewIndex::Village,
                partition: "w-1".into(),
            },
            &key("w-1"),
        );
        let wrong_version = URL_SAFE_NO_PAD.encode(br#"{"v":2,"i":"inbox-since","k":{}}"#);
        for bad in [
            other_worker,
            other_index,
            wrong_version,
            "%%%".into(),
            "e30".into(),
        ] {
            let err = decode_cursor(&listing(), &bad).unwrap_err();
            assert_eq!((err.status, err.code), (400, "InvalidCursor"), "{bad}");
        }
    }
}
