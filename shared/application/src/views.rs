//! The port the query API reads dashboard views by: a query of one of the dashboard
//! table's indexes, newest first, one page at a time ([`ViewQueries`]). Never a scan.

use std::collections::BTreeMap;

use async_trait::async_trait;
use domain::dashboard::View;

use crate::ports::PortError;

/// An index of the dashboard table (`domain::dashboard::listing`), each sorted by `since`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ViewIndex {
    /// `kind` (`alert`, `emergency`).
    Kind,
    /// `kindStatus` (`alert#routed`, `emergency#active`).
    KindStatus,
    /// `village` (alert views).
    Village,
    /// `patientId` (alert views).
    Patient,
    /// `routedTo` (alert views).
    Routed,
    /// `inbox` (alert views waiting for the worker they are routed to).
    Inbox,
}

impl ViewIndex {
    pub const ALL: [ViewIndex; 6] = [
        ViewIndex::Kind,
        ViewIndex::KindStatus,
        ViewIndex::Village,
        ViewIndex::Patient,
        ViewIndex::Routed,
        ViewIndex::Inbox,
    ];

    /// The index's name in the table.
    pub fn name(self) -> &'static str {
        match self {
            ViewIndex::Kind => "kind-since",
            ViewIndex::KindStatus => "kind-status-since",
            ViewIndex::Village => "village-since",
            ViewIndex::Patient => "patient-since",
            ViewIndex::Routed => "routed-since",
            ViewIndex::Inbox => "inbox-since",
        }
    }

    /// The attribute the index is partitioned by.
    pub fn partition_attribute(self) -> &'static str {
        match self {
            ViewIndex::Kind => "kind",
            ViewIndex::KindStatus => "kindStatus",
            ViewIndex::Village => "village",
            ViewIndex::Patient => "patientId",
            ViewIndex::Routed => "routedTo",
            ViewIndex::Inbox => "inbox",
        }
    }

    pub fn by_name(name: &str) -> Option<ViewIndex> {
        ViewIndex::ALL.into_iter().find(|i| i.name() == name)
    }
}

/// The sort attribute of every index.
pub const SORT_ATTRIBUTE: &str = "since";
/// The table's key attribute.
pub const KEY_ATTRIBUTE: &str = "viewId";

/// Where a page starts or ends: the key attributes of an index entry (table key, partition
/// and sort attribute), all strings.
pub type PageKey = BTreeMap<String, String>;

/// One page of one partition of an index, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexQuery {
    pub index: ViewIndex,
    pub partition: String,
    /// Continue after this entry (exclusive).
    pub after: Option<PageKey>,
    /// Entries to read at most.
    pub limit: usize,
}

/// A page: each view with its entry's key, and where the index continues (None: the end).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IndexPage {
    pub items: Vec<(PageKey, View)>,
    pub last: Option<PageKey>,
}

#[async_trait]
pub trait ViewQueries: Send + Sync {
    /// Reads one page of an index (a DynamoDB `Query`).
    async fn query(&self, query: &IndexQuery) -> Result<IndexPage, PortError>;
}
