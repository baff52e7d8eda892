//! Seed 003, "Cache Operations / SQLite Storage Details" and "Recovery from
//! Failures": the blocks reach the store through `executor.sqlite_cache`
//! and open `"sqlite:workflows.db"` relative to the working directory, so
//! this test binary runs in a temporary directory of its own ([`enter`]).
//! Both blocks name the workflow `workflow_name`; the tests take turns
//! ([`LOCK`]) so that each sees its own runs.

use dagger::prelude::*;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

/// The directory every test of this binary works in.
static DIR: LazyLock<PathBuf> =
    LazyLock::new(|| tempfile::tempdir().map_or_else(|e| panic!("tempdir: {e}"), |d| d.keep()));

/// One test at a time: both use the workflow `workflow_name` in `workflows.db`.
static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Makes the temporary directory the working directory.
fn enter() {
    if let Err(e) = std::env::set_current_dir(&*DIR) {
        panic!("entering {}: {e}", DIR.display());
    }
}

/// Executions of `extract`.
static EXTRACTS: AtomicUsize = AtomicUsize::new(0);
/// Whether `load` fails (until the outage is over).
static OUTAGE: AtomicBool = AtomicBool::new(true);

/// Counts its executions.
struct Extract;

#[async_trait]
impl NodeAction for Extract {
    fn name(&self) -> &str {
        "extract"
    }

    async fn execute(&self, _ctx: &NodeCtx) -> Result<NodeOutput> {
        EXTRACTS.fetch_add(1, Ordering::SeqCst);
        Ok(NodeOutput::success(json!({ "rows": 3 })))
    }
}

/// Fails while [`OUTAGE`] is set.
struct Load;

#[async_trait]
impl NodeAction for Load {
    fn name(&self) -> &str {
        "load"
    }

    async fn execute(&self, ctx: &NodeCtx) -> Result<NodeOutput> {
        if OUTAGE.load(Ordering::SeqCst) {
            return Err("warehouse offline".into());
        }
        Ok(NodeOutput::success(json!({ "loaded": ctx.inputs["rows"] })))
    }
}

const WORKFLOW: &str = "name: workflow_name\nnodes:\n  - { id: extract, action: extract }\n  - { id: load, action: load, dependencies: [extract], inputs: [{ name: rows, reference: extract.rows }] }\n";

fn registry() -> ActionRegistry {
    let registry = ActionRegistry::new();
    registry.register(Arc::new(Extract));
    registry.register(Arc::new(Load));
    registry
}

/// "SQLite Storage Details", as written: a delta saved under the workflow's
/// name is part of its cache when loaded back; the execution tree is the
/// workflow's latest recorded run with its two nodes; the dump lists it.
#[tokio::test]
async fn sqlite_storage_details() -> Result<()> {
    let _turn = LOCK.lock().await;
    enter();
    OUTAGE.store(false, Ordering::SeqCst);
    let mut executor = DagExecutor::new(None, registry(), "sqlite:workflows.db").await?;
    executor.load_yaml_string(WORKFLOW)?;
    let report = execute_dag(&mut executor, &Cache::new(), "workflow_name")
        .await?
        .into_result()?;
    // The block uses `HashMap` without importing it.
    use std::collections::HashMap;
    // seed block
    // Database initialization (happens automatically)
    // When creating executor with "sqlite:workflows.db"
    // The following tables are created:
    // - artifacts: Cache data storage
    // - execution_trees: Workflow execution history
    // - snapshots: Point-in-time state captures
    // - execution_state: Active/pending execution tracking

    // Access the SQLite cache directly if needed
    let sqlite_cache = &executor.sqlite_cache;

    // Save incremental cache updates (delta)
    let mut delta = HashMap::new();
    let mut node_delta = HashMap::new();
    node_delta.insert(
        "output".to_string(),
        SerializableData::String("result".to_string()),
    );
    delta.insert("node1".to_string(), node_delta);
    sqlite_cache
        .save_cache_delta("workflow_name", delta)
        .await?;

    // Load execution tree for visualization
    if let Some(tree) = sqlite_cache.load_execution_tree("workflow_name").await? {
        println!("Execution tree has {} nodes", tree.nodes.len());
    }

    // Debug database contents
    sqlite_cache.debug_print_db().await?;
    // end of seed block
    let cache = executor.load_cache_snapshot("workflow_name").await?;
    assert_eq!(
        *get_value_from_cache(&cache, "node1", "output")?,
        json!("result")
    );
    let tree = executor
        .sqlite_cache
        .load_execution_tree("workflow_name")
        .await?
        .ok_or("no execution tree")?;
    assert_eq!(tree.run.run_id.as_str(), report.run_id);
    assert_eq!(tree.nodes.len(), 2);
    assert!(tree.nodes.iter().all(|n| n.state == NodeStatus::Completed));
    let dump = executor.sqlite_cache.debug_dump().await?;
    assert!(
        dump.contains(&format!("run {} (workflow_name): Completed", report.run_id)),
        "{dump}"
    );
    assert!(dump.contains("node load: Completed"), "{dump}");
    assert!(
        executor
            .sqlite_cache
            .load_execution_tree("never_ran")
            .await?
            .is_none()
    );
    Ok(())
}

