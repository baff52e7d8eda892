//! Panics are contained: a panicking action fails its attempt (the retry
//! policy applies), a panicking `failure:` handler does not hang the run,
//! and a panicking hook is reported as an event while the run goes on.

mod common;

use common::*;
use dagger_coord::{
    Coordinator, DagExecutionReport, EventHook, ExecutionEvent, ExecutorCommand, HookContext,
    NodeSpec,
};
use dagger_core::{BoxError, Cache, NodeStatus, RunStatus, Stores};
use dagger_dag_flow::RetryStrategy;
use dagger_dag_flow::{ActionRegistry, DagConfig, NodeAction, NodeCtx, NodeDef, NodeOutput};
use parking_lot::Mutex;
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

/// Records every event it sees as a label.
struct Recorder(Arc<Mutex<Vec<String>>>);

#[async_trait::async_trait]
impl EventHook for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }
    async fn handle(&self, _: &HookContext, event: &ExecutionEvent) -> Vec<ExecutorCommand> {
        let label = match event {
            ExecutionEvent::HookPanicked {
                hook,
                during,
                message,
            } => format!("panicked {hook} {during}: {message}"),
            ExecutionEvent::CommandRejected { command, reason } => {
                format!("rejected {command}: {reason}")
            }
            e => e.kind().to_string(),
        };
        self.0.lock().push(label);
        Vec::new()
    }
}

/// A hook that panics where told, and answers the run's end with commands
/// when told.
#[derive(Default)]
struct Crashy {
    on_start: bool,
    /// The event kind `handle` panics on (`"*"`: every event).
    on_event: Option<&'static str>,
    on_complete: bool,
    /// Answer `RunCompleted` and `on_complete` with a command each.
    late_commands: bool,
}

#[async_trait::async_trait]
impl EventHook for Crashy {
    fn name(&self) -> &str {
        "crashy"
    }
    async fn handle(&self, _: &HookContext, event: &ExecutionEvent) -> Vec<ExecutorCommand> {
        if self.on_event.is_some_and(|k| k == "*" || k == event.kind()) {
            panic!("crashy broke on {}", event.kind());
        }
        match event {
            ExecutionEvent::RunCompleted { .. } if self.late_commands => {
                vec![ExecutorCommand::SkipNodes {
                    node_ids: vec!["a".into()],
                    reason: None,
                }]
            }
            _ => Vec::new(),
        }
    }
    async fn on_start(&self, _: &HookContext) -> Vec<ExecutorCommand> {
        if self.on_start {
            panic!("crashy broke on start");
        }
        Vec::new()
    }
    async fn on_complete(&self, _: &HookContext, _: bool) -> Vec<ExecutorCommand> {
        if self.on_complete {
            panic!("crashy broke on complete");
        }
        if self.late_commands {
            return vec![ExecutorCommand::AddNode {
                dag_name: "w".into(),
                spec: NodeSpec::new("work").with_id("extra"),
            }];
        }
        Vec::new()
    }
}

/// A hook with the default name that panics on start.
struct Unnamed;

#[async_trait::async_trait]
impl EventHook for Unnamed {
    async fn handle(&self, _: &HookContext, _: &ExecutionEvent) -> Vec<ExecutorCommand> {
        Vec::new()
    }
    async fn on_start(&self, _: &HookContext) -> Vec<ExecutorCommand> {
        panic!("unnamed broke")
    }
}

/// Runs `a -> b` with `hooks` then a recorder; a run that does not end
/// within 30 s fails the test.
async fn run_hooked(mut hooks: Vec<Arc<dyn EventHook>>) -> (DagExecutionReport, Vec<String>) {
    let probe = Arc::new(Probe::default());
    let seen = Arc::new(Mutex::new(Vec::new()));
    hooks.push(Arc::new(Recorder(seen.clone())));
    let nodes = vec![node("a", &[], json!({})), node("b", &["a"], json!({}))];
    let mut ex = executor(
        config(Mode::ParallelWithHook),
        registry(&probe),
        workflow("w", nodes),
        Stores::memory(),
    );
    let (_keep, rx) = tokio::sync::oneshot::channel();
    let coord = Coordinator::new(hooks, 8, 8);
    let cache = Cache::new();
    let r = tokio::time::timeout(
        Duration::from_secs(30),
        coord.run_parallel(&mut ex, &cache, "w", "run-k", rx),
    )
    .await
    .expect("the run ends")
    .unwrap();
    let seen = seen.lock().clone();
    (r, seen)
}

