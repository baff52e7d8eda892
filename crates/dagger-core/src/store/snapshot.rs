use crate::error::StoreError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One entry of a cache's persisted history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SnapshotEntry {
    /// The whole cache (`namespace -> key -> value`).
    Full {
        /// The cache as JSON.
        data: Value,
    },
    /// The values of one namespace written since the last entry.
    Delta {
        /// The namespace (a node id).
        namespace: String,
        /// `key -> value` pairs.
        data: Value,
    },
}

/// Persists cache snapshots and deltas under a scope (a run id or workflow name).
#[async_trait::async_trait]
pub trait CacheSnapshotStore: Send + Sync + 'static {
    /// Appends an entry to the scope's history.
    async fn append_snapshot(&self, scope: &str, entry: SnapshotEntry) -> Result<(), StoreError>;
    /// The latest full snapshot of the scope followed by every later delta, in order.
    async fn load_snapshot_chain(&self, scope: &str) -> Result<Vec<SnapshotEntry>, StoreError>;
}
