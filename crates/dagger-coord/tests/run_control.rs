//! Hooks and commands, fan-out, branches, budgets, human in the loop, memoization.

mod common;

use common::*;
use dagger_coord::{
    Coordinator, EventHook, ExecutionEvent, ExecutorCommand, HookContext, NodeSpec, approve,
    execute_dag, reject,
};
use dagger_core::store::MemoryStore;
use dagger_core::{Cache, InputSpec, NodeStatus, RunStatus, Stores, insert_value};
use dagger_dag_flow::{DagConfig, HumanTimeoutAction, NodeAction, NodeCtx, NodeOutput};
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// A hook driven by a closure, recording every event.
struct FnHook<F> {
    f: F,
    seen: Arc<Mutex<Vec<String>>>,
}

#[async_trait::async_trait]
impl<F> EventHook for FnHook<F>
where
    F: Fn(&HookContext, &ExecutionEvent) -> Vec<ExecutorCommand> + Send + Sync + 'static,
{
    async fn handle(&self, ctx: &HookContext, event: &ExecutionEvent) -> Vec<ExecutorCommand> {
        let label = match event {
            ExecutionEvent::CommandRejected { reason, .. } => format!("rejected: {reason}"),
            ExecutionEvent::NodesAdded { node_ids } => format!("added: {}", node_ids.join(",")),
            ExecutionEvent::RunCompleted { status, .. } => format!("run: {status}"),
            e => match e.node_status() {
                Some((n, s)) => format!("{}: {s}", n.node_id),
                None => format!("{e:?}"),
            },
        };
        self.seen.lock().push(label);
        (self.f)(ctx, event)
    }
}

fn hook<F>(f: F) -> (Arc<dyn EventHook>, Arc<Mutex<Vec<String>>>)
where
    F: Fn(&HookContext, &ExecutionEvent) -> Vec<ExecutorCommand> + Send + Sync + 'static,
{
    let seen = Arc::new(Mutex::new(Vec::new()));
    (
        Arc::new(FnHook {
            f,
            seen: seen.clone(),
        }),
        seen,
    )
}

async fn run_with(
    hooks: Vec<Arc<dyn EventHook>>,
    ex: &mut dagger_dag_flow::DagExecutor,
    cache: &Cache,
    dag: &str,
) -> dagger_coord::DagExecutionReport {
    let (_tx, rx) = tokio::sync::oneshot::channel();
    Coordinator::new(hooks, 4, 4)
        .run_parallel(ex, cache, dag, &format!("run-{dag}"), rx)
        .await
        .unwrap()
}

#[tokio::test]
async fn hooks_grow_the_graph_and_see_every_event() {
    let probe = Arc::new(Probe::default());
    let (h, seen) = hook(|ctx, e| match e {
        ExecutionEvent::NodeCompleted { node, .. } if node.node_id == "plan" => {
            vec![ExecutorCommand::AddNodes {
                dag_name: ctx.dag_name.clone(),
                specs: vec![
                    NodeSpec::new("work")
                        .with_id("step1")
                        .with_deps(["plan"])
                        .with_inputs(json!({"n": 1})),
                    NodeSpec::new("work")
                        .with_id("step2")
                        .with_deps(["step1"])
                        .with_input_ref("prev", "step1.n"),
                ],
            }]
        }
        _ => vec![],
    });
    let mut ex = executor(
        DagConfig::default(),
        registry(&probe),
        workflow("grow", vec![node("plan", &[], json!({}))]),
        Stores::memory(),
    );
    let cache = Cache::new();
    let r = run_with(vec![h], &mut ex, &cache, "grow").await;
    assert!(r.succeeded(), "{r:?}");
    assert_eq!(r.nodes.len(), 3);
    assert!(r.get_node_state("step2").unwrap().added_at_runtime);
    assert_eq!(*cache.get("step2", "prev").unwrap(), json!(1));
    let seen = seen.lock().clone();
    assert!(seen.contains(&"added: step1,step2".to_string()), "{seen:?}");
    assert_eq!(
        seen.last().unwrap(),
        "run: Completed",
        "hooks see the final event"
    );
    assert!(probe.position("step1") < probe.position("step2"));
}

