//! Panics are contained: a panicking action fails its attempt (the retry
//! policy applies), a panicking `failure:` handler does not hang the run,
//! and a panicking hook is reported as an event while the run goes on.

mod common;

use common::*;
use dagger_coord::{
    Coordinator, DagExecutionReport, EventHook, ExecutionEvent, ExecutorCommand, HookContext,
};
use dagger_core::{BoxError, Cache, NodeStatus, RetryStrategy, RunStatus, Stores};
use dagger_dag_flow::{ActionRegistry, DagConfig, NodeAction, NodeCtx, NodeDef, NodeOutput};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// The three ways a run is scheduled: one slot (sequential), several slots
/// without hooks (workers release plain nodes directly), several slots
/// with a hook (every completion goes through the run loop).
#[derive(Debug, Clone, Copy)]
enum Mode {
    Sequential,
    ParallelDirect,
    ParallelWithHook,
}

const MODES: [Mode; 3] = [
    Mode::Sequential,
    Mode::ParallelDirect,
    Mode::ParallelWithHook,
];

/// A hook that answers nothing.
struct Quiet;

#[async_trait::async_trait]
impl EventHook for Quiet {
    async fn handle(&self, _: &HookContext, _: &ExecutionEvent) -> Vec<ExecutorCommand> {
        Vec::new()
    }
}

fn config(mode: Mode) -> DagConfig {
    DagConfig {
        enable_parallel_execution: !matches!(mode, Mode::Sequential),
        retry_strategy: RetryStrategy::Immediate,
        ..DagConfig::default()
    }
}

/// Runs `nodes` in `mode`; a run that does not end within 30 s fails the test.
async fn run(mode: Mode, registry: ActionRegistry, nodes: Vec<NodeDef>) -> DagExecutionReport {
    let mut ex = executor(
        config(mode),
        registry,
        workflow("w", nodes),
        Stores::memory(),
    );
    let hooks: Vec<Arc<dyn EventHook>> = match mode {
        Mode::ParallelWithHook => vec![Arc::new(Quiet)],
        _ => Vec::new(),
    };
    let (_keep, rx) = tokio::sync::oneshot::channel();
    let coord = Coordinator::new(hooks, 8, 8);
    let cache = Cache::new();
    let run = coord.run_parallel(&mut ex, &cache, "w", "run-p", rx);
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .unwrap_or_else(|_| panic!("{mode:?}: the run never ended"))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_attempt_fails_and_the_retry_runs() {
    for mode in MODES {
        let probe = Arc::new(Probe::default());
        // `flaky` follows a plain node: in the direct mode a worker starts it.
        let mut flaky = node("flaky", &["first"], json!({"panic_times": 1}));
        flaky.try_count = Some(2);
        let nodes = vec![
            node("first", &[], json!({})),
            flaky,
            node("after", &["flaky"], json!({})),
        ];
        let r = run(mode, registry(&probe), nodes).await;
        assert_eq!(r.status, RunStatus::Completed, "{mode:?}: {:?}", r.reason);
        let s = r.get_node_state("flaky").unwrap();
        assert_eq!(
            (s.status, s.attempts),
            (NodeStatus::Completed, 2),
            "{mode:?}"
        );
        assert_eq!(probe.runs_of("after"), 1, "{mode:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_every_attempt_panics_fails_with_the_message() {
    for mode in MODES {
        let probe = Arc::new(Probe::default());
        let mut bad = node("bad", &["first"], json!({"panic_times": 9}));
        bad.try_count = Some(2);
        let nodes = vec![
            node("first", &[], json!({})),
            bad,
            node("child", &["bad"], json!({})),
            node("other", &[], json!({})),
        ];
        let r = run(mode, registry(&probe), nodes).await;
        assert_eq!(r.status, RunStatus::Failed, "{mode:?}");
        assert_eq!(r.reason.as_deref(), Some("failed nodes: bad"), "{mode:?}");
        let s = r.get_node_state("bad").unwrap();
        assert_eq!((s.status, s.attempts), (NodeStatus::Failed, 2), "{mode:?}");
        assert_eq!(
            s.error.as_deref(),
            Some("node `bad`: panicked: planned panic 2 of bad (after 2 attempts)"),
            "{mode:?}"
        );
        let child = r.get_node_state("child").unwrap();
        assert_eq!(
            (child.status, child.error.as_deref()),
            (NodeStatus::Skipped, Some("dependency `bad` failed")),
            "{mode:?}"
        );
        assert_eq!(
            r.get_node_state("other").unwrap().status,
            NodeStatus::Completed
        );
    }
}

/// `panic_handler`: a `failure:` action that panics.
struct PanicHandler;

#[async_trait::async_trait]
impl NodeAction for PanicHandler {
    fn name(&self) -> &str {
        "panic_handler"
    }
    async fn execute(&self, _: &NodeCtx) -> Result<NodeOutput, BoxError> {
        panic!("the handler broke")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_failure_handler_does_not_hang_the_run() {
    for mode in MODES {
        let probe = Arc::new(Probe::default());
        let reg = registry(&probe);
        reg.register(Arc::new(PanicHandler));
        let mut bad = node("bad", &[], json!({"fail_times": 9}));
        bad.try_count = Some(1);
        bad.failure = Some("panic_handler".into());
        let nodes = vec![bad, node("child", &["bad"], json!({}))];
        let mut ex = executor(config(mode), reg, workflow("w", nodes), Stores::memory());
        let cache = Cache::new();
        let (_keep, rx) = tokio::sync::oneshot::channel();
        let hooks: Vec<Arc<dyn EventHook>> = match mode {
            Mode::ParallelWithHook => vec![Arc::new(Quiet)],
            _ => Vec::new(),
        };
        let r = tokio::time::timeout(
            Duration::from_secs(30),
            Coordinator::new(hooks, 8, 8).run_parallel(&mut ex, &cache, "w", "run-h", rx),
        )
        .await
        .unwrap_or_else(|_| panic!("{mode:?}: the run never ended"))
        .unwrap();
        assert_eq!(r.status, RunStatus::Failed, "{mode:?}");
        let s = r.get_node_state("bad").unwrap();
        assert_eq!(
            (s.status, s.error.as_deref()),
            (NodeStatus::Failed, Some("planned failure 1 of bad")),
            "{mode:?}: the node's own error stands"
        );
        assert_eq!(
            r.get_node_state("child").unwrap().status,
            NodeStatus::Skipped
        );
        assert_eq!(
            *cache.get("bad", "failure_handler_error").unwrap(),
            json!("panicked: the handler broke"),
            "{mode:?}"
        );
    }
}
