//! `schedule_states` rows: the spec as JSON text.

use crate::error::decode;
use dagger_core::StoreError;
use dagger_core::store::ScheduleRecord;
use serde_json::Value;

/// A row as read, before its spec is parsed.
pub(crate) type Row = (String, Option<String>, Option<String>, Option<bool>, i64);

/// A row's record; its `spec` parsed from JSON.
pub(crate) fn record(
    (name, workflow, spec, paused, updated_at): Row,
) -> Result<ScheduleRecord, StoreError> {
    let spec = spec
        .map(|text| serde_json::from_str::<Value>(&text))
        .transpose()
        .map_err(|e| decode(format!("stored schedule `{name}`"), e))?;
    Ok(ScheduleRecord {
        name,
        workflow,
        spec,
        paused,
        updated_at,
    })
}