#[tokio::test]
async fn add_nodes_is_atomic_and_rejections_are_reported() {
    let probe = Arc::new(Probe::default());
    let (h, seen) = hook(|ctx, e| match e {
        ExecutionEvent::NodeCompleted { node, .. } if node.node_id == "a" => vec![
            ExecutorCommand::AddNodes {
                dag_name: ctx.dag_name.clone(),
                specs: vec![
                    NodeSpec::new("work").with_id("ok").with_deps(["a"]),
                    NodeSpec::new("work").with_id("x").with_deps(["y"]),
                    NodeSpec::new("work").with_id("y").with_deps(["x"]),
                ],
            },
            ExecutorCommand::AddNode {
                dag_name: ctx.dag_name.clone(),
                spec: NodeSpec::new("work").with_id("z").with_deps(["ghost"]),
            },
            ExecutorCommand::AddNode {
                dag_name: ctx.dag_name.clone(),
                spec: NodeSpec::new("nope").with_id("w"),
            },
        ],
        _ => vec![],
    });
    let mut ex = executor(
        DagConfig::default(),
        registry(&probe),
        workflow("atomic", vec![node("a", &[], json!({}))]),
        Stores::memory(),
    );
    let r = run_with(vec![h], &mut ex, &Cache::new(), "atomic").await;
    assert!(r.succeeded());
    assert_eq!(r.nodes.len(), 1, "nothing of a rejected batch was added");
    let rejected: Vec<String> = seen
        .lock()
        .iter()
        .filter(|s| s.starts_with("rejected"))
        .cloned()
        .collect();
    assert_eq!(
        rejected,
        vec![
            "rejected: dependency cycle: x -> y -> x",
            "rejected: node `z` depends on `ghost`, which is not a node of this workflow",
            "rejected: node `w` uses unknown action `nope`",
        ]
    );
}

#[tokio::test]
async fn pause_resume_cancel_and_skip_commands() {
    let probe = Arc::new(Probe::default());
    let (h, _seen) = hook(|_ctx, e| match e {
        ExecutionEvent::NodeCompleted { node, .. } if node.node_id == "root" => vec![
            ExecutorCommand::PauseBranch {
                branch_id: "p".into(),
                reason: Some("review".into()),
            },
            ExecutorCommand::CancelBranch {
                branch_id: "c".into(),
                reason: Some("not needed".into()),
            },
            ExecutorCommand::SkipNodes {
                node_ids: vec!["s".into()],
                reason: Some("skip it".into()),
            },
            ExecutorCommand::SetNodeInputs {
                node_id: "i".into(),
                inputs: json!({"v": "new"}),
            },
        ],
        ExecutionEvent::NodeCompleted { node, .. } if node.node_id == "gate" => {
            vec![ExecutorCommand::ResumeBranch {
                branch_id: "p".into(),
            }]
        }
        _ => vec![],
    });
    let nodes = vec![
        node("root", &[], json!({})),
        node("p", &["root"], json!({})),
        node("p2", &["p"], json!({})),
        node("gate", &["root"], json!({"ms": 50})),
        node("c", &["root"], json!({})),
        node("c2", &["c"], json!({})),
        node("s", &["root"], json!({})),
        node("i", &["root"], json!({"v": "old"})),
    ];
    let mut ex = executor(
        DagConfig::default(),
        registry(&probe),
        workflow("cmds", nodes),
        Stores::memory(),
    );
    let cache = Cache::new();
    let r = run_with(vec![h], &mut ex, &cache, "cmds").await;
    assert_eq!(r.status, RunStatus::Completed, "{r:?}");
    assert!(
        probe.start_position("gate") < probe.start_position("p"),
        "p waited for its branch to resume"
    );
    assert_eq!(
        r.get_node_state("p2").unwrap().status,
        NodeStatus::Completed
    );
    let c = r.get_node_state("c").unwrap();
    assert_eq!(
        (c.status, c.error.as_deref()),
        (NodeStatus::Cancelled, Some("not needed"))
    );
    assert_eq!(
        r.get_node_state("c2").unwrap().status,
        NodeStatus::Cancelled
    );
    let s = r.get_node_state("s").unwrap();
    assert_eq!(
        (s.status, s.error.as_deref()),
        (NodeStatus::Skipped, Some("skip it"))
    );
    assert_eq!(*cache.get("i", "v").unwrap(), json!("new"));
}

