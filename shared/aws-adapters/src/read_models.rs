//! [`ReadModels`] on DynamoDB: the dashboard table of alert and emergency views.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use serde::{Deserialize, Serialize};

use application::ports::{PortError, ReadModels, Versioned};
use domain::dashboard::View;
use domain::dashboard::listing::index_keys;

use crate::table::{get_typed, item_of, put_versioned};

/// The dashboard table: `{viewId, version, kind, status, board?, since?, view}`. `board`
/// and `since` feed the sparse `board-since` index (the views that need attention, oldest
/// first); `view` is the whole [`View`].
pub struct DynamoReadModels {
    pub(crate) client: Client,
    pub(crate) table: String,
}

impl DynamoReadModels {
    pub fn new(config: &aws_config::SdkConfig, table: String) -> Self {
        DynamoReadModels {
            client: Client::new(config),
            table,
        }
    }
}

/// `since` as stored: RFC 3339 in UTC with a fixed number of fractional digits, so the
/// indexes' string order is time order.
pub(crate) fn since_text(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Name of the dashboard table's index of open views.
pub const BOARD_INDEX: &str = "board-since";

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ViewItem {
    view_id: String,
    version: u64,
    kind: String,
    status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    board: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    since: Option<String>,
    /// The query API's index attributes (`domain::dashboard::listing`); absent ones are not
    /// written, so each index holds only the views it lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kind_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    village: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    patient_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    routed_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    inbox: Option<String>,
    pub(crate) view: View,
}

#[async_trait]
impl ReadModels for DynamoReadModels {
    async fn load(&self, view_id: &str) -> Result<Versioned<Option<View>>, PortError> {
        let item: Option<ViewItem> =
            get_typed(&self.client, &self.table, "viewId", view_id, true).await?;
        Ok(match item {
            Some(item) => Versioned {
                version: item.version,
                value: Some(item.view),
            },
            None => Versioned::default(),
        })
    }

    async fn save(&self, expected_version: u64, view: &View) -> Result<(), PortError> {
        let view_id = view.id();
        let keys = index_keys(view);
        let item = item_of(
            &ViewItem {
                view_id: view_id.clone(),
                version: expected_version + 1,
                kind: keys.kind.to_string(),
                status: view.status_text(),
                board: view.board().map(str::to_string),
                since: view.since().map(since_text),
                kind_status: Some(keys.kind_status),
                village: keys.village,
                patient_id: keys.patient_id,
                routed_to: keys.routed_to,
                inbox: keys.inbox,
                view: view.clone(),
            },
            "a dashboard view",
        )?;
        put_versioned(
            &self.client,
            &self.table,
            ("viewId", &view_id),
            expected_version,
            item,
        )
        .await
    }
}
