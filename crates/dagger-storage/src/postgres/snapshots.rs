//! [`CacheSnapshotStore`] over Postgres: the `cache_snapshots` table, one
//! ordered history per scope. Appending a full snapshot drops the entries
//! before it in the same transaction, so a scope's history stays as small
//! as its last full snapshot and the deltas after it.

use super::PostgresStore;
use super::conn::{PgFail, decode};
use dagger_core::StoreError;
use dagger_core::store::{CacheSnapshotStore, SnapshotEntry};

const FULL: &str = "full";
const DELTA: &str = "delta";

#[async_trait::async_trait]
impl CacheSnapshotStore for PostgresStore {
    async fn append_snapshot(&self, scope: &str, entry: SnapshotEntry) -> Result<(), StoreError> {
        let (kind, namespace, data) = match &entry {
            SnapshotEntry::Full { data } => (FULL, None, data),
            SnapshotEntry::Delta { namespace, data } => (DELTA, Some(namespace.clone()), data),
        };
        let data = serde_json::to_string(data)
            .map_err(|e| decode(format!("cache snapshot of `{scope}`"), e))?;
        let scope = scope.to_string();
        self.with_conn(move |c| {
            let insert = c.stmts.get(
                &mut c.client,
                "INSERT INTO cache_snapshots (scope, kind, namespace, data, created_at) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING seq",
            )?;
            let prune = c.stmts.get(
                &mut c.client,
                "DELETE FROM cache_snapshots WHERE scope = $1 AND seq < $2",
            )?;
            let mut tx = c.client.transaction()?;
            let seq: i64 = tx
                .query_one(
                    &insert,
                    &[&scope, &kind, &namespace, &data, &dagger_core::now_millis()],
                )?
                .try_get(0)?;
            if kind == FULL {
                tx.execute(&prune, &[&scope, &seq])?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn load_snapshot_chain(&self, scope: &str) -> Result<Vec<SnapshotEntry>, StoreError> {
        let key = scope.to_string();
        self.with_conn(move |c| {
            let stmt = c.stmts.get(
                &mut c.client,
                "SELECT seq, kind, namespace, data FROM cache_snapshots \
                 WHERE scope = $1 AND seq >= COALESCE( \
                   (SELECT MAX(seq) FROM cache_snapshots WHERE scope = $1 AND kind = 'full'), 0) \
                 ORDER BY seq",
            )?;
            c.client
                .query(&stmt, &[&key])?
                .iter()
                .map(|row| {
                    let seq: i64 = row.try_get(0)?;
                    let kind: String = row.try_get(1)?;
                    let namespace: Option<String> = row.try_get(2)?;
                    let data: String = row.try_get(3)?;
                    let what = format!("cache snapshot {seq} of `{key}`");
                    let data = serde_json::from_str(&data).map_err(|e| decode(&what, e))?;
                    match (kind.as_str(), namespace) {
                        (FULL, _) => Ok(SnapshotEntry::Full { data }),
                        (DELTA, Some(namespace)) => Ok(SnapshotEntry::Delta { namespace, data }),
                        (other, _) => Err(PgFail::Store(decode(
                            what,
                            format!("unknown entry kind `{other}` or delta without namespace"),
                        ))),
                    }
                })
                .collect()
        })
        .await
    }
}
