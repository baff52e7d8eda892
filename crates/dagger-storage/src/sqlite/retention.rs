//! [`Retention`] over SQLite: the shared plan in `crate::prune`, in one
//! write transaction on the writer thread. Artifact files of removed
//! artifacts are deleted once the transaction committed.

use crate::prune;
use crate::sqlite::SqliteStore;
use dagger_core::StoreError;
use dagger_core::store::{PruneReport, Retention};
use rusqlite::Transaction;
use std::path::PathBuf;

fn drop_temp(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    for t in prune::TEMP_TABLES {
        tx.execute_batch(&format!("DROP TABLE IF EXISTS temp.{t}"))?;
    }
    Ok(())
}

fn run(
    tx: &Transaction<'_>,
    cutoff_ms: i64,
    dry_run: bool,
) -> rusqlite::Result<(PruneReport, Vec<PathBuf>)> {
    drop_temp(tx)?;
    for sql in prune::setup(cutoff_ms, "CREATE TEMP TABLE", "") {
        tx.execute_batch(&sql)?;
    }
    let mut files = Vec::new();
    if !dry_run {
        let mut stmt = tx.prepare(
            "SELECT file_path FROM artifacts WHERE file_path IS NOT NULL \
             AND artifact_id IN (SELECT artifact_id FROM gc_artifacts)",
        )?;
        let paths = stmt.query_map([], |r| r.get::<_, String>(0))?;
        for p in paths {
            files.push(PathBuf::from(p?));
        }
    }
    let mut report = PruneReport::default();
    for step in prune::steps(cutoff_ms, false) {
        let n = if dry_run {
            tx.query_row(&step.count(), [], |r| r.get::<_, i64>(0))?
        } else {
            i64::try_from(tx.execute(&step.delete(), [])?).unwrap_or(i64::MAX)
        };
        if let Some(field) = step.count {
            *field(&mut report) += u64::try_from(n).unwrap_or(0);
        }
    }
    drop_temp(tx)?;
    Ok((report, files))
}

#[async_trait::async_trait]
impl Retention for SqliteStore {
    async fn prune(&self, cutoff_ms: i64, dry_run: bool) -> Result<PruneReport, StoreError> {
        let store = self.clone();
        let (report, files) = self
            .write_isolated(
                move |tx| run(tx, cutoff_ms, dry_run).map_err(|e| store.map_err(e)),
                crate::sqlite::Isolation::Savepoint,
            )
            .await?;
        let dir = self.artifact_dir().to_path_buf();
        for file in files {
            let path = dir.join(file);
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), error = %e,
                    "gc: could not remove the file of a pruned artifact");
            }
        }
        Ok(report)
    }
}
