//! `GET /workers/{id}/inbox`: the alerts waiting for the worker (routed to them, not yet
//! acknowledged or resolved), newest first, from the sparse `inbox-since` index.
//!
//! A health worker reads their own inbox only (another worker's is a 403); a supervisor
//! sees the items of their district's patients; an operator everything.

use application::views::ViewIndex;
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use domain::access::{Action, Caller, Role};
use domain::dashboard::View;
use lambda_kit::http::HttpError;

use crate::paging::{Listing, collect, page_request};
use crate::summary::{alert_summary, list_body, permitted};
use crate::{Deps, Reply};

pub async fn list(
    deps: &Deps<'_>,
    caller: &Caller,
    worker_id: &str,
    request: &ApiGatewayV2httpRequest,
) -> Result<Reply, HttpError> {
    if caller.role == Role::HealthWorker && caller.id != worker_id {
        return Err(HttpError::forbidden(format!(
            "health worker {} may read their own inbox only, not {worker_id}'s",
            caller.id
        )));
    }
    let listing = Listing {
        index: ViewIndex::Inbox,
        partition: worker_id.to_string(),
    };
    let (limit, after) = page_request(request, &listing)?;
    let own = caller.role == Role::HealthWorker;
    let page = collect(
        deps.views,
        &listing,
        limit,
        after,
        async |views: &[View]| {
            // Every item of one's own inbox is routed to oneself.
            if own {
                return Ok(vec![true; views.len()]);
            }
            permitted(deps, caller, Action::ReadAlerts, views).await
        },
    )
    .await?;
    Ok(Reply::live(list_body(&page, |v| match v {
        View::Alert(a) => Some(alert_summary(a)),
        View::Emergency(_) => None,
    })))
}
