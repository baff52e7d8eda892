//! Seed 003, "Quick Start" and "Setting Up the System": the blocks that build
//! an executor from a SQLite location (`"sqlite:workflows.db"`). They write
//! files relative to the working directory, so this test binary runs in a
//! temporary directory of its own ([`enter`]); the workflow files the
//! blocks load are written there.
//!
//! The Quick Start registers its action in a registry it never hands to the
//! executor (`Arc::new(Default::default())`, the "legacy registry"): that is
//! the process registry, which sees every registration of the process (see
//! `ActionRegistry`'s documentation and docs/seed-guide.md).

use dagger::prelude::*;
use std::path::PathBuf;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The directory every test of this binary works in, with the workflow
/// files the blocks load.
static DIR: LazyLock<PathBuf> = LazyLock::new(|| {
    let dir = tempfile::tempdir().map_or_else(|e| panic!("tempdir: {e}"), |d| d.keep());
    let files = [(
        "workflow.yaml",
        "name: my_workflow\nnodes:\n  - { id: first, action: my_action }\n  - { id: second, action: my_action, dependencies: [first] }\n",
    )];
    for (name, text) in files {
        if let Err(e) = std::fs::write(dir.join(name), text) {
            panic!("writing {name}: {e}");
        }
    }
    dir
});

/// Makes the temporary directory the working directory (the same one for
/// every test, so tests running in parallel agree).
fn enter() -> PathBuf {
    if let Err(e) = std::env::set_current_dir(&*DIR) {
        panic!("entering {}: {e}", DIR.display());
    }
    DIR.clone()
}

/// The Quick Start's action (it names `MyAction` without defining it).
struct MyAction;

#[async_trait]
impl NodeAction for MyAction {
    fn name(&self) -> &str {
        "my_action"
    }

    async fn execute(&self, ctx: &NodeCtx) -> Result<NodeOutput> {
        Ok(NodeOutput::success(json!({ "ran": ctx.node_id.as_str() })))
    }
}

/// Node starts the Quick Start's hook saw.
static STARTED: AtomicUsize = AtomicUsize::new(0);

/// The Quick Start's hook: counts node starts.
struct MyHook;

#[async_trait]
impl EventHook for MyHook {
    async fn handle(&self, _ctx: &HookContext, event: &ExecutionEvent) -> Vec<ExecutorCommand> {
        if matches!(event, ExecutionEvent::NodeStarted { .. }) {
            STARTED.fetch_add(1, Ordering::SeqCst);
        }
        vec![]
    }
}

mod quick_start {
    //! The Quick Start block: its `main`, renamed so the test can call it.
    use super::{MyAction, MyHook};
    use dagger::prelude::*;

    // seed block
    use dagger::coord::{
        ActionRegistry, Coordinator, EventHook, ExecutionEvent, ExecutorCommand, HookContext,
        NodeAction, NodeCtx, NodeOutput,
    };
    use dagger::dag_flow::{Cache, DagConfig, DagExecutor};
    use std::sync::Arc;
    use tokio::sync::oneshot;

    // #[tokio::main]
    #[allow(unused_must_use)] // the guide discards the run's report
    pub(crate) async fn main() -> Result<()> {
        // 1. Create action registry and register actions
        let registry = ActionRegistry::new();
        registry.register(Arc::new(MyAction));

        // 2. Create hooks for dynamic behavior
        let hooks = vec![Arc::new(MyHook) as Arc<dyn EventHook>];

        // 3. Create coordinator
        let coordinator = Coordinator::new(hooks, 100, 100);

        // 4. Create executor and load workflow
        let mut executor = DagExecutor::new(
            None,
            Arc::new(Default::default()), // Legacy registry (being phased out)
            "sqlite:workflows.db",
        )
        .await?;
        executor.load_yaml_file("workflow.yaml")?;

        // 5. Execute with coordinator
        let cache = Cache::new();
        let (_tx, rx) = oneshot::channel();
        coordinator
            .run_parallel(&mut executor, &cache, "my_workflow", "run_001", rx)
            .await?;

        Ok(())
    }
    // end of seed block

    /// The block's imports it does not use itself (the guide lists them for
    /// the reader's own actions and hooks).
    #[allow(dead_code)]
    type Unused = (
        Box<dyn NodeAction>,
        ExecutionEvent,
        ExecutorCommand,
        HookContext,
        NodeCtx,
        NodeOutput,
        DagConfig,
    );
}

/// "Quick Start": the block runs `my_workflow` to completion in
/// `workflows.db`, its action (registered in a registry the executor is
/// never given) ran for both nodes, and its hook saw both starts.
#[tokio::test]
async fn quick_start() -> Result<()> {
    let dir = enter();
    quick_start::main().await?;
    assert_eq!(STARTED.load(Ordering::SeqCst), 2);
    let store =
        SqliteStore::open(&format!("sqlite:{}", dir.join("workflows.db").display())).await?;
    let run = store
        .stores()
        .runs
        .get_run(&"run_001".into())
        .await?
        .ok_or("run_001 is not recorded in workflows.db")?;
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.workflow, "my_workflow");
    Ok(())
}
