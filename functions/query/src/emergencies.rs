//! `GET /emergencies?status=`: emergencies (`active`, `completed`, `escalated`), most
//! recently updated first, from `kind-status-since` (or `kind-since` without a status).

use application::views::ViewIndex;
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use domain::access::{Action, Caller};
use domain::dashboard::View;
use lambda_kit::http::HttpError;

use crate::paging::{Listing, collect, enum_param, page_request};
use crate::summary::{emergency_summary, list_body, permitted};
use crate::{Deps, Reply};

/// The statuses a filter may name.
pub const STATUSES: [&str; 3] = ["active", "completed", "escalated"];

pub async fn list(
    deps: &Deps<'_>,
    caller: &Caller,
    request: &ApiGatewayV2httpRequest,
) -> Result<Reply, HttpError> {
    let status = enum_param(request, "status", &STATUSES)?;
    let listing = match status {
        Some(status) => Listing {
            index: ViewIndex::KindStatus,
            partition: format!("emergency#{status}"),
        },
        None => Listing {
            index: ViewIndex::Kind,
            partition: "emergency".into(),
        },
    };
    let (limit, after) = page_request(request, &listing)?;
    let page = collect(
        deps.views,
        &listing,
        limit,
        after,
        async |views: &[View]| {
            let allowed = permitted(deps, caller, Action::ListEmergencies, views).await?;
            Ok(views
                .iter()
                .zip(allowed)
                .map(|(v, ok)| ok && matches!(v, View::Emergency(_)))
                .collect())
        },
    )
    .await?;
    Ok(Reply::live(list_body(&page, |v| match v {
        View::Emergency(e) => Some(emergency_summary(e)),
        View::Alert(_) => None,
    })))
}
