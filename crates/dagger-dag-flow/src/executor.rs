//! The DAG executor: loaded workflow definitions, configuration, the action
//! registry and the stores runs are recorded in. The coordinator
//! (`dagger-coord`) runs workflows held here.

use crate::action::ActionRegistry;
use crate::config::DagConfig;
use crate::error::DagError;
use crate::last_run::LastRun;
use crate::model::{DagMetadata, WorkflowDef};
use crate::store_view::ExecutorStore;
use dagger_core::store::SnapshotEntry;
use dagger_core::{Cache, Stores};
use parking_lot::RwLock;
use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// A loaded workflow and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedWorkflow {
    /// The validated definition.
    pub def: Arc<WorkflowDef>,
    /// The file it was read from, or `<string>`.
    pub source: String,
}

/// Holds workflow definitions, configuration, actions and stores. Cloning
/// is cheap: definitions, actions and stores are shared.
#[derive(Clone)]
pub struct DagExecutor {
    config: DagConfig,
    registry: ActionRegistry,
    /// The store runs are recorded in, under the DAG Flow guide's name
    /// (whatever the backend): `executor.sqlite_cache.load_execution_tree(..)`.
    /// [`Self::stores`] is the same stores.
    pub sqlite_cache: ExecutorStore,
    workflows: BTreeMap<String, LoadedWorkflow>,
    app_data: Option<Arc<dyn Any + Send + Sync>>,
    /// The latest run of each workflow, shared by clones.
    pub(crate) last_runs: Arc<RwLock<LastRuns>>,
}

/// The latest runs an executor made, by workflow.
#[derive(Debug, Default)]
pub(crate) struct LastRuns {
    pub(crate) latest: Option<String>,
    pub(crate) by_workflow: BTreeMap<String, Arc<LastRun>>,
}

