//! `GET /patients/{id}/readings?from=&to=&metric=&limit=&cursor=`: the patient's readings
//! in time order (then metric, device), from the recent vitals (docs/read-side.md): the
//! vitals table's hour blocks (a Query per page of blocks) and the hours still open in
//! detect's state (one GetItem). `from`/`to` are RFC 3339 (default: the last 24 hours),
//! at most 7 days apart. The cursor is opaque (base64url of a versioned position, bound to
//! the patient).

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use domain::access::Caller;
use lambda_kit::http::HttpError;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::paging::{limit, param};
use crate::recent::{
    Position, authorized_patient, metric_param, reading_json, samples, state, window,
};
use crate::{Deps, Reply};

/// The cursor format's version.
const CURSOR_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Cursor {
    v: u32,
    /// The patient the cursor was issued for.
    p: String,
    k: Position,
}

pub fn encode_cursor(patient_id: &str, position: &Position) -> String {
    let cursor = Cursor {
        v: CURSOR_VERSION,
        p: patient_id.to_string(),
        k: position.clone(),
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&cursor).unwrap_or_default())
}

pub fn decode_cursor(patient_id: &str, text: &str) -> Result<Position, HttpError> {
    let invalid = || {
        HttpError::new(
            400,
            "InvalidCursor",
            "cursor is not one this list issued; start again without it".to_string(),
        )
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(text.trim().trim_end_matches('='))
        .map_err(|_| invalid())?;
    let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if cursor.v != CURSOR_VERSION || cursor.p != patient_id {
        return Err(invalid());
    }
    Ok(cursor.k)
}

pub async fn list(
    deps: &Deps<'_>,
    caller: &Caller,
    patient_id: &str,
    request: &ApiGatewayV2httpRequest,
    now: DateTime<Utc>,
) -> Result<Reply, HttpError> {
    let span = window(request, now)?;
    let metric = metric_param(request)?;
    let limit = limit(request)?;
    let after = match param(request, "cursor")
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        Some(text) => Some(decode_cursor(patient_id, text)?),
        None => None,
    };
    authorized_patient(deps, caller, patient_id).await?;
    let state = state(deps, patient_id).await?;
    let (found, next) = samples(
        deps,
        patient_id,
        span,
        metric,
        after.as_ref(),
        limit,
        &state,
    )
    .await?;
    Ok(Reply::live(json!({
        "items": found.iter().map(reading_json).collect::<Vec<_>>(),
        "nextCursor": next.map(|p| encode_cursor(patient_id, &p)),
    })))
}
