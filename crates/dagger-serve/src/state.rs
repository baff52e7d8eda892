//! What every handler shares: the stores, the loaded workflows, the tokens
//! and the runs this process is resuming.

use dagger_coord::CancellationToken;
use dagger_core::Stores;
use dagger_dag_flow::{ActionRegistry, WorkflowDef};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

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
    pub(crate) app_data: Option<Arc<dyn std::any::Any + Send + Sync>>,
    pub(crate) tasks: Option<Arc<dyn dagger_core::store::TaskStore>>,
    pub(crate) messages: Option<Arc<dyn dagger_core::store::MessageLog>>,
    pub(crate) csrf: String,
    pub(crate) auth_token: Option<String>,
    pub(crate) restrict_host: bool,
    pub(crate) live_interval: Duration,
    /// The lease this process holds on runs it resumes (`None`: the coordinator's default).
    pub(crate) run_lease: Option<Duration>,
    /// Runs this process resumes.
    pub(crate) resumes: Arc<Resumes>,
    /// Why the last resume of a run by this process failed before it ran.
    pub(crate) resume_errors: Mutex<HashMap<String, String>>,
    /// Set to true when the server shuts down (live streams then end).
    pub(crate) stopping: tokio::sync::watch::Sender<bool>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl AppState {
    /// Whether this process is resuming `run_id`.
    pub(crate) fn is_resuming(&self, run_id: &str) -> bool {
        lock(&self.resumes.running).contains_key(run_id)
    }

    /// Records (or clears) why resuming `run_id` failed.
    pub(crate) fn set_resume_error(&self, run_id: &str, error: Option<String>) {
        let mut map = lock(&self.resume_errors);
        match error {
            Some(e) => map.insert(run_id.to_string(), e),
            None => map.remove(run_id),
        };
    }

    /// Why the last resume of `run_id` by this process failed, if it did.
    pub(crate) fn resume_error(&self, run_id: &str) -> Option<String> {
        lock(&self.resume_errors).get(run_id).cloned()
    }
}

/// The runs this process executes (resumed or started here), each with the
/// token that cancels it.
#[derive(Default)]
pub(crate) struct Resumes {
    running: Mutex<HashMap<String, CancellationToken>>,
    ended: Notify,
}

impl Resumes {
    /// Registers a resume of `run_id`: the token cancels it, the guard
    /// unregisters it when dropped. `None` if `run_id` is already resumed here.
    pub(crate) fn start(
        self: &Arc<Self>,
        run_id: &str,
    ) -> Option<(CancellationToken, ResumeGuard)> {
        let mut map = lock(&self.running);
        if map.contains_key(run_id) {
            return None;
        }
        let token = CancellationToken::new();
        map.insert(run_id.to_string(), token.clone());
        let guard = ResumeGuard {
            resumes: self.clone(),
            run_id: run_id.to_string(),
        };
        Some((token, guard))
    }

    /// Cancels every resume and waits until all have ended.
    pub(crate) async fn stop_all(&self) {
        for token in lock(&self.running).values() {
            token.cancel();
        }
        loop {
            let ended = self.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if lock(&self.running).is_empty() {
                return;
            }
            ended.await;
        }
    }
}

/// Unregisters a resume when dropped (also when the resume task panics).
pub(crate) struct ResumeGuard {
    resumes: Arc<Resumes>,
    run_id: String,
}

impl Drop for ResumeGuard {
    fn drop(&mut self) {
        lock(&self.resumes.running).remove(&self.run_id);
        self.resumes.ended.notify_waiters();
    }
}
