//! The application's library code running a workflow by itself, without
//! the CLI: `record_run WORKFLOW DB RUN_ID [KEY=VALUE …]` runs `WORKFLOW`
//! with this crate's actions on store `DB` (`sqlite:PATH`) as run `RUN_ID`
//! and prints its status. A run it leaves unfinished can be resumed with
//! the application's command: `dagger-example-app resume RUN_ID --db DB`.

use dagger::prelude::*;
use std::process::ExitCode;

// Links the library, whose `#[action]`s register themselves.
use dagger_example_app as _;

#[tokio::main]
async fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [workflow, db, run_id, inputs @ ..] = args.as_slice() else {
        return Err("usage: record_run WORKFLOW DB RUN_ID [KEY=VALUE …]".into());
    };
    let registry = ActionRegistry::new();
    dagger::register_all_actions(&registry)?;
    let mut executor = DagExecutor::new(None, registry, SqliteStore::open(db).await?).await?;
    let def = dagger::dag_flow::load_yaml_path_with_actions(workflow, executor.registry())
        .map_err(|e| e.to_string())?;
    let name = def.name.clone();
    executor.insert_workflow(def, workflow.clone())?;
    let cache = Cache::new();
    for input in inputs {
        let (key, value) = input
            .split_once('=')
            .ok_or_else(|| format!("input `{input}` is not KEY=VALUE"))?;
        cache.insert("inputs", key, serde_json::Value::from(value));
    }
    let (_cancel, cancel_rx) = tokio::sync::oneshot::channel();
    let report = Coordinator::new(Vec::new(), 64, 64)
        .run_parallel(&mut executor, &cache, &name, run_id, cancel_rx)
        .await?;
    println!("run {run_id} {}", report.status);
    Ok(if report.status == RunStatus::Completed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
