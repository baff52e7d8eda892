//! Seed 000, the original README: its Task Agent blocks ("Simple Task Agent
//! Example", "Dynamic Dependencies Example", "Multi-Agent Workflow", the
//! task graph of "Visualization", "Custom Agents with State"), as written.
//! The Multi-Agent Workflow keeps its job in the SQLite file
//! `research_job_db` and writes `research_execution.dot` relative to the
//! working directory, so this test binary runs in a temporary directory of
//! its own ([`enter`]).
//!
//! The README's blocks `use dagger::*;` and `serde_json::json`; the later
//! ones continue the earlier ones without imports. They use `Duration`,
//! `PathBuf` and `Value` without importing them: the tests add those.

use dagger::prelude::*;
use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

/// The directory every test of this binary works in.
static DIR: LazyLock<PathBuf> =
    LazyLock::new(|| tempfile::tempdir().map_or_else(|e| panic!("tempdir: {e}"), |d| d.keep()));

/// Makes the temporary directory the working directory.
fn enter() {
    if let Err(e) = std::env::set_current_dir(&*DIR) {
        panic!("entering {}: {e}", DIR.display());
    }
}

/// Runs job `job_id` of one objective for `agent` with `input` to its end.
async fn run_one(
    manager: &TaskManager,
    job_id: &str,
    agent: &str,
    input: serde_json::Value,
) -> Result<(JobStatus, dagger::task_core::Task)> {
    let task_id = manager.add_objective(job_id, "objective", agent, input)?;
    let handle = manager.start_job(job_id, vec![], None, None)?;
    let status = tokio::time::timeout(Duration::from_secs(60), handle.wait()).await?;
    let task = manager
        .get_task_by_id(task_id.as_str())
        .ok_or("the objective is gone")?;
    Ok((status, task))
}

mod simple_task_agent_example {
    //! "Simple Task Agent Example", as written.
    use std::time::Duration;

    // seed block
    use dagger::*;
    use serde_json::json;

    #[task_agent(
        name = "calculator",
        description = "Performs basic arithmetic",
        input_schema = r#"{"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}, "op": {"type": "string"}}}"#,
        output_schema = r#"{"type": "object", "properties": {"result": {"type": "number"}}}"#
    )]
    #[allow(unused_variables)] // the README's unused ids and manager
    async fn calculator(
        input: serde_json::Value,
        task_id: &str,
        job_id: &str,
        task_manager: &TaskManager,
    ) -> Result<serde_json::Value, String> {
        let a = input["a"].as_f64().unwrap_or(0.0);
        let b = input["b"].as_f64().unwrap_or(0.0);
        let op = input["op"].as_str().unwrap_or("add");

        let result = match op {
            "add" => a + b,
            "sub" => a - b,
            "mul" => a * b,
            "div" => {
                if b != 0.0 {
                    a / b
                } else {
                    return Err("Division by zero".to_string());
                }
            }
            _ => return Err("Unknown operation".to_string()),
        };

        Ok(json!({"result": result}))
    }

    // #[tokio::main]
    #[allow(unused_variables)] // the README stops at "Create and execute tasks..."
    pub(crate) async fn main() -> Result<(), Box<dyn std::error::Error>> {
        let cache = Cache::new();
        let agent_registry = TaskAgentRegistry::new();
        let task_manager = TaskManager::new(
            Duration::from_secs(30),
            StallAction::NotifyPlanningAgent,
            cache,
            agent_registry,
            None,
        );

        // Create and execute tasks...
        Ok(())
    }
    // end of seed block
}

