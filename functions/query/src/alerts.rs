//! `GET /alerts?status=&village=&severity=&worker=`: alert summaries, newest first.
//!
//! The most selective filter picks the index (`worker` -> `routed-since`, `village` ->
//! `village-since`, `status` -> `kind-status-since`, none -> `kind-since`); the other
//! filters are applied to what it returns, page after page until the page is full.

use application::views::ViewIndex;
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use domain::access::{Action, Caller};
use domain::dashboard::View;
use domain::dashboard::listing::alert_status_text;
use lambda_kit::http::HttpError;

use crate::paging::{Listing, collect, enum_param, filter_param, page_request};
use crate::summary::{alert_summary, list_body, permitted};
use crate::{Deps, Reply};

/// The alert statuses a filter may name.
pub const STATUSES: [&str; 6] = [
    "raised",
    "routed",
    "escalated",
    "acknowledged",
    "resolved",
    "pending",
];
/// The severities a filter may name.
pub const SEVERITIES: [&str; 3] = ["info", "warning", "critical"];

/// The request's filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    pub status: Option<String>,
    pub village: Option<String>,
    pub severity: Option<String>,
    pub worker: Option<String>,
}

impl Filters {
    pub fn of(request: &ApiGatewayV2httpRequest) -> Result<Filters, HttpError> {
        Ok(Filters {
            status: enum_param(request, "status", &STATUSES)?,
            village: filter_param(request, "village"),
            severity: enum_param(request, "severity", &SEVERITIES)?,
            worker: filter_param(request, "worker"),
        })
    }

    /// The index to read: the most selective filter's.
    pub fn listing(&self) -> Listing {
        let (index, partition) = if let Some(worker) = &self.worker {
            (ViewIndex::Routed, worker.clone())
        } else if let Some(village) = &self.village {
            (ViewIndex::Village, village.clone())
        } else if let Some(status) = &self.status {
            (ViewIndex::KindStatus, format!("alert#{status}"))
        } else {
            (ViewIndex::Kind, "alert".to_string())
        };
        Listing { index, partition }
    }

    /// Whether an alert view passes every filter.
    pub fn passes(&self, view: &View) -> bool {
        let View::Alert(v) = view else {
            return false;
        };
        let eq = |filter: &Option<String>, value: Option<&str>| {
            filter.as_deref().is_none_or(|f| Some(f) == value)
        };
        let severity = v
            .severity
            .and_then(|s| serde_json::to_value(s).ok())
            .and_then(|s| s.as_str().map(str::to_string));
        eq(&self.status, Some(alert_status_text(v.status())))
            && eq(&self.village, v.village.as_deref())
            && eq(&self.severity, severity.as_deref())
            && eq(&self.worker, v.routed_to.as_deref())
    }
}

pub async fn list(
    deps: &Deps<'_>,
    caller: &Caller,
    request: &ApiGatewayV2httpRequest,
) -> Result<Reply, HttpError> {
    let filters = Filters::of(request)?;
    let listing = filters.listing();
    let (limit, after) = page_request(request, &listing)?;
    let page = collect(
        deps.views,
        &listing,
        limit,
        after,
        async |views: &[View]| {
            let allowed = permitted(deps, caller, Action::ReadAlerts, views).await?;
            Ok(views
                .iter()
                .zip(allowed)
                .map(|(v, ok)| ok && filters.passes(v))
                .collect())
        },
    )
    .await?;
    Ok(Reply::live(list_body(&page, |v| match v {
        View::Alert(a) => Some(alert_summary(a)),
        View::Emergency(_) => None,
    })))
}
