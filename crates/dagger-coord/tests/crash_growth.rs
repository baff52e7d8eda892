//! SIGKILL a child process while a hook grows the graph, resume, and check
//! that the grown graph completes with no completed node running twice.

mod common;

use common::*;
use dagger_coord::{
    Coordinator, EventHook, ExecutionEvent, ExecutorCommand, HookContext, NodeSpec,
};
use dagger_core::{BoxError, Cache, Stores};
use dagger_dag_flow::{DagConfig, NodeAction, NodeCtx, NodeOutput};
use dagger_storage::SqliteStore;
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

const CHILD_ENV: &str = "DAGGER_CRASH_GROWTH_CHILD";

/// Appends `node key` to the log, sleeps a little, returns its id.
struct Logged(PathBuf);

#[async_trait::async_trait]
impl NodeAction for Logged {
    fn name(&self) -> &str {
        "logged"
    }
    async fn execute(&self, ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.0)?;
        writeln!(f, "{} {}", ctx.node_id, ctx.idempotency_key)?;
        drop(f);
        tokio::time::sleep(Duration::from_millis(30)).await;
        Ok(NodeOutput::success(
            json!({ "id": ctx.node_id.to_string() }),
        ))
    }
}

/// When `plan` completes, adds `w0..w5` in a chain-and-fan, atomically; when
/// `w2` completes, adds `late`.
struct Planner;

#[async_trait::async_trait]
impl EventHook for Planner {
    async fn handle(&self, ctx: &HookContext, e: &ExecutionEvent) -> Vec<ExecutorCommand> {
        match e {
            ExecutionEvent::NodeCompleted { node, .. } if node.node_id == "plan" => {
                // A planner that thinks for a while (an LLM call): a wide window to be killed in.
                tokio::time::sleep(Duration::from_millis(40)).await;
                let specs = (0..6)
                    .map(|i| {
                        let dep = if i < 3 {
                            "plan".to_string()
                        } else {
                            format!("w{}", i - 3)
                        };
                        NodeSpec::new("logged")
                            .with_id(format!("w{i}"))
                            .with_deps([dep])
                    })
                    .collect();
                vec![ExecutorCommand::AddNodes {
                    dag_name: ctx.dag_name.clone(),
                    specs,
                }]
            }
            ExecutionEvent::NodeCompleted { node, .. } if node.node_id == "w2" => {
                vec![ExecutorCommand::AddNode {
                    dag_name: ctx.dag_name.clone(),
                    spec: NodeSpec::new("logged").with_id("late").with_deps(["w5"]),
                }]
            }
            _ => vec![],
        }
    }
}

async fn child(dir: &Path, resume: bool) {
    let store = SqliteStore::open(&format!("sqlite:{}", dir.join("runs.db").display()))
        .await
        .unwrap();
    let reg = dagger_dag_flow::ActionRegistry::new();
    reg.register(Arc::new(Logged(dir.join("log"))));
    let mut plan = node("plan", &[], json!({}));
    plan.action = "logged".into();
    let mut ex = executor(
        DagConfig {
            max_parallel_nodes: 2,
            ..DagConfig::default()
        },
        reg,
        workflow("grow", vec![plan]),
        Stores::from(store),
    );
    let coord = Coordinator::new(vec![Arc::new(Planner)], 8, 8);
    let (_tx, rx) = tokio::sync::oneshot::channel();
    let result = if resume {
        coord.resume(&mut ex, &Cache::new(), "g", rx).await
    } else {
        coord
            .run_parallel(&mut ex, &Cache::new(), "grow", "g", rx)
            .await
    };
    let nodes = match result {
        Ok(report) => report.nodes,
        // Killed after the run finished: read the outcome back.
        Err(dagger_coord::CoordError::AlreadyFinished { .. }) => {
            dagger_coord::load_run_view(ex.stores(), "g")
                .await
                .unwrap()
                .nodes
        }
        Err(e) => panic!("{e}"),
    };
    let ids: Vec<String> = nodes
        .iter()
        .filter(|n| n.status == dagger_core::NodeStatus::Completed)
        .map(|n| n.id.to_string())
        .collect();
    println!("COMPLETED {}", ids.join(","));
}

#[tokio::test]
async fn growth_child() {
    // Only does something when spawned by the test below.
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let resume = std::env::var("DAGGER_CRASH_RESUME").is_ok();
    child(Path::new(&dir), resume).await;
}

fn spawn_child(dir: &Path, resume: bool) -> std::process::Child {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([
        "--exact",
        "growth_child",
        "--nocapture",
        "--test-threads",
        "1",
    ])
    .env(CHILD_ENV, dir);
    if resume {
        c.env("DAGGER_CRASH_RESUME", "1");
    }
    c.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

fn completed_nodes(dir: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(dir.join("runs.db")).unwrap();
    let mut s = conn
        .prepare("SELECT node_id FROM node_runs WHERE state = 'Completed' AND invocation_key = ''")
        .unwrap();
    s.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn killed_while_growing_the_graph_resumes_to_the_full_graph() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let mut all: Vec<String> = ["plan", "w0", "w1", "w2", "w3", "w4", "w5", "late"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    all.sort();
    for delay_ms in [5u64, 15, 25, 35, 45, 60, 75, 90, 110, 130, 160, 200] {
        let dir = tempfile::tempdir().unwrap();
        let mut c = spawn_child(dir.path(), false);
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(c.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        c.wait().unwrap();
        if !run_recorded(dir.path()) {
            continue; // killed before the run was recorded: nothing to resume
        }
        let before = completed_nodes(dir.path());
        let out = spawn_child(dir.path(), true).wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let start = text
            .find("COMPLETED ")
            .unwrap_or_else(|| panic!("kill at {delay_ms} ms: resume printed {text}"));
        let line = text[start + "COMPLETED ".len()..]
            .lines()
            .next()
            .unwrap_or_default();
        let mut done: Vec<String> = line.split(',').map(str::to_string).collect();
        done.sort();
        assert_eq!(
            done, all,
            "kill at {delay_ms} ms: the resumed run completes the grown graph"
        );
        let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
        for id in &before {
            let runs = log
                .lines()
                .filter(|l| l.split(' ').next() == Some(id.as_str()))
                .count();
            assert_eq!(
                runs, 1,
                "kill at {delay_ms} ms: {id} was recorded complete before the kill but ran {runs} times"
            );
        }
    }
}

fn run_recorded(dir: &Path) -> bool {
    rusqlite::Connection::open(dir.join("runs.db"))
        .and_then(|c| c.query_row("SELECT count(*) FROM flow_runs", [], |r| r.get::<_, i64>(0)))
        .map(|n| n > 0)
        .unwrap_or(false)
}
