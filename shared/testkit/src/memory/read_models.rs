//! [`ReadModels`] in memory.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use application::ports::{PortError, ReadModels, Versioned};
use application::views::{
    IndexPage, IndexQuery, KEY_ATTRIBUTE, PageKey, SORT_ATTRIBUTE, ViewIndex, ViewQueries,
};
use domain::dashboard::View;
use domain::dashboard::listing::index_keys;

use super::{lock, save_versioned};

/// Dashboard views in memory; counts saves and index queries.
#[derive(Default)]
pub struct MemoryReadModels {
    pub views: Mutex<HashMap<String, Versioned<View>>>,
    pub saves: Mutex<usize>,
    pub queries: Mutex<usize>,
}

impl MemoryReadModels {
    pub fn get(&self, view_id: &str) -> Option<View> {
        lock(&self.views).get(view_id).map(|v| v.value.clone())
    }
}

#[async_trait]
impl ReadModels for MemoryReadModels {
    async fn load(&self, view_id: &str) -> Result<Versioned<Option<View>>, PortError> {
        Ok(match lock(&self.views).get(view_id) {
            Some(v) => Versioned {
                version: v.version,
                value: Some(v.value.clone()),
            },
            None => Versioned::default(),
        })
    }

    async fn save(&self, expected_version: u64, view: &View) -> Result<(), PortError> {
        save_versioned(&mut lock(&self.views), &view.id(), expected_version, view)?;
        *lock(&self.saves) += 1;
        Ok(())
    }
}

/// The views an index lists under `partition`, newest first (as DynamoDB orders an index
/// queried backwards: by `since`, then by `viewId`).
fn index_entries(
    views: &HashMap<String, Versioned<View>>,
    index: ViewIndex,
    partition: &str,
) -> Vec<(PageKey, View)> {
    let mut entries: Vec<(PageKey, View)> = views
        .values()
        .filter_map(|v| {
            let keys = index_keys(&v.value);
            let value = match index {
                ViewIndex::Kind => Some(keys.kind.to_string()),
                ViewIndex::KindStatus => Some(keys.kind_status),
                ViewIndex::Village => keys.village,
                ViewIndex::Patient => keys.patient_id,
                ViewIndex::Routed => keys.routed_to,
                ViewIndex::Inbox => keys.inbox,
            }?;
            let since = v.value.since()?;
            (value == partition).then(|| {
                let key: PageKey = [
                    (KEY_ATTRIBUTE.to_string(), v.value.id()),
                    (index.partition_attribute().to_string(), value),
                    (
                        SORT_ATTRIBUTE.to_string(),
                        since.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                    ),
                ]
                .into_iter()
                .collect();
                (key, v.value.clone())
            })
        })
        .collect();
    entries.sort_by(|(a, _), (b, _)| {
        (&b[SORT_ATTRIBUTE], &b[KEY_ATTRIBUTE]).cmp(&(&a[SORT_ATTRIBUTE], &a[KEY_ATTRIBUTE]))
    });
    entries
}

#[async_trait]
impl ViewQueries for MemoryReadModels {
    async fn query(&self, query: &IndexQuery) -> Result<IndexPage, PortError> {
        *lock(&self.queries) += 1;
        let entries = index_entries(&lock(&self.views), query.index, &query.partition);
        let start = match &query.after {
            None => 0,
            Some(after) => entries
                .iter()
                .position(|(key, _)| key == after)
                .map(|i| i + 1)
                .ok_or_else(|| PortError::backend("Query", "the start key is not in the index"))?,
        };
        let items: Vec<(PageKey, View)> = entries
            .iter()
            .skip(start)
            .take(query.limit)
            .cloned()
            .collect();
        let more = start + items.len() < entries.len();
        let last = items.last().map(|(key, _)| key.clone()).filter(|_| more);
        Ok(IndexPage { items, last })
    }
}