#[tokio::test]
async fn a_branch_never_resumed_leaves_the_run_paused() {
    let probe = Arc::new(Probe::default());
    let (h, _) = hook(|_c, e| match e {
        ExecutionEvent::RunStarted { .. } => vec![ExecutorCommand::PauseBranch {
            branch_id: "b".into(),
            reason: None,
        }],
        _ => vec![],
    });
    let mut ex = executor(
        DagConfig::default(),
        registry(&probe),
        workflow(
            "stuck",
            vec![node("a", &[], json!({})), node("b", &["a"], json!({}))],
        ),
        Stores::memory(),
    );
    let r = run_with(vec![h], &mut ex, &Cache::new(), "stuck").await;
    assert_eq!(r.status, RunStatus::Paused);
    assert_eq!(r.reason.as_deref(), Some("branch `b` is paused"));
    assert_eq!(r.get_node_state("b").unwrap().status, NodeStatus::Paused);
}

#[tokio::test]
async fn fan_out_runs_once_per_element_in_order_and_bounded() {
    let probe = Arc::new(Probe::default());
    let mut mapped = node("each", &[], json!({"ms": 20}));
    mapped.map_over = Some("inputs.items".into());
    let mut sum = node("after", &["each"], json!({}));
    sum.inputs.push(InputSpec::reference("all", "each.results"));
    let config = DagConfig {
        max_parallel_nodes: 2,
        ..DagConfig::default()
    };
    let mut ex = executor(
        config,
        registry(&probe),
        workflow("fan", vec![mapped, sum]),
        Stores::memory(),
    );
    let cache = Cache::new();
    insert_value(&cache, "inputs", "items", json!(["a", "b", "c", "d", "e"])).unwrap();
    let r = execute_dag(&mut ex, &cache, "fan").await.unwrap();
    assert!(r.succeeded(), "{r:?}");
    let results = cache.get("each", "results").unwrap();
    let items: Vec<&str> = results
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["item"].as_str().unwrap())
        .collect();
    assert_eq!(items, ["a", "b", "c", "d", "e"]);
    assert_eq!(results[3]["index"], json!(3));
    assert_eq!(probe.max.load(Ordering::SeqCst), 2);
    assert_eq!(probe.runs_of("each"), 5);
}

#[tokio::test]
async fn fan_out_element_failure_fails_the_node() {
    let probe = Arc::new(Probe::default());
    struct FailOn;
    #[async_trait::async_trait]
    impl NodeAction for FailOn {
        fn name(&self) -> &str {
            "fail_on_c"
        }
        async fn execute(&self, ctx: &NodeCtx) -> Result<NodeOutput, dagger_core::BoxError> {
            if ctx.inputs["item"] == json!("c") {
                return Err(format!("bad element at {}", ctx.invocation_key).into());
            }
            Ok(NodeOutput::success(json!({"ok": true})))
        }
    }
    let reg = registry(&probe);
    reg.register(Arc::new(FailOn));
    let mut mapped = node("each", &[], json!({}));
    mapped.action = "fail_on_c".into();
    mapped.map_over = Some("inputs.items".into());
    mapped.try_count = Some(2);
    let config = DagConfig {
        retry_strategy: dagger_dag_flow::RetryStrategy::Immediate,
        ..DagConfig::default()
    };
    let mut ex = executor(
        config,
        reg,
        workflow("fanfail", vec![mapped, node("next", &["each"], json!({}))]),
        Stores::memory(),
    );
    let cache = Cache::new();
    insert_value(&cache, "inputs", "items", json!(["a", "b", "c"])).unwrap();
    let r = execute_dag(&mut ex, &cache, "fanfail").await.unwrap();
    let each = r.get_node_state("each").unwrap();
    assert_eq!(each.status, NodeStatus::Failed);
    assert_eq!(
        each.error.as_deref(),
        Some("bad element at 2 (after 2 attempts)")
    );
    assert_eq!(
        r.get_node_state("next").unwrap().status,
        NodeStatus::Skipped
    );
}