fn position(seen: &[String], label: &str) -> usize {
    seen.iter()
        .position(|l| l == label)
        .unwrap_or_else(|| panic!("no `{label}` in {seen:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_panicking_in_handle_is_reported_and_the_run_goes_on() {
    let crashy = Crashy {
        on_event: Some("NodeCompleted"),
        ..Crashy::default()
    };
    let (r, seen) = run_hooked(vec![Arc::new(crashy)]).await;
    assert_eq!(r.status, RunStatus::Completed, "{:?}", r.reason);
    assert_eq!(r.completed_nodes(), 2);
    let label = "panicked crashy handle(NodeCompleted): crashy broke on NodeCompleted";
    assert_eq!(seen.iter().filter(|l| *l == label).count(), 2, "{seen:#?}");
    assert!(position(&seen, label) < position(&seen, "RunCompleted"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_panicking_on_every_event_does_not_feed_itself() {
    let crashy = Crashy {
        on_event: Some("*"),
        ..Crashy::default()
    };
    let (r, seen) = run_hooked(vec![Arc::new(crashy)]).await;
    assert_eq!(r.status, RunStatus::Completed, "{:?}", r.reason);
    let panics = seen.iter().filter(|l| l.starts_with("panicked ")).count();
    let others = seen.len() - panics;
    // One report per event it broke on, none for the reports themselves
    // (RunCompleted's is delivered after the end, straight to the hooks).
    assert_eq!(panics, others, "{seen:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_panicking_on_start_is_reported_and_the_run_goes_on() {
    let crashy = Crashy {
        on_start: true,
        ..Crashy::default()
    };
    let (r, seen) = run_hooked(vec![Arc::new(crashy), Arc::new(Unnamed)]).await;
    assert_eq!(r.status, RunStatus::Completed, "{:?}", r.reason);
    assert_eq!(r.completed_nodes(), 2);
    let label = "panicked crashy on_start: crashy broke on start";
    assert!(position(&seen, label) < position(&seen, "NodeStarted"));
    // A hook without a name of its own is named by its type.
    assert!(
        seen.iter()
            .any(|l| l.starts_with("panicked ") && l.contains("Unnamed on_start: unnamed broke")),
        "{seen:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_panicking_on_complete_is_reported_after_the_end() {
    let crashy = Crashy {
        on_complete: true,
        ..Crashy::default()
    };
    let (r, seen) = run_hooked(vec![Arc::new(crashy)]).await;
    assert_eq!(r.status, RunStatus::Completed, "{:?}", r.reason);
    assert_eq!(
        seen.last().map(String::as_str),
        Some("panicked crashy on_complete: crashy broke on complete"),
        "{seen:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_after_the_end_are_rejected_with_a_reason() {
    let crashy = Crashy {
        late_commands: true,
        ..Crashy::default()
    };
    let (r, seen) = run_hooked(vec![Arc::new(crashy)]).await;
    assert_eq!(r.status, RunStatus::Completed, "{:?}", r.reason);
    assert!(r.get_node_state("extra").is_none(), "nothing was added");
    let ended = position(&seen, "RunCompleted");
    let skip = seen
        .iter()
        .position(|l| l.starts_with("rejected SkipNodes(a): run `run-k` had ended ("))
        .unwrap_or_else(|| panic!("{seen:#?}"));
    assert!(
        seen[skip].ends_with("when the command arrived; a finished run takes no more commands")
    );
    let add = seen
        .iter()
        .position(|l| {
            l.starts_with("rejected AddNode(extra): returned by `on_complete` of hook `crashy` after run `run-k` had ended (")
        })
        .unwrap_or_else(|| panic!("{seen:#?}"));
    assert!(ended < skip && skip < add, "{seen:#?}");
}
