//! [`ScheduleStore`] in memory: one map of rows by name.

use super::MemoryStore;
use crate::error::StoreError;
use crate::store::{ScheduleRecord, ScheduleStore};
use serde_json::Value;
use std::collections::BTreeMap;

/// The schedule rows, by name.
pub(super) type ScheduleTable = BTreeMap<String, ScheduleRecord>;

/// The row of `name`, created empty (no definition, no pause) if missing.
fn row_of<'a>(rows: &'a mut ScheduleTable, name: &str, now_ms: i64) -> &'a mut ScheduleRecord {
    rows.entry(name.to_string())
        .or_insert_with(|| ScheduleRecord {
            name: name.to_string(),
            workflow: None,
            spec: None,
            paused: None,
            updated_at: now_ms,
        })
}

#[async_trait::async_trait]
impl ScheduleStore for MemoryStore {
    async fn list_schedules(&self) -> Result<Vec<ScheduleRecord>, StoreError> {
        Ok(self.schedules.lock().values().cloned().collect())
    }

    async fn set_schedule_paused(
        &self,
        name: &str,
        paused: bool,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut rows = self.schedules.lock();
        let row = row_of(&mut rows, name, now_ms);
        row.paused = Some(paused);
        row.updated_at = now_ms;
        Ok(())
    }

    async fn add_schedule(
        &self,
        name: &str,
        workflow: &str,
        spec: Value,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut rows = self.schedules.lock();
        let row = row_of(&mut rows, name, now_ms);
        if row.spec.is_some() {
            return Err(StoreError::AlreadyExists {
                entity: "schedule",
                id: name.to_string(),
            });
        }
        row.workflow = Some(workflow.to_string());
        row.spec = Some(spec);
        row.updated_at = now_ms;
        Ok(())
    }

    async fn delete_schedule(&self, name: &str) -> Result<bool, StoreError> {
        let mut rows = self.schedules.lock();
        if rows.get(name).is_some_and(|r| r.spec.is_some()) {
            rows.remove(name);
            return Ok(true);
        }
        Ok(false)
    }
}
