//! `dagger tasks dead` and `dagger tasks retry`: the Task Agent's dead
//! letters (tasks that failed their last attempt) in the store, and
//! re-driving one of them.

use crate::DbArg;
use crate::error::CliError;
use crate::open_store;
use crate::store::missing_file;
use dagger_core::Cache;
use dagger_task_core::{StallAction, TaskAgentRegistry, TaskManager};
use serde_json::json;
use std::process::ExitCode;
use std::time::Duration;

/// `dagger tasks …`.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum TasksCommand {
    /// List dead letters: tasks that failed their last attempt, with every
    /// attempt's error.
    Dead {
        /// Only the dead letters of this job.
        #[arg(long, value_name = "JOB")]
        job: Option<String>,
        /// Print them as JSON on stdout: an array of `dead_letter`s
        /// (docs/schemas/cli.schema.json).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArg,
    },
    /// Re-drive a dead letter: the task goes back to Ready with a fresh
    /// attempt budget, its dependents that failed because of it go back to
    /// Pending, and its job, if it ended failed, is reopened. The job then
    /// runs wherever it is served (a `dagger worker`, or a program's
    /// `TaskManager::resume_job`).
    Retry {
        /// The task.
        task_id: String,
        #[command(flatten)]
        db: DbArg,
    },
}

pub(crate) async fn tasks(command: TasksCommand) -> Result<ExitCode, CliError> {
    match command {
        TasksCommand::Dead { job, json, db } => dead(job.as_deref(), json, &db.db).await,
        TasksCommand::Retry { task_id, db } => retry(&task_id, &db.db).await,
    }
}

async fn manager(db: &str) -> Result<TaskManager, CliError> {
    let store = open_store(db).await?;
    Ok(TaskManager::new(
        Duration::from_secs(60),
        StallAction::TerminateJob,
        Cache::new(),
        TaskAgentRegistry::new(),
        store.task_store(),
    ))
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string())
        .unwrap_or_else(|| ms.to_string())
}

async fn dead(job: Option<&str>, as_json: bool, db: &str) -> Result<ExitCode, CliError> {
    if let Some(path) = missing_file(db) {
        errln!("no database at {}: no dead letters", path.display());
        if as_json {
            outln!("[]");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let m = manager(db).await?;
    let letters = m
        .dead_letters(job)
        .map_err(|e| CliError::Other(format!("listing dead letters in {db}: {e}")))?;
    if as_json {
        let out: Vec<_> = letters
            .iter()
            .map(|d| {
                json!({
                    "task_id": d.task.task_id,
                    "job_id": d.task.job_id,
                    "agent": d.task.agent,
                    "description": d.task.description,
                    "attempts": d.task.attempts,
                    "error": d.task.error,
                    "finished_at": d.task.finished_at,
                    "errors": d.errors,
                })
            })
            .collect();
        let text = serde_json::to_string_pretty(&out)
            .map_err(|e| CliError::Other(format!("cannot print JSON: {e}")))?;
        outln!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    if letters.is_empty() {
        match job {
            Some(j) => outln!("no dead letters in job {j}"),
            None => outln!("no dead letters"),
        }
        return Ok(ExitCode::SUCCESS);
    }
    for d in &letters {
        let t = &d.task;
        outln!(
            "{}  job {}  agent {}  attempts {}  {}",
            t.task_id,
            t.job_id,
            t.agent,
            t.attempts,
            t.description
        );
        for e in &d.errors {
            outln!("  attempt {} at {}: {}", e.attempt, time(e.at), e.error);
        }
    }
    outln!(
        "{} dead letter(s); re-drive one with `dagger tasks retry TASK_ID`",
        letters.len()
    );
    Ok(ExitCode::SUCCESS)
}

async fn retry(task_id: &str, db: &str) -> Result<ExitCode, CliError> {
    if let Some(path) = missing_file(db) {
        return Err(CliError::Other(format!(
            "cannot re-drive task `{task_id}`: no database at {}",
            path.display()
        )));
    }
    let m = manager(db).await?;
    let done = m
        .retry_dead(task_id)
        .map_err(|e| CliError::Other(format!("cannot re-drive task `{task_id}`: {e}")))?;
    outln!(
        "task {} of job {} is Ready again with a fresh attempt budget",
        done.task_id,
        done.job_id
    );
    if !done.reset.is_empty() {
        let reset: Vec<_> = done.reset.iter().map(|t| t.as_str()).collect();
        outln!("brought back: {}", reset.join(", "));
    }
    if done.job_reopened {
        outln!(
            "job {} was reopened; it runs where it is served (`dagger worker`, or TaskManager::resume_job)",
            done.job_id
        );
    }
    Ok(ExitCode::SUCCESS)
}
