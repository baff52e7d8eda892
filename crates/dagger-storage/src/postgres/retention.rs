//! [`Retention`] over Postgres: the shared plan in `crate::prune`, with the
//! node work queue, in one transaction (temporary tables dropped at commit).
//! Concurrent prunes of one schema wait for each other (a transaction-scoped
//! advisory lock), so workers pruning periodically never deadlock.

use super::PostgresStore;
use crate::prune;
use dagger_core::StoreError;
use dagger_core::store::{PruneReport, Retention};

#[async_trait::async_trait]
impl Retention for PostgresStore {
    async fn prune(&self, cutoff_ms: i64, dry_run: bool) -> Result<PruneReport, StoreError> {
        self.with_conn(move |c| {
            let mut tx = c.client.transaction()?;
            // Prunes of one schema take turns (several workers pruning
            // periodically would otherwise delete the same rows in whatever
            // order their scans meet them, and could deadlock).
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtext(current_schema() || ' dagger prune'))",
                &[],
            )?;
            for sql in prune::setup(cutoff_ms, "CREATE TEMP TABLE", " ON COMMIT DROP") {
                tx.batch_execute(&sql)?;
            }
            let mut report = PruneReport::default();
            for step in prune::steps(cutoff_ms, true) {
                let n = if dry_run {
                    u64::try_from(tx.query_one(&step.count(), &[])?.get::<_, i64>(0)).unwrap_or(0)
                } else {
                    tx.execute(&step.delete(), &[])?
                };
                if let Some(field) = step.count {
                    *field(&mut report) += n;
                }
            }
            if dry_run {
                tx.rollback()?;
            } else {
                tx.commit()?;
            }
            Ok(report)
        })
        .await
    }
}
