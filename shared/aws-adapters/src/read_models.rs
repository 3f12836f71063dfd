//! [`ReadModels`] on DynamoDB: the dashboard table of alert and emergency views.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use serde::{Deserialize, Serialize};

use application::ports::{PortError, ReadModels, Versioned};
use domain::dashboard::View;

use crate::table::{get_typed, item_of, put_versioned};

/// The dashboard table: `{viewId, version, kind, status, board?, since?, view}`. `board`
/// and `since` feed the sparse `board-since` index (the views that need attention, oldest
/// first); `view` is the whole [`View`].
pub struct DynamoReadModels {
    client: Client,
    table: String,
}

impl DynamoReadModels {
    pub fn new(config: &aws_config::SdkConfig, table: String) -> Self {
        DynamoReadModels {
            client: Client::new(config),
            table,
        }
    }
}

/// Name of the dashboard table's index of open views.
pub const BOARD_INDEX: &str = "board-since";

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ViewItem {
    view_id: String,
    version: u64,
    kind: String,
    status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    board: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    since: Option<String>,
    view: View,
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
        let kind = match view {
            View::Alert(_) => "alert",
            View::Emergency(_) => "emergency",
        };
        let item = item_of(
            &ViewItem {
                view_id: view_id.clone(),
                version: expected_version + 1,
                kind: kind.to_string(),
                status: view.status_text(),
                board: view.board().map(str::to_string),
                since: view.since().map(|t| t.to_rfc3339()),
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
