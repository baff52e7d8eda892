//! Dependencies, priority order, concurrency bounds, dynamic dependencies and DOT.

mod common;

use common::{finish, manager, register};
use dagger_core::BoxError;
use dagger_task_core::{
    JobConfig, JobStatus, TaskAgentRegistry, TaskContext, TaskManager, TaskOutcome, TaskSpec,
    TaskStatus, TaskType,
};
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

#[tokio::test]
async fn higher_priority_first_and_fifo_within_a_priority() {
    let registry = TaskAgentRegistry::new();
    let order = Arc::new(Mutex::new(Vec::<String>::new()));
    let o = order.clone();
    register(&registry, "rec", move |_v, ctx: TaskContext| {
        let o = o.clone();
        async move {
            o.lock().push(ctx.task_id().to_string());
            Ok(TaskOutcome::Completed(json!(null)))
        }
    });
    let m = manager(&registry);
    for (id, p) in [("a", 0), ("b", 5), ("c", 0), ("d", 5), ("e", 9)] {
        m.add_task(TaskSpec::new("j", "rec", id).id(id).priority(p))
            .unwrap();
    }
    let ready: Vec<String> = m
        .get_ready_tasks_for_job("j")
        .unwrap()
        .into_iter()
        .map(|t| t.task_id.to_string())
        .collect();
    assert_eq!(ready, ["e", "b", "d", "a", "c"]);
    let cfg = JobConfig {
        max_concurrency: 1,
        ..JobConfig::default()
    };
    let h = m.start_job("j", vec![], None, Some(cfg)).unwrap();
    assert_eq!(finish(&h).await, JobStatus::Completed(true));
    assert_eq!(*order.lock(), ["e", "b", "d", "a", "c"]);
}

#[tokio::test]
async fn dependencies_run_first_and_their_outputs_flow() {
    let registry = TaskAgentRegistry::new();
    register(&registry, "num", |v, _c| async move {
        Ok(TaskOutcome::Completed(v))
    });
    register(&registry, "sum", |_v, ctx: TaskContext| async move {
        let outs = ctx
            .manager()
            .get_dependency_outputs(ctx.task_id().as_str())?;
        let s: i64 = outs.iter().filter_map(Value::as_i64).sum();
        Ok(TaskOutcome::Completed(json!(s)))
    });
    let m = manager(&registry);
    let h = m
        .start_job(
            "j",
            vec![
                TaskSpec::new("j", "sum", "total")
                    .id("total")
                    .dependencies(["x", "y"]),
                TaskSpec::new("j", "num", "x").id("x").input(json!(2)),
                TaskSpec::new("j", "num", "y").id("y").input(json!(40)),
            ],
            None,
            None,
        )
        .unwrap();
    assert_eq!(finish(&h).await, JobStatus::Completed(true));
    let total = m.get_task_by_id("total").unwrap();
    assert_eq!(total.output, Some(json!(42)));
    assert_eq!(total.status, TaskStatus::Completed);
    assert_eq!(m.cache().get("j", "total").as_deref(), Some(&json!(42)));
}

