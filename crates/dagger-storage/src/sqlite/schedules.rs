//! [`ScheduleStore`] over SQLite: the `schedule_states` table.

use crate::rows::schedule::{Row, record};
use crate::sqlite::SqliteStore;
use dagger_core::StoreError;
use dagger_core::store::{ScheduleRecord, ScheduleStore};
use rusqlite::{OptionalExtension, params};
use serde_json::Value;

#[async_trait::async_trait]
impl ScheduleStore for SqliteStore {
    async fn list_schedules(&self) -> Result<Vec<ScheduleRecord>, StoreError> {
        let store = self.clone();
        let rows: Vec<Row> = self
            .read(move |c| {
                c.prepare_cached(
                    "SELECT name, workflow, spec, paused, updated_at FROM schedule_states \
                     ORDER BY name",
                )
                .and_then(|mut s| {
                    s.query_map([], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })?
                    .collect::<Result<Vec<Row>, _>>()
                })
                .map_err(|e| store.map_err(e))
            })
            .await?;
        rows.into_iter().map(record).collect()
    }

    async fn set_schedule_paused(
        &self,
        name: &str,
        paused: bool,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let name = name.to_string();
        let store = self.clone();
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO schedule_states (name, paused, updated_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, \
                 updated_at = excluded.updated_at",
                params![name, paused, now_ms],
            )
            .map(drop)
            .map_err(|e| store.map_err(e))
        })
        .await
    }

    async fn add_schedule(
        &self,
        name: &str,
        workflow: &str,
        spec: Value,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let (name, workflow, spec) = (name.to_string(), workflow.to_string(), spec.to_string());
        let store = self.clone();
        self.write(move |tx| {
            let changed = tx
                .execute(
                    "INSERT INTO schedule_states (name, workflow, spec, updated_at) \
                     VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (name) DO UPDATE SET workflow = excluded.workflow, \
                     spec = excluded.spec, updated_at = excluded.updated_at \
                     WHERE schedule_states.spec IS NULL",
                    params![name, workflow, spec, now_ms],
                )
                .map_err(|e| store.map_err(e))?;
            if changed == 0 {
                return Err(StoreError::AlreadyExists {
                    entity: "schedule",
                    id: name,
                });
            }
            Ok(())
        })
        .await
    }

    async fn delete_schedule(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_string();
        let store = self.clone();
        self.write(move |tx| {
            tx.query_row(
                "DELETE FROM schedule_states WHERE name = ?1 AND spec IS NOT NULL RETURNING name",
                params![name],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map(|row| row.is_some())
            .map_err(|e| store.map_err(e))
        })
        .await
    }
}