#[tokio::test]
async fn conditions_and_branch_selection_skip_with_reasons() {
    let probe = Arc::new(Probe::default());
    struct Route;
    #[async_trait::async_trait]
    impl NodeAction for Route {
        fn name(&self) -> &str {
            "route"
        }
        async fn execute(&self, _ctx: &NodeCtx) -> Result<NodeOutput, dagger_core::BoxError> {
            Ok(NodeOutput::success(json!({"flag": false})).select_branches(["left"]))
        }
    }
    let reg = registry(&probe);
    reg.register(Arc::new(Route));
    let mut route = node("route", &[], json!({}));
    route.action = "route".into();
    let mut guarded = node("guarded", &["route"], json!({}));
    guarded.when = Some("route.flag".into());
    let nodes = vec![
        route,
        node("left", &["route"], json!({})),
        node("right", &["route"], json!({})),
        node("right2", &["right"], json!({})),
        guarded,
    ];
    let mut ex = executor(
        DagConfig::default(),
        reg,
        workflow("branch", nodes),
        Stores::memory(),
    );
    let r = execute_dag(&mut ex, &Cache::new(), "branch").await.unwrap();
    assert_eq!(r.status, RunStatus::Completed);
    assert_eq!(
        r.get_node_state("left").unwrap().status,
        NodeStatus::Completed
    );
    let right = r.get_node_state("right").unwrap();
    assert_eq!(
        (right.status, right.error.as_deref()),
        (NodeStatus::Skipped, Some("branch not selected by `route`"))
    );
    assert_eq!(
        r.get_node_state("right2").unwrap().status,
        NodeStatus::Skipped
    );
    let g = r.get_node_state("guarded").unwrap();
    assert_eq!(
        (g.status, g.error.as_deref()),
        (NodeStatus::Skipped, Some("branch not selected by `route`"))
    );
}

#[tokio::test]
async fn when_condition_false_skips() {
    let probe = Arc::new(Probe::default());
    let mut guarded = node("guarded", &["a"], json!({}));
    guarded.when = Some("inputs.enabled".into());
    let mut ex = executor(
        DagConfig::default(),
        registry(&probe),
        workflow("cond", vec![node("a", &[], json!({})), guarded]),
        Stores::memory(),
    );
    let cache = Cache::new();
    insert_value(&cache, "inputs", "enabled", false).unwrap();
    let r = execute_dag(&mut ex, &cache, "cond").await.unwrap();
    let g = r.get_node_state("guarded").unwrap();
    assert_eq!(
        (g.status, g.error.as_deref()),
        (
            NodeStatus::Skipped,
            Some("condition `inputs.enabled` is false")
        )
    );
    assert!(r.succeeded());
}

#[tokio::test]
async fn max_iterations_stops_a_runaway_planner() {
    let probe = Arc::new(Probe::default());
    let (h, _) = hook(|ctx, e| match e {
        ExecutionEvent::NodeCompleted { node, .. } => {
            let next = format!("{}x", node.node_id);
            vec![ExecutorCommand::AddNode {
                dag_name: ctx.dag_name.clone(),
                spec: NodeSpec::new("work")
                    .with_id(next)
                    .with_deps([node.node_id.clone()]),
            }]
        }
        _ => vec![],
    });
    let config = DagConfig {
        max_iterations: Some(5),
        ..DagConfig::default()
    };
    let mut ex = executor(
        config,
        registry(&probe),
        workflow("loop", vec![node("n", &[], json!({}))]),
        Stores::memory(),
    );
    let r = run_with(vec![h], &mut ex, &Cache::new(), "loop").await;
    assert_eq!(r.status, RunStatus::Failed);
    assert_eq!(
        r.reason.as_deref(),
        Some("max_iterations budget of 5 would be exceeded by adding 1 nodes")
    );
    assert!(r.metrics.iterations <= 5);
}

#[tokio::test]
async fn max_tokens_stops_the_run() {
    let probe = Arc::new(Probe::default());
    let nodes = vec![
        node("a", &[], json!({"tokens": 60})),
        node("b", &["a"], json!({"tokens": 60})),
        node("c", &["b"], json!({})),
    ];
    let config = DagConfig {
        max_tokens: Some(100),
        ..DagConfig::default()
    };
    let mut ex = executor(
        config,
        registry(&probe),
        workflow("tok", nodes),
        Stores::memory(),
    );
    let r = execute_dag(&mut ex, &Cache::new(), "tok").await.unwrap();
    assert_eq!(r.status, RunStatus::Failed);
    assert_eq!(
        r.reason.as_deref(),
        Some("max_tokens budget of 100 exceeded (120 tokens used)")
    );
    assert_eq!(probe.runs_of("c"), 0);
    assert_eq!(r.metrics.tokens, 120);
}