#[derive(Default)]
struct Gauge {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Gauge {
    fn enter(&self) {
        let cur = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(cur, Ordering::SeqCst);
    }
    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
    fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_is_bounded_per_job_and_per_agent() {
    let registry = TaskAgentRegistry::new();
    let total = Arc::new(Gauge::default());
    let mut per_agent = Vec::new();
    for name in ["slow", "fast"] {
        let mine = Arc::new(Gauge::default());
        per_agent.push(mine.clone());
        let total = total.clone();
        register(&registry, name, move |_v, _c| {
            let (mine, total) = (mine.clone(), total.clone());
            async move {
                mine.enter();
                total.enter();
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                total.leave();
                mine.leave();
                Ok(TaskOutcome::Completed(json!(null)))
            }
        });
    }
    let m = manager(&registry);
    let mut tasks = Vec::new();
    for i in 0..30 {
        tasks.push(TaskSpec::new("j", "slow", format!("s{i}")));
        tasks.push(TaskSpec::new("j", "fast", format!("f{i}")));
    }
    let cfg = JobConfig {
        max_concurrency: 5,
        agent_concurrency: [("slow".to_string(), 2)].into(),
        ..JobConfig::default()
    };
    let h = m.start_job("j", tasks, None, Some(cfg)).unwrap();
    assert_eq!(finish(&h).await, JobStatus::Completed(true));
    assert_eq!(
        per_agent[0].max(),
        2,
        "per-agent bound: slow reaches but never exceeds 2"
    );
    assert_eq!(total.max(), 5, "per-job bound: reached but never exceeded");
}

#[tokio::test]
async fn a_rejected_task_holds_its_dependents_until_reworked() {
    let registry = TaskAgentRegistry::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    register(&registry, "draft", move |_v, _c| {
        let n = r.fetch_add(1, Ordering::SeqCst) + 1;
        async move { Ok(TaskOutcome::Completed(json!(format!("draft {n}")))) }
    });
    register(&registry, "review", |_v, ctx: TaskContext| async move {
        let m = ctx.manager();
        let draft = m.get_task_by_id("d").ok_or("no draft")?;
        if draft.output == Some(json!("draft 1")) {
            m.update_task_status("d", TaskStatus::Rejected)?;
            m.update_task_status("d", TaskStatus::Ready)?;
            return Ok(TaskOutcome::Completed(json!("rejected draft 1")));
        }
        m.update_task_status("d", TaskStatus::Accepted)?;
        Ok(TaskOutcome::Completed(json!("accepted")))
    });
    register(&registry, "publish", |_v, ctx: TaskContext| async move {
        Ok(TaskOutcome::Completed(json!(
            ctx.manager().get_dependency_outputs("p")?
        )))
    });
    let m = manager(&registry);
    m.add_task(TaskSpec::new("j", "draft", "d").id("d"))
        .unwrap();
    m.add_task(TaskSpec::new("j", "review", "r1").id("r1").depends_on("d"))
        .unwrap();
    let h = m.start_job("j", vec![], None, None).unwrap();
    // While the job runs, queue a second review and the publication.
    m.add_task(
        TaskSpec::new("j", "review", "r2")
            .id("r2")
            .depends_on("d")
            .depends_on("r1"),
    )
    .unwrap();
    m.add_task(
        TaskSpec::new("j", "publish", "p")
            .id("p")
            .depends_on("d")
            .depends_on("r2"),
    )
    .unwrap();
    assert_eq!(finish(&h).await, JobStatus::Completed(true));
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "the rejected draft was redone"
    );
    assert_eq!(m.get_task_by_id("d").unwrap().status, TaskStatus::Accepted);
    assert_eq!(
        m.get_task_by_id("p").unwrap().output,
        Some(json!(["draft 2", "accepted"]))
    );
    let err = m.start_job("j", vec![], None, None).unwrap_err();
    assert!(matches!(
        err,
        dagger_task_core::TaskError::JobFinished { .. }
    ));
}

#[tokio::test]
async fn starting_a_started_job_again_is_an_error() {
    let registry = TaskAgentRegistry::new();
    register(&registry, "wait", |_v, ctx: TaskContext| async move {
        ctx.cancel_token().cancelled().await;
        Ok(TaskOutcome::Completed(json!(null)))
    });
    let m = manager(&registry);
    let h = m
        .start_job("j", vec![TaskSpec::new("j", "wait", "w")], None, None)
        .unwrap();
    let err = m.start_job("j", vec![], None, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "job `j` has already been started; use `resume_job` to continue it"
    );
    let other = manager(&registry);
    assert!(other.start_job("k", vec![], None, None).is_ok());
    h.cancel();
    assert_eq!(finish(&h).await, JobStatus::Cancelled);
}

/// The seed's research agent, written against the seed's function form:
/// it adds a dependency to its own task, sets itself Blocked, and returns
/// an error string.
async fn research_agent(
    input: Value,
    task_id: &str,
    job_id: &str,
    task_manager: &TaskManager,
) -> Result<Value, String> {
    let topic = input["topic"].as_str().unwrap_or("general");
    let task = task_manager
        .get_task_by_id(task_id)
        .ok_or("Task not found")?;
    if !task.dependencies.is_empty() {
        let outputs = task_manager
            .get_dependency_outputs(task_id)
            .map_err(|e| format!("Failed to get dependency outputs: {e}"))?;
        let mut data = vec![format!("Initial research on {topic}")];
        for o in outputs {
            if let Some(d) = o.get("data") {
                data.push(d.as_str().unwrap_or("").to_string());
            }
        }
        return Ok(
            json!({"report": format!("Comprehensive report on {topic}: {}", data.join(", "))}),
        );
    }
    if topic.contains("advanced") {
        let data_task_id = task_manager
            .add_task_with_type(
                job_id.to_string(),
                format!("Gather additional data for {topic}"),
                "data_gatherer".to_string(),
                vec![],
                json!({"query": format!("detailed {topic} information")}),
                Some(task_id.to_string()),
                None,
                TaskType::Task,
                None,
                0,
                None,
                0,
            )
            .map_err(|e| format!("Failed to create dependency: {e}"))?;
        task_manager
            .add_dependency(task_id, &data_task_id)
            .map_err(|e| format!("Failed to add dependency: {e}"))?;
        task_manager
            .update_task_status(task_id, TaskStatus::Blocked)
            .map_err(|e| format!("Failed to update status: {e}"))?;
        return Err("needs_more_info".to_string());
    }
    Ok(json!({"report": format!("Basic report on {topic}")}))
}

#[tokio::test]
async fn seed_research_agent_blocks_on_dynamic_dependencies_and_reruns() {
    let registry = TaskAgentRegistry::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    register(
        &registry,
        "research_agent",
        move |input, ctx: TaskContext| {
            let r = r.clone();
            async move {
                r.fetch_add(1, Ordering::SeqCst);
                research_agent(
                    input,
                    ctx.task_id().as_str(),
                    ctx.job_id().as_str(),
                    ctx.manager(),
                )
                .await
                .map(TaskOutcome::Completed)
                .map_err(BoxError::from)
            }
        },
    );
    register(&registry, "data_gatherer", |input, _c| async move {
        Ok(TaskOutcome::Completed(
            json!({"data": format!("facts about {}", input["query"].as_str().unwrap_or(""))}),
        ))
    });
    register(
        &registry,
        "report_writer",
        |_v, ctx: TaskContext| async move {
            let deps = ctx
                .manager()
                .get_dependency_outputs(ctx.task_id().as_str())?;
            Ok(TaskOutcome::Completed(json!({"final": deps[0]["report"]})))
        },
    );
    let m = manager(&registry);
    let job = "research_job_001".to_string();
    let research = m
        .add_objective(
            job.clone(),
            "Research advanced AI",
            "research_agent",
            json!({"topic": "advanced machine learning"}),
        )
        .unwrap();
    let report = m
        .add_task_with_type(
            job.clone(),
            "Write final report".into(),
            "report_writer".into(),
            vec![research.clone()],
            json!({}),
            None,
            None,
            TaskType::Task,
            None,
            0,
            None,
            0,
        )
        .unwrap();
    let h = m
        .start_job(
            job.clone(),
            vec![],
            Some(vec![
                "research_agent".into(),
                "data_gatherer".into(),
                "report_writer".into(),
            ]),
            None,
        )
        .unwrap();
    assert_eq!(finish(&h).await, JobStatus::Completed(true));
    assert_eq!(runs.load(Ordering::SeqCst), 2, "blocked once, then re-run");
    let t = m.get_task_by_id(&research).unwrap();
    assert_eq!(t.status, TaskStatus::Completed);
    assert_eq!(t.failures, 0, "waiting for dependencies is not a failure");
    assert_eq!(
        t.output.unwrap()["report"],
        "Comprehensive report on advanced machine learning: Initial research on advanced machine learning, facts about detailed advanced machine learning information"
    );
    let children = m.get_child_tasks(&research).unwrap();
    assert_eq!(children.len(), 1);
    assert_eq!(children[0].agent, "data_gatherer");
    assert_eq!(
        m.get_tasks_by_type(&job, TaskType::Objective)
            .unwrap()
            .len(),
        1
    );
    assert!(
        m.get_task_by_id(&report).unwrap().output.unwrap()["final"]
            .as_str()
            .unwrap()
            .starts_with("Comprehensive")
    );

    let dot = m.get_dot_graph(Some(&job)).unwrap();
    assert!(dot.starts_with("digraph \"research_job_001\" {"));
    assert!(dot.contains(&format!("\"{}\" -> \"{}\";", children[0].task_id, research)));
    assert!(dot.contains(&format!("\"{research}\" -> \"{report}\";")));
    assert!(dot.contains("\"fillcolor\"=\"lightgreen\""));
    assert!(dot.trim_end().ends_with('}'));
}

#[tokio::test]
async fn explicit_waiting_outcome_blocks_until_new_dependencies_complete() {
    let registry = TaskAgentRegistry::new();
    register(&registry, "parent", |_v, ctx: TaskContext| async move {
        let m = ctx.manager();
        let me = ctx.task_id().as_str();
        let task = m.get_task_by_id(me).ok_or("gone")?;
        if task.dependencies.is_empty() {
            for i in 0..3 {
                let child = m.add_task(
                    TaskSpec::new(ctx.job_id().clone(), "child", format!("c{i}"))
                        .input(json!(i))
                        .parent(me),
                )?;
                m.add_dependency(me, child.as_str())?;
            }
            assert_eq!(m.get_task_by_id(me).unwrap().status, TaskStatus::InProgress);
            return Ok(TaskOutcome::WaitingForDependencies);
        }
        let outs = m.get_dependency_outputs(me)?;
        Ok(TaskOutcome::Completed(json!(outs)))
    });
    register(&registry, "child", |v, _c| async move {
        Ok(TaskOutcome::Completed(json!(v.as_i64().unwrap_or(0) * 10)))
    });
    let m = manager(&registry);
    let h = m
        .start_job(
            "j",
            vec![TaskSpec::new("j", "parent", "p").id("p")],
            None,
            None,
        )
        .unwrap();
    assert_eq!(finish(&h).await, JobStatus::Completed(true));
    let p = m.get_task_by_id("p").unwrap();
    assert_eq!(p.output, Some(json!([0, 10, 20])));
    assert_eq!(p.attempts, 2);
}

#[tokio::test]
async fn an_empty_job_completes_successfully() {
    let m = manager(&TaskAgentRegistry::new());
    let h = m.start_job("empty", vec![], None, None).unwrap();
    assert_eq!(finish(&h).await, JobStatus::Completed(true));
    assert_eq!(h.get_status().await, JobStatus::Completed(true));
}

#[test]
fn dot_output_escapes_hostile_text() {
    let registry = TaskAgentRegistry::new();
    register(&registry, "a", |v, _c| async move {
        Ok(TaskOutcome::Completed(v))
    });
    let m = manager(&registry);
    m.add_task(TaskSpec::new("j", "a", "say \"hi\"\n{}").id("x\"y"))
        .unwrap();
    let dot = m.get_dot_graph(Some("j")).unwrap();
    assert!(dot.contains("\"x\\\"y\" ["), "{dot}");
    assert!(dot.contains("say \\\"hi\\\"\\n{}"), "{dot}");
}

/// Tasks an agent limit holds back stay Ready ahead of others in the claim
/// order; a claim looks past however many of them there are, so the other
/// agent's tasks run while the limited one is busy.
#[tokio::test]
async fn an_agent_limit_does_not_hold_back_tasks_queued_behind_it() {
    let registry = TaskAgentRegistry::new();
    let fast_done = Arc::new(AtomicUsize::new(0));
    let f = fast_done.clone();
    register(&registry, "fast", move |_v, _c| {
        let f = f.clone();
        async move {
            f.fetch_add(1, Ordering::SeqCst);
            Ok(TaskOutcome::Completed(json!(null)))
        }
    });
    const FAST: usize = 3;
    let seen = fast_done.clone();
    register(&registry, "slow", move |_v, _c| {
        let seen = seen.clone();
        async move {
            // The first slow task waits (bounded) for every fast task.
            for _ in 0..2_000 {
                if seen.load(Ordering::SeqCst) == FAST {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            Ok(TaskOutcome::Completed(json!(seen.load(Ordering::SeqCst))))
        }
    });
    let m = manager(&registry);
    // 200 slow tasks first (one at a time), then the fast ones.
    let mut specs: Vec<TaskSpec> = (0..200)
        .map(|i| TaskSpec::new("j", "slow", "").id(format!("s{i}")))
        .collect();
    specs.extend((0..FAST).map(|i| TaskSpec::new("j", "fast", "").id(format!("f{i}"))));
    m.add_tasks(specs).unwrap();
    let cfg = JobConfig {
        max_concurrency: 4,
        agent_concurrency: [("slow".to_string(), 1)].into_iter().collect(),
        ..JobConfig::default()
    };
    let h = m.start_job("j", vec![], None, Some(cfg)).unwrap();
    assert_eq!(finish(&h).await, JobStatus::Completed(true));
    let first_slow = m.task("s0").unwrap().unwrap();
    assert_eq!(
        first_slow.output,
        Some(json!(FAST)),
        "the fast tasks ran while the first slow task was running"
    );
}