impl fmt::Debug for DagExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DagExecutor")
            .field("config", &self.config)
            .field("registry", &self.registry)
            .field("stores", self.stores())
            .field("workflows", &self.workflows.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Where an executor records runs: stores already opened, or a location
/// [`DagExecutor::new`] opens (`"sqlite:workflows.db"`, `"sqlite::memory:"`).
#[derive(Debug, Clone)]
pub enum StoreSource {
    /// Opened stores (`Stores::memory()`, a `SqliteStore`, `PostgresStore::stores()`).
    Stores(Stores),
    /// A SQLite location: `sqlite:<path>`, `sqlite://<path>` or `sqlite::memory:`.
    Location(String),
}

impl StoreSource {
    /// The stores, opening the location if needed.
    pub async fn open(self) -> Result<Stores, DagError> {
        match self {
            Self::Stores(stores) => Ok(stores),
            #[cfg(feature = "sqlite")]
            Self::Location(location) => {
                Ok(dagger_storage::SqliteStore::open(&location).await?.into())
            }
            #[cfg(not(feature = "sqlite"))]
            Self::Location(location) => {
                Err(DagError::Store(dagger_core::StoreError::InvalidLocation {
                    location,
                    reason: "built without the `sqlite` feature; pass opened `Stores`".into(),
                }))
            }
        }
    }
}

impl From<Stores> for StoreSource {
    fn from(stores: Stores) -> Self {
        Self::Stores(stores)
    }
}

#[cfg(feature = "sqlite")]
impl From<dagger_storage::SqliteStore> for StoreSource {
    fn from(store: dagger_storage::SqliteStore) -> Self {
        Self::Stores(store.into())
    }
}

impl From<&str> for StoreSource {
    fn from(location: &str) -> Self {
        Self::Location(location.to_string())
    }
}

impl From<String> for StoreSource {
    fn from(location: String) -> Self {
        Self::Location(location)
    }
}

impl From<&String> for StoreSource {
    fn from(location: &String) -> Self {
        Self::Location(location.clone())
    }
}

impl DagExecutor {
    /// An executor with `config` (default when `None`), the actions of
    /// `registry` (an [`ActionRegistry`] or an `Arc` of one), recording runs
    /// in `stores`: opened stores (`Stores::memory()`, a `SqliteStore`) or a
    /// SQLite location it opens (`"sqlite:workflows.db"`, `"sqlite::memory:"`).
    pub async fn new(
        config: Option<DagConfig>,
        registry: impl Into<ActionRegistry>,
        stores: impl Into<StoreSource>,
    ) -> Result<Self, DagError> {
        let config = config.unwrap_or_default();
        if let Some((field, message)) = config.problems().into_iter().next() {
            return Err(DagError::InvalidConfig { field, message });
        }
        Ok(Self {
            config,
            registry: registry.into(),
            sqlite_cache: ExecutorStore::new(stores.into().open().await?),
            workflows: BTreeMap::new(),
            app_data: None,
            last_runs: Arc::default(),
        })
    }

    /// Makes `data` available to actions through [`crate::NodeCtx::app_data`].
    pub fn with_app_data<T: Any + Send + Sync>(mut self, data: T) -> Self {
        self.app_data = Some(Arc::new(data));
        self
    }

    /// [`Self::with_app_data`] for data already shared (type-erased), e.g.
    /// the same value handed to several executors.
    pub fn with_shared_app_data(mut self, data: Arc<dyn Any + Send + Sync>) -> Self {
        self.app_data = Some(data);
        self
    }

    /// The application data, shared.
    pub fn app_data(&self) -> Option<Arc<dyn Any + Send + Sync>> {
        self.app_data.clone()
    }

    /// The executor's configuration (before a workflow's overrides).
    pub fn config(&self) -> &DagConfig {
        &self.config
    }

    /// Replaces the executor's configuration.
    pub fn set_config(&mut self, config: DagConfig) -> Result<(), DagError> {
        if let Some((field, message)) = config.problems().into_iter().next() {
            return Err(DagError::InvalidConfig { field, message });
        }
        self.config = config;
        Ok(())
    }

    /// The configuration a run of `workflow` uses: the executor's with the workflow's overrides.
    pub fn effective_config(&self, workflow: &WorkflowDef) -> Result<DagConfig, DagError> {
        let config = match &workflow.config {
            Some(o) => o.apply(&self.config),
            None => self.config.clone(),
        };
        if let Some((field, message)) = config.problems().into_iter().next() {
            return Err(DagError::InvalidConfig { field, message });
        }
        Ok(config)
    }

    /// The action registry.
    pub fn registry(&self) -> &ActionRegistry {
        &self.registry
    }

    /// The stores runs are recorded in.
    pub fn stores(&self) -> &Stores {
        self.sqlite_cache.stores()
    }

    /// The same executor recording in `stores` instead.
    pub fn with_stores(mut self, stores: impl Into<Stores>) -> Self {
        self.sqlite_cache = ExecutorStore::new(stores.into());
        self
    }

    /// Adds an already validated workflow. Replaces one of the same name from
    /// the same source; a different source is a [`DagError::DuplicateDag`].
    pub fn insert_workflow(
        &mut self,
        def: WorkflowDef,
        source: impl Into<String>,
    ) -> Result<(), DagError> {
        let source = source.into();
        if let Some(existing) = self.workflows.get(&def.name)
            && existing.source != source
        {
            return Err(DagError::DuplicateDag {
                name: def.name.clone(),
                existing: existing.source.clone(),
            });
        }
        self.workflows.insert(
            def.name.clone(),
            LoadedWorkflow {
                def: Arc::new(def),
                source,
            },
        );
        Ok(())
    }

    /// The loaded workflow `name`.
    pub fn workflow(&self, name: &str) -> Result<&LoadedWorkflow, DagError> {
        self.workflows
            .get(name)
            .ok_or_else(|| DagError::UnknownDag(name.to_string()))
    }

    /// Names of every loaded workflow, sorted.
    pub fn list_dags(&self) -> Vec<String> {
        self.workflows.keys().cloned().collect()
    }

    /// Names of the loaded workflows that carry every one of `tags`.
    pub fn list_dags_by_tags(&self, tags: &[&str]) -> Vec<String> {
        self.workflows
            .values()
            .filter(|w| tags.iter().all(|t| w.def.tags.iter().any(|wt| wt == t)))
            .map(|w| w.def.name.clone())
            .collect()
    }

    /// Whether a workflow `name` is loaded.
    pub fn has_dag(&self, name: &str) -> bool {
        self.workflows.contains_key(name)
    }

    /// The metadata of workflow `name`.
    pub fn get_dag_metadata(&self, name: &str) -> Result<DagMetadata, DagError> {
        Ok(self.workflow(name)?.def.metadata())
    }

    /// Persists a full snapshot of `cache` under `scope` (a workflow name or run id).
    pub async fn save_cache_snapshot(&self, scope: &str, cache: &Cache) -> Result<(), DagError> {
        let entry = SnapshotEntry::Full {
            data: cache.to_json(),
        };
        self.stores()
            .snapshots
            .append_snapshot(scope, entry)
            .await?;
        Ok(())
    }

    /// A cache rebuilt from the latest snapshot of `scope` and the deltas after it
    /// (empty when nothing was saved).
    pub async fn load_cache_snapshot(&self, scope: &str) -> Result<Cache, DagError> {
        let cache = Cache::new();
        for entry in self.stores().snapshots.load_snapshot_chain(scope).await? {
            match entry {
                SnapshotEntry::Full { data } => {
                    cache.merge_json(&data).map_err(|e| DagError::Snapshot {
                        scope: scope.to_string(),
                        reason: e.to_string(),
                    })?
                }
                SnapshotEntry::Delta { namespace, data } => cache.insert_object(&namespace, &data),
            }
        }
        Ok(cache)
    }
}

impl DagExecutor {
    /// Adds node `node_id` running `action` after `deps` to the loaded
    /// workflow `dag`, before it runs (to grow a *running* workflow, a hook
    /// answers `ExecutorCommand::AddNode`). Checked like a node of the file:
    /// a taken id is [`DagError::NodeAlreadyExists`], an unknown dependency
    /// [`DagError::DependencyNotFound`], an unregistered action or any other
    /// problem [`DagError::ValidationError`]; nothing is added then.
    pub fn add_node<D: Into<String>>(
        &mut self,
        dag: &str,
        node_id: impl Into<String>,
        action: impl Into<String>,
        deps: impl IntoIterator<Item = D>,
    ) -> Result<(), DagError> {
        let node = crate::model::NodeDef {
            id: node_id.into(),
            action: action.into(),
            dependencies: deps.into_iter().map(Into::into).collect(),
            ..crate::model::NodeDef::default()
        };
        let loaded = self
            .workflows
            .get_mut(dag)
            .ok_or_else(|| DagError::UnknownDag(dag.to_string()))?;
        if let Err(issues) =
            crate::validate::validate_added_nodes(&loaded.def, std::slice::from_ref(&node))
        {
            use crate::error::LoadIssueKind;
            for issue in &issues {
                match &issue.kind {
                    LoadIssueKind::DuplicateNodeId { id } => {
                        return Err(DagError::NodeAlreadyExists(id.clone()));
                    }
                    LoadIssueKind::MissingDependency { dependency, .. } => {
                        return Err(DagError::DependencyNotFound(dependency.clone()));
                    }
                    _ => {}
                }
            }
            let message = issues
                .iter()
                .map(|i| i.kind.to_string())
                .collect::<Vec<_>>()
                .join("; ");
            return Err(DagError::ValidationError(message));
        }
        if !self.registry.contains(&node.action) {
            return Err(DagError::ValidationError(format!(
                "node `{}`: action `{}` is not registered",
                node.id, node.action
            )));
        }
        Arc::make_mut(&mut loaded.def).nodes.push(node);
        Ok(())
    }
}
