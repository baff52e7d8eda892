//! [`ArtifactStore`] over Postgres: content-addressed (BLAKE3) blobs of any
//! size in the `artifacts` bytea table. Every read checks the size and the
//! hash, so a row changed behind the store's back is reported, not returned.
//!
//! Storing bytes that are already there marks the row (`reused_at`), which
//! `Retention::prune` respects (see `crate::prune::ARTIFACT_GRACE_MS`).

use super::PostgresStore;
use super::conn::wide;
use dagger_core::StoreError;
use dagger_core::store::{ArtifactId, ArtifactStore};

/// Inserts an artifact row (`$1` id, `$2` size, `$3` bytes, `$4` time)
/// unless it is there already.
pub(crate) const INSERT_ARTIFACT: &str = "INSERT INTO artifacts (artifact_id, size, data, \
     created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";

#[async_trait::async_trait]
impl ArtifactStore for PostgresStore {
    async fn put_artifact(&self, bytes: Vec<u8>) -> Result<ArtifactId, StoreError> {
        let id = ArtifactId::of(&bytes);
        let key = id.clone();
        let size = wide(bytes.len());
        self.with_conn(move |c| {
            // The insert, or the existing row's reuse mark, in one round
            // trip; the mark (server clock) is refreshed at most once per
            // `REUSE_MARK_MS`, so storing a popular output again writes
            // nothing most of the time.
            let put = c.stmts.get(
                &mut c.client,
                "WITH ins AS ( \
                   INSERT INTO artifacts (artifact_id, size, data, created_at) \
                   VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING 1) \
                 SELECT EXISTS (SELECT 1 FROM ins), \
                   (SELECT COALESCE(reused_at, 0) FROM artifacts WHERE artifact_id = $1), \
                   (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
            )?;
            let mark = c.stmts.get(
                &mut c.client,
                "UPDATE artifacts SET reused_at = \
                   (extract(epoch FROM clock_timestamp()) * 1000)::bigint \
                 WHERE artifact_id = $1",
            )?;
            // A row removed by a prune between the two statements is put
            // again (a prune does not remove it twice within its grace).
            for _ in 0..3 {
                let row = c.client.query_one(
                    &put,
                    &[&key.as_str(), &size, &bytes, &dagger_core::now_millis()],
                )?;
                let inserted: bool = row.try_get(0)?;
                let reused_at: Option<i64> = row.try_get(1)?;
                let now: i64 = row.try_get(2)?;
                if inserted
                    || reused_at
                        .is_some_and(|at| at >= now.saturating_sub(crate::prune::REUSE_MARK_MS))
                {
                    return Ok(());
                }
                if c.client.execute(&mark, &[&key.as_str()])? == 1 {
                    return Ok(());
                }
            }
            Err(StoreError::Conflict(format!(
                "artifact `{key}` was removed three times while being stored"
            ))
            .into())
        })
        .await?;
        Ok(id)
    }

    async fn get_artifact(&self, id: &ArtifactId) -> Result<Vec<u8>, StoreError> {
        let id = id.clone();
        let place = format!("{} (artifacts table)", self.location());
        self.with_conn(move |c| {
            let stmt = c.stmts.get(
                &mut c.client,
                "SELECT size, data FROM artifacts WHERE artifact_id = $1",
            )?;
            let Some(row) = c.client.query_opt(&stmt, &[&id.as_str()])? else {
                return Err(StoreError::MissingArtifact {
                    id: id.to_string(),
                    path: place.clone(),
                }
                .into());
            };
            let size: i64 = row.try_get(0)?;
            let bytes: Vec<u8> = row.try_get(1)?;
            let corrupt = |reason: String| StoreError::CorruptArtifact {
                id: id.to_string(),
                path: place.clone(),
                reason,
            };
            if wide(bytes.len()) != size {
                return Err(corrupt(format!(
                    "{} bytes instead of the {size} recorded",
                    bytes.len()
                ))
                .into());
            }
            let actual = ArtifactId::of(&bytes);
            if actual != id {
                return Err(corrupt(format!("content hashes to {actual}")).into());
            }
            Ok(bytes)
        })
        .await
    }
}
