//! What every handler shares: the stores, the loaded workflows, the tokens
//! and the runs this process is resuming.

use dagger_core::Stores;
use dagger_dag_flow::{ActionRegistry, WorkflowDef};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Workflow definitions read from a directory, with the files that failed.
#[derive(Debug, Clone, Default)]
pub struct WorkflowCatalog {
    /// Valid definitions, by file name order.
    pub workflows: Vec<WorkflowDef>,
    /// Files that did not load, each with its problems (`file:line:col: message`).
    pub problems: Vec<(String, Vec<String>)>,
}

impl WorkflowCatalog {
    /// The definition named `name`.
    pub fn get(&self, name: &str) -> Option<&WorkflowDef> {
        self.workflows.iter().find(|w| w.name == name)
    }
}

/// Shared state of the handlers.
pub(crate) struct AppState {
    pub(crate) stores: Stores,
    pub(crate) catalog: WorkflowCatalog,
    pub(crate) registry: ActionRegistry,
    pub(crate) csrf: String,
    pub(crate) auth_token: Option<String>,
    pub(crate) restrict_host: bool,
    pub(crate) live_interval: Duration,
    /// Runs being resumed by this process (a second resume is refused).
    pub(crate) resuming: Arc<Mutex<HashSet<String>>>,
    /// Why the last resume of a run by this process failed before it ran.
    pub(crate) resume_errors: Mutex<HashMap<String, String>>,
}

impl AppState {
    /// Marks `run_id` as being resumed; false if it already was.
    pub(crate) fn start_resume(&self, run_id: &str) -> bool {
        match self.resuming.lock() {
            Ok(mut set) => set.insert(run_id.to_string()),
            Err(poisoned) => poisoned.into_inner().insert(run_id.to_string()),
        }
    }

    /// Records (or clears) why resuming `run_id` failed.
    pub(crate) fn set_resume_error(&self, run_id: &str, error: Option<String>) {
        let mut map = match self.resume_errors.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        match error {
            Some(e) => map.insert(run_id.to_string(), e),
            None => map.remove(run_id),
        };
    }

    /// Why the last resume of `run_id` by this process failed, if it did.
    pub(crate) fn resume_error(&self, run_id: &str) -> Option<String> {
        match self.resume_errors.lock() {
            Ok(m) => m.get(run_id).cloned(),
            Err(poisoned) => poisoned.into_inner().get(run_id).cloned(),
        }
    }

    /// Whether this process is resuming `run_id`.
    pub(crate) fn is_resuming(&self, run_id: &str) -> bool {
        match self.resuming.lock() {
            Ok(set) => set.contains(run_id),
            Err(poisoned) => poisoned.into_inner().contains(run_id),
        }
    }
}

/// Forgets a resume when dropped (also when the resume task panics).
pub(crate) struct ResumeGuard {
    pub(crate) set: Arc<Mutex<HashSet<String>>>,
    pub(crate) run_id: String,
}

impl Drop for ResumeGuard {
    fn drop(&mut self) {
        match self.set.lock() {
            Ok(mut set) => set.remove(&self.run_id),
            Err(poisoned) => poisoned.into_inner().remove(&self.run_id),
        };
    }
}
