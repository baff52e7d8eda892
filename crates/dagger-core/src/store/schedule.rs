//! Schedule state kept in a store: whether a schedule is paused (overriding
//! its definition) and schedules added to the store rather than declared in
//! a workflow file (`dagger schedule add`). Every scheduler on the store
//! reads them at each tick.

use crate::error::StoreError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One schedule's row of the store: a paused override, a stored
/// definition, or both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleRecord {
    /// The schedule's name (unique among every schedule of the store's
    /// workflows).
    pub name: String,
    /// The workflow of a schedule added to the store; `None` for the paused
    /// override of a schedule declared in a workflow file.
    pub workflow: Option<String>,
    /// The definition of a schedule added to the store (the JSON of a
    /// `schedules:` entry, checked by the DAG Flow schedule loader before it
    /// was stored); `None` for a schedule declared in a file.
    pub spec: Option<Value>,
    /// Paused (`true`) or resumed (`false`) in the store, which overrides
    /// the definition's `paused:`; `None`: the definition decides.
    pub paused: Option<bool>,
    /// When the row last changed (ms since the epoch).
    pub updated_at: i64,
}

/// Schedule state shared by every scheduler of a store.
#[async_trait::async_trait]
pub trait ScheduleStore: Send + Sync + 'static {
    /// Every schedule row, ordered by name.
    async fn list_schedules(&self) -> Result<Vec<ScheduleRecord>, StoreError>;

    /// Records schedule `name` paused (`true`) or resumed (`false`),
    /// creating its row if it has none; `updated_at` is `now_ms`.
    async fn set_schedule_paused(
        &self,
        name: &str,
        paused: bool,
        now_ms: i64,
    ) -> Result<(), StoreError>;

    /// Stores schedule `name` of `workflow` with definition `spec`. A row
    /// holding only a paused override takes the definition and keeps the
    /// override; a stored definition of that name already is
    /// [`StoreError::AlreadyExists`].
    async fn add_schedule(
        &self,
        name: &str,
        workflow: &str,
        spec: Value,
        now_ms: i64,
    ) -> Result<(), StoreError>;

    /// Removes the stored schedule `name` (definition and paused override);
    /// whether there was one. A row holding only a paused override is not
    /// removed.
    async fn delete_schedule(&self, name: &str) -> Result<bool, StoreError>;
}
