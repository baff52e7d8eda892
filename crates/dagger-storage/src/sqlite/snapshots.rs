//! [`CacheSnapshotStore`] over SQLite: the `cache_snapshots` table, one
//! ordered history per scope. Appending a full snapshot drops the entries
//! before it, which no load can return any more, so the history of a long
//! run stays as small as its last full snapshot and the deltas after it.

use crate::error::decode;
use crate::sqlite::SqliteStore;
use dagger_core::StoreError;
use dagger_core::store::{CacheSnapshotStore, SnapshotEntry};
use rusqlite::params;

const FULL: &str = "full";
const DELTA: &str = "delta";

#[async_trait::async_trait]
impl CacheSnapshotStore for SqliteStore {
    async fn append_snapshot(&self, scope: &str, entry: SnapshotEntry) -> Result<(), StoreError> {
        let (kind, namespace, data) = match &entry {
            SnapshotEntry::Full { data } => (FULL, None, data),
            SnapshotEntry::Delta { namespace, data } => (DELTA, Some(namespace.clone()), data),
        };
        let data = serde_json::to_string(data)
            .map_err(|e| decode(format!("cache snapshot of `{scope}`"), e))?;
        let scope = scope.to_string();
        let store = self.error_mapper();
        self.write_durable(move |tx| {
            let sql = |e| store.map_err(e);
            let seq: i64 = tx
                .prepare_cached(
                    "INSERT INTO cache_snapshots (scope, seq, kind, namespace, data, created_at) \
                     SELECT ?1, COALESCE(MAX(seq), 0) + 1, ?2, ?3, ?4, ?5 \
                     FROM cache_snapshots WHERE scope = ?1 RETURNING seq",
                )
                .and_then(|mut s| {
                    s.query_row(
                        params![scope, kind, namespace, data, dagger_core::now_millis()],
                        |r| r.get(0),
                    )
                })
                .map_err(sql)?;
            if kind == FULL {
                tx.prepare_cached("DELETE FROM cache_snapshots WHERE scope = ?1 AND seq < ?2")
                    .and_then(|mut s| s.execute(params![scope, seq]))
                    .map_err(sql)?;
            }
            Ok(())
        })
        .await
    }

    async fn load_snapshot_chain(&self, scope: &str) -> Result<Vec<SnapshotEntry>, StoreError> {
        let key = scope.to_string();
        let store = self.error_mapper();
        let rows: Vec<(i64, String, Option<String>, String)> = self
            .read(move |c| {
                c.prepare_cached(
                    "SELECT seq, kind, namespace, data FROM cache_snapshots \
                     WHERE scope = ?1 AND seq >= COALESCE( \
                       (SELECT MAX(seq) FROM cache_snapshots WHERE scope = ?1 AND kind = 'full'), 0) \
                     ORDER BY seq",
                )
                .and_then(|mut s| {
                    s.query_map([&key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                        .collect()
                })
                .map_err(|e| store.map_err(e))
            })
            .await?;
        rows.into_iter()
            .map(|(seq, kind, namespace, data)| {
                let what = format!("cache snapshot {seq} of `{scope}`");
                let data = serde_json::from_str(&data).map_err(|e| decode(&what, e))?;
                match (kind.as_str(), namespace) {
                    (FULL, _) => Ok(SnapshotEntry::Full { data }),
                    (DELTA, Some(namespace)) => Ok(SnapshotEntry::Delta { namespace, data }),
                    (other, _) => Err(decode(
                        what,
                        format!("unknown entry kind `{other}` or delta without namespace"),
                    )),
                }
            })
            .collect()
    }
}
