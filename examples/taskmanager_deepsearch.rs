//! Task management beyond the happy path, on a deep-search job: a planner
//! fans a query out to prioritized search tasks, one at a time so the
//! priorities decide the order; a flaky source fails once and is retried; a
//! source that needs credentials fails every attempt and becomes a dead
//! letter, which fails the job; the operator "fixes the credentials",
//! re-drives the dead letter and resumes the job, which then completes.
//!
//! The searches are deterministic stand-ins (no network).
//!
//! Run: `cargo run -p dagger-examples --example taskmanager_deepsearch`

use dagger::prelude::*;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

/// (source, priority): higher priority runs first.
const SOURCES: [(&str, i32); 3] = [("papers", 10), ("archive", 5), ("members_only", 1)];

/// Attempts made against the flaky `archive` source.
static ARCHIVE_CALLS: AtomicU32 = AtomicU32::new(0);
/// Whether the operator has provided the `members_only` credentials.
static CREDENTIALS: AtomicBool = AtomicBool::new(false);

#[task_agent(
    name = "search_planner",
    description = "Fans the query out to one search per source, then waits for the digest"
)]
async fn search_planner(
    input: Value,
    task_id: &str,
    job_id: &str,
    tm: &TaskManager,
) -> Result<Value, String> {
    let task = tm.get_task_by_id(task_id).ok_or("task not found")?;
    if !task.dependencies.is_empty() {
        let digest = tm
            .get_dependency_outputs(task_id)
            .map_err(|e| e.to_string())?;
        return Ok(digest.into_iter().next().unwrap_or(Value::Null));
    }
    let mut searches = Vec::new();
    for (source, priority) in SOURCES {
        let spec = TaskSpec::new(job_id, "web_search", format!("Search {source}"))
            .id(format!("search_{source}"))
            .parent(task_id)
            .task_type(TaskType::Subtask)
            .priority(priority)
            .max_retries(2)
            .input(json!({ "query": input["query"], "source": source }));
        searches.push(tm.add_task(spec).map_err(|e| e.to_string())?);
    }
    let digest = TaskSpec::new(job_id, "digest", "Merge the results")
        .id("digest")
        .parent(task_id)
        .dependencies(searches);
    let digest = tm.add_task(digest).map_err(|e| e.to_string())?;
    tm.add_dependency(task_id, digest.as_str())
        .map_err(|e| e.to_string())?;
    Err("waiting for the digest".into())
}

#[task_agent(name = "web_search", description = "Searches one source")]
async fn web_search(
    input: Value,
    task_id: &str,
    _job_id: &str,
    _tm: &TaskManager,
) -> Result<Value, String> {
    let source = input["source"].as_str().unwrap_or_default();
    match source {
        "archive" if ARCHIVE_CALLS.fetch_add(1, Ordering::SeqCst) == 0 => {
            println!("  {task_id}: connection reset (will be retried)");
            return Err("archive: connection reset".into());
        }
        "members_only" if !CREDENTIALS.load(Ordering::SeqCst) => {
            println!("  {task_id}: 401 unauthorized");
            return Err("members_only: 401 unauthorized".into());
        }
        _ => {}
    }
    println!("  {task_id}: 2 hits");
    Ok(json!({ "source": source, "hits": [format!("{source}/1"), format!("{source}/2")] }))
}

#[task_agent(name = "digest", description = "Merges the hits of every source")]
async fn digest(
    _input: Value,
    task_id: &str,
    _job_id: &str,
    tm: &TaskManager,
) -> Result<Value, String> {
    let results = tm
        .get_dependency_outputs(task_id)
        .map_err(|e| e.to_string())?;
    let hits: Vec<Value> = results
        .iter()
        .flat_map(|r| r["hits"].as_array().cloned().unwrap_or_default())
        .collect();
    Ok(json!({ "hits": hits }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let agents = TaskAgentRegistry::new();
    dagger::register_all_task_agents(&agents)?;
    let tm = TaskManager::in_memory(
        Duration::from_secs(30),
        StallAction::TerminateJob,
        Cache::new(),
        agents,
    );
    let job = "deepsearch";
    let config = JobConfig {
        max_concurrency: 1,
        retry: RetryPolicy {
            base_delay_ms: 10,
            ..RetryPolicy::default()
        },
        ..JobConfig::default()
    };
    let objective = TaskSpec::new(job, "search_planner", "Search for the query")
        .id("objective")
        .task_type(TaskType::Objective)
        .input(json!({ "query": "durable execution" }));

    println!("first run (sources in priority order, one at a time):");
    let status = tm
        .start_job(job, vec![objective], None, Some(config))?
        .wait()
        .await;
    println!("job ended: {status:?}");
    assert_eq!(status, JobStatus::Completed(false));
    for dead in tm.dead_letters(Some(job))? {
        println!("dead letter {}:", dead.task.task_id);
        for e in &dead.errors {
            println!("  attempt {}: {}", e.attempt, e.error);
        }
    }
    let archive = tm.attempt_errors("search_archive")?;
    println!(
        "search_archive needed a retry: {} failed attempt(s)",
        archive.len()
    );

    println!("operator provides the credentials, re-drives the dead letter and resumes:");
    CREDENTIALS.store(true, Ordering::SeqCst);
    tm.retry_dead("search_members_only")?;
    let status = tm.resume_job(job)?.wait().await;
    println!("job ended: {status:?}");
    assert_eq!(status, JobStatus::Completed(true));
    let answer = tm
        .get_task_by_id("objective")
        .and_then(|t| t.output)
        .ok_or("no answer")?;
    println!("{answer}");
    let path = std::env::temp_dir().join("dagger_taskmanager_deepsearch.dot");
    std::fs::write(&path, tm.get_dot_graph(Some(job))?)?;
    println!("DOT graph written to {}", path.display());
    Ok(())
}