/// "Simple Task Agent Example": the block's `main` builds its manager (in
/// memory: `None`); the calculator, run as a job's objective by a manager
/// built the same way, adds, divides, and fails on a division by zero and
/// an unknown operation with the README's messages.
#[tokio::test]
async fn simple_task_agent_example() -> Result<()> {
    simple_task_agent_example::main()
        .await
        .map_err(|e| e.to_string())?;
    // Every `#[task_agent]` of this binary, the block's `calculator` among them.
    let agents = TaskAgentRegistry::new();
    dagger::register_all_task_agents(&agents)?;
    let manager = TaskManager::new(
        Duration::from_secs(30),
        StallAction::NotifyPlanningAgent,
        Cache::new(),
        agents,
        None,
    );
    assert_eq!(manager.store().location(), "memory");
    let cases = [
        ("sum", json!({"a": 2, "b": 3, "op": "add"}), Ok(json!(5.0))),
        (
            "ratio",
            json!({"a": 1, "b": 4, "op": "div"}),
            Ok(json!(0.25)),
        ),
        (
            "zero",
            json!({"a": 1, "b": 0, "op": "div"}),
            Err("Division by zero"),
        ),
        (
            "pow",
            json!({"a": 1, "b": 2, "op": "pow"}),
            Err("Unknown operation"),
        ),
    ];
    for (job, input, expected) in cases {
        let (status, task) = run_one(&manager, job, "calculator", input).await?;
        match expected {
            Ok(result) => {
                assert_eq!(status, JobStatus::Completed(true), "{job}");
                assert_eq!(task.output, Some(json!({ "result": result })), "{job}");
            }
            Err(message) => {
                assert_eq!(status, JobStatus::Completed(false), "{job}");
                assert!(
                    task.error.as_deref().is_some_and(|e| e.contains(message)),
                    "{job}: {:?}",
                    task.error
                );
            }
        }
    }
    Ok(())
}

mod multi_agent {
    //! "Dynamic Dependencies Example" and "Multi-Agent Workflow", as written.
    use dagger::prelude::*;
    use std::path::PathBuf;
    use std::time::Duration;

    // seed block ("Dynamic Dependencies Example")
    #[task_agent(
        name = "research_agent",
        description = "Conducts research and requests additional data as needed",
        input_schema = r#"{"type": "object", "properties": {"topic": {"type": "string"}}}"#,
        output_schema = r#"{"type": "object", "properties": {"report": {"type": "string"}}}"#
    )]
    async fn research_agent(
        input: serde_json::Value,
        task_id: &str,
        job_id: &str,
        task_manager: &TaskManager,
    ) -> Result<serde_json::Value, String> {
        let topic = input["topic"].as_str().unwrap_or("general");

        // Check if this is a retry after dependencies were added
        let task = task_manager
            .get_task_by_id(task_id)
            .ok_or("Task not found")?;

        if !task.dependencies.is_empty() {
            // This is a retry - use dependency outputs
            let dependency_outputs = task_manager
                .get_dependency_outputs(task_id)
                .map_err(|e| format!("Failed to get dependency outputs: {}", e))?;

            let mut research_data = vec![format!("Initial research on {}", topic)];
            for output in dependency_outputs {
                if let Some(data) = output.get("data") {
                    research_data.push(data.as_str().unwrap_or("").to_string());
                }
            }

            let report = format!(
                "Comprehensive report on {}: {}",
                topic,
                research_data.join(", ")
            );
            return Ok(json!({"report": report}));
        }

        // First execution - check if we need more data
        if topic.contains("advanced") {
            // Create a data gathering task
            let data_task_id = task_manager
                .add_task_with_type(
                    job_id.to_string(),
                    format!("Gather additional data for {}", topic),
                    "data_gatherer".to_string(),
                    vec![],
                    json!({"query": format!("detailed {} information", topic)}),
                    Some(task_id.to_string()),
                    None,
                    TaskType::Task,
                    None,
                    0,
                    None,
                    0,
                )
                .map_err(|e| format!("Failed to create dependency: {}", e))?;

            // Add as dependency and block current task
            task_manager
                .add_dependency(task_id, &data_task_id)
                .map_err(|e| format!("Failed to add dependency: {}", e))?;

            task_manager
                .update_task_status(task_id, TaskStatus::Blocked)
                .map_err(|e| format!("Failed to update status: {}", e))?;

            return Err("needs_more_info".to_string());
        }

        // Simple research without additional data
        let report = format!("Basic report on {}", topic);
        Ok(json!({"report": report}))
    }
    // end of seed block

    /// The README's `DataGatherer` (not shown): answers the query.
    #[task_agent(name = "data_gatherer", description = "Gathers data")]
    async fn data_gatherer(
        input: serde_json::Value,
        _task_id: &str,
        _job_id: &str,
        _task_manager: &TaskManager,
    ) -> Result<serde_json::Value, String> {
        let query = input["query"].as_str().unwrap_or_default();
        Ok(json!({ "data": format!("facts about {query}") }))
    }

    /// The README's `ReportWriter` (not shown): summarizes the research.
    #[task_agent(name = "report_writer", description = "Writes the final report")]
    async fn report_writer(
        input: serde_json::Value,
        task_id: &str,
        _job_id: &str,
        task_manager: &TaskManager,
    ) -> Result<serde_json::Value, String> {
        let research = task_manager
            .get_dependency_outputs(task_id)
            .map_err(|e| e.to_string())?;
        Ok(json!({ "format": input["format"], "based_on": research }))
    }

    // seed block ("Multi-Agent Workflow")
    // #[tokio::main]
    #[allow(unused_variables)] // the README's unused `report_task_id`
    pub(crate) async fn main() -> Result<(), Box<dyn std::error::Error>> {
        let cache = Cache::new();
        let agent_registry = TaskAgentRegistry::new();

        // Register multiple agent types
        agent_registry.register("research_agent", Box::new(ResearchAgent::new()))?;
        agent_registry.register("data_gatherer", Box::new(DataGatherer::new()))?;
        agent_registry.register("report_writer", Box::new(ReportWriter::new()))?;

        let task_manager = TaskManager::new(
            Duration::from_secs(60),
            StallAction::NotifyPlanningAgent,
            cache,
            agent_registry,
            Some(PathBuf::from("research_job_db")),
        );

        // Create a complex research job
        let job_id = "research_job_001".to_string();

        // Create initial research task
        let research_task_id = task_manager.add_objective(
            job_id.clone(),
            "Research advanced AI techniques".to_string(),
            "research_agent".to_string(),
            json!({"topic": "advanced machine learning"}),
        )?;

        // Create final report task that depends on research
        let report_task_id = task_manager.add_task_with_type(
            job_id.clone(),
            "Write final report".to_string(),
            "report_writer".to_string(),
            vec![research_task_id.clone()],
            json!({"format": "executive_summary"}),
            None,
            None,
            TaskType::Task,
            None,
            0,
            None,
            0,
        )?;

        // Start the job
        let job_handle = task_manager.start_job(
            job_id.clone(),
            vec![],
            Some(vec![
                "research_agent".to_string(),
                "data_gatherer".to_string(),
                "report_writer".to_string(),
            ]),
            None,
        )?;

        // Monitor progress
        loop {
            match job_handle.get_status().await {
                JobStatus::Running => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                JobStatus::Completed(success) => {
                    println!("Research job completed successfully: {}", success);
                    break;
                }
                JobStatus::Cancelled => {
                    println!("Research job was cancelled");
                    break;
                }
            }
        }

        // Generate execution graph
        let dot_graph = task_manager.get_dot_graph(Some(&job_id))?;
        std::fs::write("research_execution.dot", dot_graph)?;

        Ok(())
    }
    // end of seed block
}

