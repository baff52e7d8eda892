//! The one row codec of both backends: each `*Row` is a record as its
//! table's columns hold it (statuses and JSON as text, timestamps as
//! milliseconds, ids as text), with `encode` from and `decode` to the
//! `dagger-core` record. The SQLite (`crate::sqlite`) and Postgres
//! (`crate::postgres`) modules only move rows in and out of their database.

pub(crate) mod run;
