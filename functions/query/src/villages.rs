//! `GET /villages/{id}/stats?from=&to=`: the village's days (UTC, `YYYY-MM-DD` or RFC 3339;
//! default the last 7 days; at most 31), each with its readings, alerts by severity and by
//! rule, emergencies and median time to acknowledge, from the village statistics table (one
//! Query). Days without an item are zero.

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use domain::access::{Caller, Lookup, authorize_village};
use domain::village_stats::DayStats;
use lambda_kit::http::HttpError;
use serde_json::json;

use crate::paging::{param, unavailable};
use crate::{Deps, Reply};

/// The most days one request covers.
pub const MAX_DAYS: i64 = 31;
/// Statistics change slowly: `Cache-Control: private, max-age=60`.
pub const STATS_MAX_AGE_SECONDS: u32 = 60;

fn day_param(
    request: &ApiGatewayV2httpRequest,
    name: &str,
) -> Result<Option<NaiveDate>, HttpError> {
    let Some(text) = param(request, name)
        .map(str::trim)
        .filter(|t| !t.is_empty())
    else {
        return Ok(None);
    };
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .or_else(|| {
            DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|t| t.with_timezone(&Utc).date_naive())
        })
        .map(Some)
        .ok_or_else(|| {
            HttpError::new(
                400,
                "InvalidParameter",
                format!("{name} must be a date (YYYY-MM-DD) or an RFC 3339 time; got {text:?}"),
            )
        })
}

pub async fn stats(
    deps: &Deps<'_>,
    caller: &Caller,
    village: &str,
    request: &ApiGatewayV2httpRequest,
    now: DateTime<Utc>,
) -> Result<Reply, HttpError> {
    let to = day_param(request, "to")?.unwrap_or(now.date_naive());
    let from = day_param(request, "from")?.unwrap_or(to - Duration::days(6));
    if from > to {
        return Err(HttpError::new(
            400,
            "InvalidWindow",
            "from must not be after to".to_string(),
        ));
    }
    if (to - from).num_days() >= MAX_DAYS {
        return Err(HttpError::new(
            400,
            "InvalidWindow",
            format!("the range from..to is at most {MAX_DAYS} days"),
        ));
    }
    let facts = deps
        .access
        .facts(&Lookup {
            villages: vec![village.to_string()],
            ..Lookup::default()
        })
        .await
        .map_err(|e| unavailable("the directory", e))?;
    authorize_village(caller, village, facts.rosters.get(village))
        .map_err(|denied| HttpError::forbidden(denied.reason))?;
    let (first, last) = (
        from.format("%Y-%m-%d").to_string(),
        to.format("%Y-%m-%d").to_string(),
    );
    let stored: std::collections::BTreeMap<String, _> = deps
        .stats
        .days(village, &first, &last)
        .await
        .map_err(|e| unavailable("the village statistics", e))?
        .into_iter()
        .collect();
    let mut days = Vec::new();
    let mut day = from;
    while day <= to {
        let date = day.format("%Y-%m-%d").to_string();
        days.push(match stored.get(&date) {
            Some(counters) => DayStats::from_counters(&date, counters),
            None => DayStats {
                date,
                ..DayStats::default()
            },
        });
        day += Duration::days(1);
    }
    Ok(Reply {
        status: 200,
        body: json!({"village": village, "from": first, "to": last, "days": days}),
        max_age_seconds: STATS_MAX_AGE_SECONDS,
    })
}
