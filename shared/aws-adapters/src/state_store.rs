//! [`PatientStateStore`] on DynamoDB: the detection state table.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use serde::{Deserialize, Serialize};
use serde_dynamo::aws_sdk_dynamodb_1::from_item;

use application::ports::{PatientStateStore, PortError, Versioned};
use domain::detection::PatientState;

use crate::attributes::{n, sdk_failure, string_attr};
use crate::table::{get_item, item_of, put_versioned};

/// Detection state per patient: `{patientId, version, state}`; saves are conditioned on
/// the version read (optimistic concurrency).
pub struct DynamoStateStore {
    client: Client,
    table: String,
}

impl DynamoStateStore {
    pub fn new(config: &aws_config::SdkConfig, table: String) -> Self {
        DynamoStateStore {
            client: Client::new(config),
            table,
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StateItem {
    patient_id: String,
    version: u64,
    state: PatientState,
    /// Keys of the sparse `due-at` index (present only while the sweep has work here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    due_shard: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    due_at: Option<i64>,
}

/// The sparse index of patient states the sweep must visit (`dueShard`, `dueAt`).
pub const DUE_INDEX: &str = "due-at";

#[async_trait]
impl PatientStateStore for DynamoStateStore {
    async fn load(&self, patient_id: &str) -> Result<Versioned<PatientState>, PortError> {
        match get_item(&self.client, &self.table, "patientId", patient_id, true).await? {
            None => Ok(Versioned::default()),
            Some(item) => {
                let stored: StateItem = from_item(item).map_err(|e| {
                    PortError::backend(&format!("decoding the state of patient {patient_id}"), e)
                })?;
                Ok(Versioned {
                    version: stored.version,
                    value: stored.state,
                })
            }
        }
    }

    async fn save(
        &self,
        patient_id: &str,
        expected_version: u64,
        state: &PatientState,
    ) -> Result<(), PortError> {
        let item = item_of(
            &StateItem {
                patient_id: patient_id.to_string(),
                version: expected_version + 1,
                state: state.clone(),
                due_shard: state
                    .due_at
                    .map(|_| domain::detection::due_shard(patient_id)),
                due_at: state.due_at,
            },
            "patient state",
        )?;
        put_versioned(
            &self.client,
            &self.table,
            ("patientId", patient_id),
            expected_version,
            item,
        )
        .await
    }

    async fn due(&self, shard: u32, now_ms: i64, limit: usize) -> Result<Vec<String>, PortError> {
        let limit = i32::try_from(limit.max(1)).unwrap_or(i32::MAX);
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(DUE_INDEX)
            .key_condition_expression("dueShard = :shard AND dueAt <= :now")
            .expression_attribute_values(":shard", n(shard))
            .expression_attribute_values(":now", n(now_ms))
            .limit(limit)
            .send()
            .await
            .map_err(|e| sdk_failure(&format!("Query {DUE_INDEX}"), &e))?;
        Ok(out
            .items()
            .iter()
            .filter_map(|item| string_attr(item, "patientId").map(str::to_string))
            .collect())
    }
}
