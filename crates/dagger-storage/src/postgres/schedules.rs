//! [`ScheduleStore`] over Postgres: the `schedule_states` table.

use super::PostgresStore;
use crate::rows::schedule::record;
use dagger_core::StoreError;
use dagger_core::store::{ScheduleRecord, ScheduleStore};
use serde_json::Value;

#[async_trait::async_trait]
impl ScheduleStore for PostgresStore {
    async fn list_schedules(&self) -> Result<Vec<ScheduleRecord>, StoreError> {
        let rows = self
            .with_conn(|c| {
                let rows = c.client.query(
                    "SELECT name, workflow, spec, paused, updated_at FROM schedule_states \
                     ORDER BY name",
                    &[],
                )?;
                Ok(rows
                    .iter()
                    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
                    .collect::<Vec<_>>())
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
        self.with_conn(move |c| {
            c.client.execute(
                "INSERT INTO schedule_states (name, paused, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, \
                 updated_at = excluded.updated_at",
                &[&name, &paused, &now_ms],
            )?;
            Ok(())
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
        self.with_conn(move |c| {
            let changed = c.client.execute(
                "INSERT INTO schedule_states (name, workflow, spec, updated_at) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (name) DO UPDATE SET workflow = excluded.workflow, \
                 spec = excluded.spec, updated_at = excluded.updated_at \
                 WHERE schedule_states.spec IS NULL",
                &[&name, &workflow, &spec, &now_ms],
            )?;
            if changed == 0 {
                return Err(StoreError::AlreadyExists {
                    entity: "schedule",
                    id: name.clone(),
                }
                .into());
            }
            Ok(())
        })
        .await
    }

    async fn delete_schedule(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_string();
        self.with_conn(move |c| {
            let n = c.client.execute(
                "DELETE FROM schedule_states WHERE name = $1 AND spec IS NOT NULL",
                &[&name],
            )?;
            Ok(n > 0)
        })
        .await
    }
}