/// "Recovery from Failures": a run stopped by a failure (`on_failure:
/// pause`) is left unfinished in `workflows.db`. A new executor on the same
/// database, which has not loaded the workflow, finds the active run (as
/// the set-up checks first) and `execute_static_dag` resumes it: `extract` is not run again, `load`
/// runs with `extract`'s recorded output and the run completes.
#[tokio::test]
#[allow(unused_variables, unused_mut)] // the guide's unused `state`, `mut executor`
async fn recovery_from_failures() -> Result<()> {
    let _turn = LOCK.lock().await;
    enter();
    OUTAGE.store(true, Ordering::SeqCst);
    let config = DagConfig {
        on_failure: OnFailure::Pause,
        ..DagConfig::default()
    };
    let registry = registry();
    let first_run = {
        let mut before = DagExecutor::new(
            Some(config.clone()),
            registry.clone(),
            "sqlite:workflows.db",
        )
        .await?;
        before.load_yaml_string(WORKFLOW)?;
        let cache = Cache::new();
        let first = execute_dag(&mut before, &cache, "workflow_name").await?;
        assert_eq!(first.status, RunStatus::Paused, "{first:?}");
        before.save_cache_snapshot("workflow_name", &cache).await?;
        first.run_id
    };
    let extracts = EXTRACTS.load(Ordering::SeqCst);
    OUTAGE.store(false, Ordering::SeqCst);
    let store = SqliteStore::open("sqlite:workflows.db").await?;
    let active = DagExecutor::new(None, ActionRegistry::new(), store)
        .await?
        .sqlite_cache
        .load_execution_state("workflow_name", "active")
        .await?;
    assert_eq!(
        active.map(|r| r.run_id.as_str().to_string()),
        Some(first_run.clone())
    );
    // seed block
    // After a crash or failure, recover state
    let mut executor = DagExecutor::new(
        Some(config),
        registry,
        "sqlite:workflows.db", // Same database
    )
    .await?;

    // Load the previous cache state
    let cache = executor.load_cache_snapshot("workflow_name").await?;

    // Check execution state
    if let Some(state) = executor
        .sqlite_cache
        .load_execution_state("workflow_name", "active")
        .await?
    {
        println!("Found active execution state");
    }

    // Resume execution from where it left off
    let (_tx, rx) = tokio::sync::oneshot::channel();
    let report = executor
        .execute_static_dag(
            "workflow_name",
            &cache, // Use recovered cache
            rx,
        )
        .await?;
    // end of seed block
    assert_eq!(report.run_id, first_run, "the same run continued");
    assert_eq!(report.completed_nodes(), 2);
    assert_eq!(
        EXTRACTS.load(Ordering::SeqCst),
        extracts,
        "extract is not run again"
    );
    assert_eq!(*get_value_from_cache(&cache, "extract", "rows")?, json!(3));
    assert_eq!(*get_value_from_cache(&cache, "load", "loaded")?, json!(3));
    assert!(
        executor
            .sqlite_cache
            .load_execution_state("workflow_name", "active")
            .await?
            .is_none(),
        "nothing is left unfinished"
    );
    assert!(matches!(
        executor
            .sqlite_cache
            .load_execution_state("workflow_name", "sleeping")
            .await,
        Err(DagError::Refused(_))
    ));
    Ok(())
}
