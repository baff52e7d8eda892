//! In-memory implementations of every store trait, for tests and for runs
//! that need no persistence.

mod message;
mod retention;
mod run;
mod schedule;
mod task;

use parking_lot::Mutex;

/// An in-memory store. Cheap to create; everything is lost on drop.
#[derive(Default)]
pub struct MemoryStore {
    runs: Mutex<run::RunTables>,
    tasks: Mutex<task::TaskTables>,
    messages: Mutex<message::MessageTables>,
    schedules: Mutex<schedule::ScheduleTable>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}
