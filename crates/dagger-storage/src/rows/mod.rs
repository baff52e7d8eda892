//! The one row codec of both backends: each `*Row` is a record as its
//! table's columns hold it (statuses and JSON as text, timestamps as
//! milliseconds, ids as text), with `encode` from and `decode` to the
//! `dagger-core` record. The SQLite (`crate::sqlite`) and Postgres
//! (`crate::postgres`) modules only move rows in and out of their database.

pub(crate) mod attempt;
pub(crate) mod message;
pub(crate) mod run;
pub(crate) mod schedule;
pub(crate) mod task;

use crate::error::decode;
use dagger_core::StoreError;

/// A stored integer as the narrower (or unsigned) type of its record field;
/// a value out of range is a decode error naming `what`.
pub(crate) fn narrow<T: TryFrom<i64>>(what: &str, v: i64) -> Result<T, StoreError> {
    T::try_from(v).map_err(|_| decode(what, format!("{v} is out of range")))
}

/// `v` as a stored integer (`INTEGER` / `bigint`), saturating: counts,
/// offsets and tokens never come near the limit.
pub(crate) fn wide(v: impl TryInto<i64>) -> i64 {
    v.try_into().unwrap_or(i64::MAX)
}

/// A value as the JSON text of a column.
pub(crate) fn to_json(what: &str, value: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| decode(what, e))
}

/// A column's JSON text as a value.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(
    what: &str,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| decode(what, e))
}