/// "Dynamic Dependencies Example" and "Multi-Agent Workflow": the job,
/// kept in the SQLite file `research_job_db`, completes: the research
/// agent asks for more data, blocks on the new data task, runs again with
/// its output; the report writer then runs on the research. A new manager
/// on the same file finds the job and its three tasks; the graph is written.
#[tokio::test]
async fn multi_agent_workflow() -> Result<()> {
    enter();
    tokio::time::timeout(Duration::from_secs(120), multi_agent::main())
        .await?
        .map_err(|e| e.to_string())?;
    let reopened = TaskManager::new(
        Duration::from_secs(60),
        StallAction::NotifyPlanningAgent,
        Cache::new(),
        TaskAgentRegistry::new(),
        Some(PathBuf::from("research_job_db")),
    );
    assert_eq!(
        reopened.job_status("research_job_001")?,
        JobStatus::Completed(true)
    );
    let tasks = reopened.get_job_tasks("research_job_001")?;
    let by_agent = |agent: &str| {
        tasks
            .iter()
            .find(|t| t.agent == agent)
            .ok_or_else(|| format!("no {agent} task"))
    };
    let research = by_agent("research_agent")?;
    assert_eq!(
        research.output,
        Some(
            json!({"report": "Comprehensive report on advanced machine learning: Initial research on advanced machine learning, facts about detailed advanced machine learning information"})
        )
    );
    assert_eq!(research.dependencies.len(), 1);
    let report = by_agent("report_writer")?;
    assert_eq!(report.status, TaskStatus::Completed);
    assert_eq!(
        report.output.as_ref().map(|o| o["based_on"][0].clone()),
        research.output
    );
    assert_eq!(tasks.len(), 3, "{tasks:?}");
    let dot = std::fs::read_to_string("research_execution.dot")?;
    assert!(dot.contains("digraph"), "{dot}");
    Ok(())
}
