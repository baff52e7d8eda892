//! Core types shared by every Dagger paradigm.
//!
//! This crate holds no I/O and no SQL: typed ids, the [`Cache`], the error
//! enums, the [`RetryPolicy`], status enums with their legal transitions, JSON
//! Schema validation, a DOT writer that always emits valid DOT, and the
//! storage traits with an in-memory implementation of each.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod cache;
pub mod dot;
pub mod error;
pub mod ids;
pub mod metrics;
pub mod resource;
pub mod retry;
pub mod schema;
pub mod status;
pub mod store;
pub mod trace_context;
pub mod unwind;

pub use cache::{
    Cache, CacheConfig, EvictionPolicy, InputSpec, get_value_from_cache, insert_value,
    load_cache_from_json, parse_input_from_name, serialize_cache_to_json,
    serialize_cache_to_prettyjson,
};
pub use dot::{DotWriter, escape_dot_id};
pub use error::{
    BoxError, CacheError, DaggerError, MetricsError, Permanent, SchemaError, StatusError,
    StoreError,
};
pub use ids::{JobId, MessageId, NodeId, RunId, TaskId};
pub use resource::{ResourceMetrics, ResourcePermit, ResourceTracker};
pub use retry::{BackoffStrategy, ErrorClass, Jitter, RetryPolicy};
pub use schema::{JsonSchema, SchemaViolation};
pub use status::{JobStatus, NodeStatus, RunStatus, TaskStatus};
pub use store::{Durability, Stores};
pub use unwind::{Panicked, catch_panic};

/// Milliseconds since the Unix epoch, the time unit of every stored record.
pub fn now_millis() -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