#[tokio::test]
async fn human_approval_with_input_and_rejection() {
    let probe = Arc::new(Probe::default());
    let mut review = node("review", &["draft"], json!({}));
    review.approval = Some("Publish this draft?".into());
    let mut other = node("other", &[], json!({}));
    other.approval = Some("Also this?".into());
    let nodes = vec![
        node("draft", &[], json!({})),
        review,
        node("publish", &["review"], json!({})),
        other,
    ];
    let stores = Stores::from(Arc::new(MemoryStore::new()));
    let mut ex = executor(
        DagConfig::default(),
        registry(&probe),
        workflow("human", nodes),
        stores.clone(),
    );
    let cache = Cache::new();
    let coord =
        Coordinator::new(vec![], 4, 4).with_control_poll(std::time::Duration::from_millis(20));
    let (_tx, rx) = tokio::sync::oneshot::channel();
    let run = tokio::spawn({
        let cache = cache.clone();
        async move { coord.run_parallel(&mut ex, &cache, "human", "h1", rx).await }
    });
    // Wait until the run records that it waits for humans.
    loop {
        let rec = stores.runs.get_run(&"h1".into()).await.unwrap();
        if rec.is_some_and(|r| r.status == RunStatus::WaitingForHuman) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    approve(&stores, "h1", "review", Some(json!({"ok": "yes"})))
        .await
        .unwrap();
    reject(&stores, "h1", "other", "not today").await.unwrap();
    let r = run.await.unwrap().unwrap();
    assert_eq!(
        r.get_node_state("publish").unwrap().status,
        NodeStatus::Completed
    );
    assert_eq!(
        *cache.get("review", "human_input").unwrap(),
        json!({"ok": "yes"})
    );
    let other = r.get_node_state("other").unwrap();
    assert_eq!(
        (other.status, other.error.as_deref()),
        (NodeStatus::Failed, Some("rejected by a human: not today"))
    );
    let err = approve(&stores, "nope", "review", None).await.unwrap_err();
    assert_eq!(err.to_string(), "run `nope` not found");
}

/// The wait is in whole minutes (the guide's `human_wait_minutes: Some(30)`), so
/// this test takes one: both actions wait at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn human_timeout_autopilot_and_pause() {
    let runs = [
        (HumanTimeoutAction::Autopilot, RunStatus::Completed),
        (HumanTimeoutAction::Pause, RunStatus::Paused),
    ]
    .map(|(action, expected)| async move {
        let probe = Arc::new(Probe::default());
        let mut review = node("review", &[], json!({}));
        review.approval = Some("ok?".into());
        let config = DagConfig {
            human_wait_minutes: Some(1),
            human_timeout_action: action,
            ..DagConfig::default()
        };
        let mut ex = executor(
            config,
            registry(&probe),
            workflow("ht", vec![review]),
            Stores::memory(),
        );
        let r = execute_dag(&mut ex, &Cache::new(), "ht").await.unwrap();
        (action, expected, r)
    });
    let [autopilot, pause] = runs;
    let (a, b) = tokio::join!(autopilot, pause);
    for (action, expected, r) in [a, b] {
        assert_eq!(r.status, expected, "{action:?}");
        if expected == RunStatus::Paused {
            assert_eq!(
                r.reason.as_deref(),
                Some("no human answered node `review` within 1 minutes")
            );
            assert_eq!(
                r.get_node_state("review").unwrap().status,
                NodeStatus::WaitingForHuman
            );
        }
    }
}

#[tokio::test]
async fn memoized_nodes_reuse_outputs_across_runs() {
    let probe = Arc::new(Probe::default());
    let mut costly = node("costly", &[], json!({"x": 1}));
    costly.cache = true;
    let stores = Stores::from(Arc::new(MemoryStore::new()));
    let mut ex = executor(
        DagConfig::default(),
        registry(&probe),
        workflow("memo", vec![costly]),
        stores,
    );
    let c = Coordinator::new(vec![], 4, 4);
    for (i, expect_hit) in [(1, false), (2, true)] {
        let (_tx, rx) = tokio::sync::oneshot::channel();
        let cache = Cache::new();
        let r = c
            .run_parallel(&mut ex, &cache, "memo", &format!("m{i}"), rx)
            .await
            .unwrap();
        assert_eq!(r.get_node_state("costly").unwrap().cache_hit, expect_hit);
        assert_eq!(*cache.get("costly", "x").unwrap(), json!(1));
    }
    assert_eq!(
        probe.runs_of("costly"),
        1,
        "the second run reused the output"
    );
    let _ = Value::Null;
}
