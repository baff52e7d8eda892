//! [`Retention`] in memory: runs, task jobs and message logs pruned under
//! their locks, one after the other.

use super::{MemoryStore, message, run};
use crate::error::StoreError;
use crate::store::{PruneReport, Retention};

#[async_trait::async_trait]
impl Retention for MemoryStore {
    async fn prune(&self, cutoff_ms: i64, dry_run: bool) -> Result<PruneReport, StoreError> {
        let mut report = PruneReport::default();
        run::prune(&mut self.runs.lock(), cutoff_ms, dry_run, &mut report);
        self.tasks.lock().prune(cutoff_ms, dry_run, &mut report);
        report.messages = message::prune(&mut self.messages.lock(), cutoff_ms, dry_run);
        Ok(report)
    }
}
