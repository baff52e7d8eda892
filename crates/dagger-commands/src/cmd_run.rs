//! `dagger validate`, `dagger run` and `dagger resume`.

use crate::App;
use crate::error::CliError;
use crate::progress::Progress;
use crate::signals::{self, Interrupt};
use crate::store::{AnyStore, resolve_run_id};
use crate::view::{NodeJson, ReportJson, human_duration, print_issues, print_json};
use crate::{DbArg, open_store};
use dagger_coord::{Coordinator, DagExecutionReport, EventHook, KeyPolicy};
use dagger_core::store::RunUpdate;
use dagger_core::{Cache, NodeStatus, RunId, RunStatus};
use dagger_dag_flow::{
    DagConfig, DagConfigOverride, WorkflowDef, apply_run_inputs, load_yaml_path,
    load_yaml_path_with_actions, run_inputs_help,
};
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// `--run-lease`: how long this process's ownership of a run lasts without renewal.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct RunLeaseArg {
    /// Lease in seconds this process holds on the runs it executes, renewed
    /// every third of it. If the process dies, its run shows as Orphaned
    /// this long after the last renewal and may then be resumed elsewhere;
    /// until then a resume from another host is refused.
    #[arg(
        long = "run-lease",
        value_name = "SECS",
        env = "DAGGER_RUN_LEASE",
        default_value_t = 15.0
    )]
    pub(crate) secs: f64,
}

impl RunLeaseArg {
    /// The lease, or a usage error for one under 0.1 s.
    pub(crate) fn duration(&self) -> Result<std::time::Duration, CliError> {
        if !(self.secs.is_finite() && self.secs >= 0.1) {
            return Err(CliError::Usage(
                "--run-lease must be at least 0.1 seconds".into(),
            ));
        }
        Ok(std::time::Duration::from_secs_f64(self.secs))
    }
}

/// Arguments of `dagger run`.
#[derive(clap::Args, Debug)]
pub(crate) struct RunArgs {
    /// The workflow YAML file.
    file: PathBuf,
    /// A run input as KEY=VALUE (VALUE is parsed as JSON when it is valid JSON, else taken as a string).
    /// Checked against the workflow's declared `inputs:` before any node runs.
    #[arg(long = "input", value_name = "KEY=VALUE")]
    inputs: Vec<String>,
    /// Print the workflow's declared inputs (name, type, default, description) and exit.
    #[arg(long)]
    help_inputs: bool,
    #[command(flatten)]
    db: DbArg,
    /// The run id (default: a new UUID v7).
    #[arg(long)]
    run_id: Option<String>,
    /// Start the run under this idempotency key of the workflow: when the
    /// key names a run already (in this store, from any process), print
    /// that run's id and start nothing.
    #[arg(long, value_name = "KEY")]
    idempotency_key: Option<String>,
    /// What a start under a key that names a run does: `once` (answer with
    /// that run, always), `skip` (answer with it while it is unfinished,
    /// else start a new run), `cancel_other` (cancel it if unfinished and
    /// start a new run).
    #[arg(long, value_name = "POLICY", default_value = "once", requires = "idempotency_key",
          value_parser = parse_key_policy)]
    key_policy: KeyPolicy,
    /// Run one node at a time, in topological order.
    #[arg(long)]
    sequential: bool,
    /// At most N nodes at once.
    #[arg(long, value_name = "N")]
    max_parallel: Option<usize>,
    /// Print the report as JSON on stdout (a `report` of
    /// docs/schemas/cli.schema.json; progress still goes to stderr).
    #[arg(long)]
    json: bool,
    /// No progress on stderr (errors still print).
    #[arg(long, short = 'q')]
    quiet: bool,
    /// With a Postgres store, execute the nodes in this process instead of
    /// dispatching them to `dagger worker` processes.
    #[arg(long)]
    local: bool,
    #[command(flatten)]
    run_lease: RunLeaseArg,
}

/// Checks workflow files against the binary's actions; prints every problem.
/// Each argument is a file, a directory (its `*.yaml` and `*.yml` files) or
/// a glob pattern the shell did not expand (`'flows/**/*.yaml'`).
/// With `json`, prints a `validation` (docs/schemas/cli.schema.json).
pub(crate) fn validate(args: &[PathBuf], json: bool, app: &App) -> Result<ExitCode, CliError> {
    let files = workflow_files(args)?;
    let registry = app.actions();
    let mut problems = Vec::new();
    for file in &files {
        if let Err(errors) = load_yaml_path_with_actions(file, &registry) {
            problems.extend(errors.into_issues());
        }
    }
    if json {
        print_json(&serde_json::json!({
            "files": files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
            "problems": problems
                .iter()
                .map(|p| serde_json::json!({
                    "file": p.file,
                    "line": p.line,
                    "column": p.column,
                    "message": p.kind.to_string(),
                }))
                .collect::<Vec<_>>(),
        }))?;
        return Ok(if problems.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    print_issues(&problems);
    if !problems.is_empty() {
        return Err(CliError::Invalid {
            count: problems.len(),
        });
    }
    outln!("{} workflow file(s) valid", files.len());
    Ok(ExitCode::SUCCESS)
}

/// The files `args` name: files as they are, a directory's `*.yaml` and
/// `*.yml` files (sorted, not recursive), a glob pattern's matches (sorted).
/// A directory without workflow files, or a pattern that matches nothing,
/// is a usage error naming it.
fn workflow_files(args: &[PathBuf]) -> Result<Vec<PathBuf>, CliError> {
    let mut files = Vec::new();
    for arg in args {
        if arg.is_dir() {
            let entries = std::fs::read_dir(arg)
                .map_err(|e| CliError::Other(format!("cannot read {}: {e}", arg.display())))?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect();
            if found.is_empty() {
                return Err(CliError::Usage(format!(
                    "no *.yaml or *.yml file in directory {}",
                    arg.display()
                )));
            }
            found.sort();
            files.extend(found);
            continue;
        }
        let text = arg.to_string_lossy();
        if arg.exists() || !text.contains(['*', '?', '[']) {
            files.push(arg.clone());
            continue;
        }
        let matches =
            glob::glob(&text).map_err(|e| CliError::Usage(format!("bad pattern `{text}`: {e}")))?;
        let mut found: Vec<PathBuf> = matches
            .filter_map(Result::ok)
            .filter(|p| p.is_file())
            .collect();
        if found.is_empty() {
            return Err(CliError::Usage(format!("no file matches `{text}`")));
        }
        found.sort();
        files.extend(found);
    }
    Ok(files)
}

pub(crate) fn parse_input(text: &str) -> Result<(String, Value), CliError> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| CliError::Usage(format!("--input `{text}` is not of the form KEY=VALUE")))?;
    if key.is_empty() {
        return Err(CliError::Usage(format!(
            "--input `{text}` has an empty key"
        )));
    }
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()));
    Ok((key.to_string(), value))
}

pub(crate) async fn run(args: RunArgs, app: &App) -> Result<ExitCode, CliError> {
    let lease = args.run_lease.duration()?;
    let inputs: Vec<(String, Value)> = args
        .inputs
        .iter()
        .map(|t| parse_input(t))
        .collect::<Result<_, _>>()?;
    let mut def = match load_yaml_path(&args.file) {
        Ok(def) => def,
        Err(errors) => {
            print_issues(errors.issues());
            return Err(CliError::Invalid {
                count: errors.issues().len(),
            });
        }
    };
    if args.help_inputs {
        out!("{}", run_inputs_help(&def));
        return Ok(ExitCode::SUCCESS);
    }
    // Inputs are checked here too (the coordinator checks them again) so a
    // mistake prints the declared inputs, before the store is opened.
    let given: serde_json::Map<String, Value> = inputs.iter().cloned().collect();
    if let Err(e) = apply_run_inputs(&def, &given) {
        errln!("error: {e}");
        errln!("{}", run_inputs_help(&def).trim_end());
        return Ok(ExitCode::from(2));
    }
    // Command-line flags win over the workflow's own config.
    let mut overrides = def.config.take().unwrap_or_default();
    if args.sequential {
        overrides.enable_parallel_execution = Some(false);
    }
    if let Some(n) = args.max_parallel {
        if n == 0 {
            return Err(CliError::Usage("--max-parallel must be at least 1".into()));
        }
        overrides.max_parallel_nodes = Some(n);
    }
    def.config = (overrides != DagConfigOverride::default()).then_some(overrides);
    let name = def.name.clone();
    let node_count = def.nodes.len();

    let store = open_store(&args.db.db).await?;
    let mut executor = app
        .executor(
            Some(DagConfig::default()),
            app.actions_recording(&args.db.db),
            store.stores(),
        )
        .await
        .map_err(dagger_coord::CoordError::from)?;
    executor
        .insert_workflow(def, args.file.display().to_string())
        .map_err(dagger_coord::CoordError::from)?;
    let cache = Cache::new();
    for (k, v) in inputs {
        cache.insert("inputs", &k, v);
    }
    let run_id = args.run_id.unwrap_or_else(|| RunId::generate().to_string());
    if !args.quiet {
        errln!(
            "run {run_id}: workflow `{name}` ({node_count} nodes), store {}",
            store.location()
        );
    }
    let coordinator = dispatching(
        Coordinator::new(
            vec![Arc::new(Progress::new(node_count, args.quiet)) as Arc<dyn EventHook>],
            256,
            256,
        )
        .with_run_lease(lease),
        &store,
        args.local,
        args.quiet,
    );
    let (interrupt, cancel_rx) = signals::cancel_on_signal();
    let key = args
        .idempotency_key
        .as_deref()
        .map(|k| (k, args.key_policy));
    let started = coordinator
        .run_keyed(&mut executor, &cache, &name, &run_id, key, cancel_rx)
        .await;
    let mut report = match started {
        Err(dagger_coord::CoordError::AlreadyStarted { key, run_id }) => {
            return Ok(already_started(&key, &run_id, args.json));
        }
        other => other?,
    };
    record_signal(&store, &mut report, &interrupt).await;
    let def = executor
        .workflow(&name)
        .map_err(dagger_coord::CoordError::from)?
        .def
        .clone();
    Ok(finish(&report, &cache, &def, args.json, &interrupt))
}

/// `--key-policy`'s values.
fn parse_key_policy(text: &str) -> Result<KeyPolicy, String> {
    KeyPolicy::parse(text).ok_or_else(|| format!("`{text}` is not one of once, skip, cancel_other"))
}

/// What `run` prints when its idempotency key names a run already: the
/// run's id (as JSON with `--json`: an `already_started` of
/// docs/schemas/cli.schema.json). Exit code 0: the start is answered.
fn already_started(key: &str, run_id: &str, json: bool) -> ExitCode {
    if json {
        let value = serde_json::json!({
            "run_id": run_id,
            "idempotency_key": key,
            "started": false,
        });
        outln!("{value}");
    } else {
        errln!("idempotency key `{key}` names run {run_id}; no new run started");
        outln!("{run_id}");
    }
    ExitCode::SUCCESS
}

/// How `resume` reports: `--json`, `--quiet`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Output {
    /// The report as JSON on stdout.
    pub(crate) json: bool,
    /// No progress on stderr.
    pub(crate) quiet: bool,
}

pub(crate) async fn resume(
    run_id: &str,
    db: &str,
    output: Output,
    local: bool,
    run_lease: &RunLeaseArg,
    app: &App,
) -> Result<ExitCode, CliError> {
    let Output { json, quiet } = output;
    let lease = run_lease.duration()?;
    let store = AnyStore::open_run(db, run_id).await?;
    let run_id = resolve_run_id(&store.stores(), run_id).await?;
    let run_id = run_id.as_str();
    let mut executor = app
        .executor(None, app.actions_recording(db), store.stores())
        .await
        .map_err(dagger_coord::CoordError::from)?;
    let view = dagger_coord::load_run_view(&store.stores(), run_id).await?;
    if view.record.status == RunStatus::Completed {
        if json {
            print_json(&ReportJson {
                run_id: run_id.to_string(),
                workflow: view.record.workflow.clone(),
                status: view.record.status,
                reason: Some("already finished; nothing to resume".into()),
                duration_ms: 0,
                resumed: false,
                metrics: None,
                nodes: view.nodes.iter().map(NodeJson::from).collect(),
            })?;
        } else {
            outln!(
                "run {run_id} already finished with status Completed; nothing to resume \
                 (run it again with: dagger rerun {run_id} [--from NODE] [--input KEY=VALUE])"
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let pending = view
        .nodes
        .iter()
        .filter(|n| n.status != NodeStatus::Completed)
        .count();
    if !quiet {
        errln!(
            "resuming run {run_id}: workflow `{}`, {pending} node(s) not completed",
            view.record.workflow
        );
    }
    let coordinator = dispatching(
        Coordinator::new(
            vec![Arc::new(Progress::new(pending, quiet)) as Arc<dyn EventHook>],
            256,
            256,
        )
        .with_run_lease(lease),
        &store,
        local,
        quiet,
    );
    let (interrupt, cancel_rx) = signals::cancel_on_signal();
    let cache = Cache::new();
    match coordinator
        .resume(&mut executor, &cache, run_id, cancel_rx)
        .await
    {
        Ok(mut report) => {
            record_signal(&store, &mut report, &interrupt).await;
            Ok(finish(&report, &cache, &view.workflow, json, &interrupt))
        }
        Err(dagger_coord::CoordError::AlreadyFinished { status, .. }) => {
            outln!("run {run_id} already finished with status {status}; nothing to resume");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(e.into()),
    }
}

/// With a shared (Postgres) store and without `--local`, hands the nodes'
/// attempts to the `dagger worker` pool.
/// `quiet` leaves out the note saying so.
pub(crate) fn dispatching(
    coordinator: Coordinator,
    store: &AnyStore,
    local: bool,
    quiet: bool,
) -> Coordinator {
    match store.node_queue() {
        Some(queue) if !local => {
            if !quiet {
                errln!(
                    "dispatching nodes to the worker pool (start workers with `dagger worker --db <same URL>`; --local runs them here)"
                );
            }
            coordinator.with_node_queue(queue)
        }
        _ => coordinator,
    }
}

/// A run cancelled by a signal is recorded with the signal as its reason
/// (`signal: SIGTERM`), in the store and in the report.
pub(crate) async fn record_signal(
    store: &AnyStore,
    report: &mut DagExecutionReport,
    interrupt: &Interrupt,
) {
    let Some(sig) = interrupt.signal() else {
        return;
    };
    if report.status != RunStatus::Cancelled {
        return;
    }
    let reason = signals::reason(sig);
    let update = RunUpdate {
        reason: Some(Some(reason.clone())),
        ..Default::default()
    };
    let run_id = RunId::from(report.run_id.as_str());
    if let Err(e) = store.stores().runs.update_run(&run_id, update).await {
        errln!(
            "warning: run {}: cannot record the cancel reason `{reason}`: {e}",
            report.run_id
        );
    }
    report.reason = Some(reason);
}

pub(crate) fn finish(
    report: &DagExecutionReport,
    cache: &Cache,
    def: &WorkflowDef,
    json: bool,
    interrupt: &Interrupt,
) -> ExitCode {
    if json {
        if let Err(e) = print_json(&ReportJson::from(report)) {
            errln!("error: {e}");
        }
    } else {
        print_summary(report);
        print_results(report, cache, def);
    }
    match report.status {
        RunStatus::Completed => ExitCode::SUCCESS,
        RunStatus::Cancelled => match interrupt.signal() {
            Some(sig) => ExitCode::from(signals::exit_code(sig)),
            None => ExitCode::from(1),
        },
        _ => ExitCode::from(1),
    }
}

/// Prints what the run produced: the outputs of completed nodes nothing else depends on.
fn print_results(report: &DagExecutionReport, cache: &Cache, def: &WorkflowDef) {
    let upstream: std::collections::HashSet<&str> = def
        .nodes
        .iter()
        .flat_map(|n| n.dependencies.iter().map(String::as_str))
        .collect();
    for n in report
        .nodes
        .iter()
        .filter(|n| n.status == NodeStatus::Completed && !upstream.contains(n.id.as_str()))
    {
        let Some(outputs) = cache.namespace(n.id.as_str()) else {
            continue;
        };
        let shown = match outputs.get("stdout") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => Value::Object(outputs).to_string(),
        };
        if !shown.is_empty() {
            outln!("\n[{}]\n{shown}", n.id);
        }
    }
}

fn print_summary(report: &DagExecutionReport) {
    let m = &report.metrics;
    outln!(
        "run {} {}: {} completed, {} failed, {} skipped, {} cancelled in {}",
        report.run_id,
        report.status,
        m.nodes_completed,
        m.nodes_failed,
        m.nodes_skipped,
        m.nodes_cancelled,
        human_duration(i64::try_from(report.duration_ms).unwrap_or(i64::MAX))
    );
    if let Some(reason) = &report.reason {
        outln!("reason: {reason}");
    }
    for n in &report.nodes {
        if let Some(err) = &n.error
            && matches!(n.status, NodeStatus::Failed)
        {
            outln!("  {} failed after {} attempt(s): {err}", n.id, n.attempts);
        }
    }
    match report.status {
        RunStatus::Paused | RunStatus::Cancelled | RunStatus::WaitingForHuman => {
            outln!("resume with: dagger resume {}", report.run_id);
        }
        // Resuming re-runs a failed node with the same inputs and the same
        // upstream outputs; after its attempts failed, that rarely helps.
        // A re-run with changed inputs, or from a fixed upstream node, does.
        RunStatus::Failed => {
            let from = report
                .nodes
                .iter()
                .find(|n| n.status == NodeStatus::Failed)
                .map_or_else(|| "NODE".to_string(), |n| n.id.to_string());
            outln!(
                "re-run with: dagger rerun {} --from {from} [--input KEY=VALUE]",
                report.run_id
            );
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_parse_as_json_or_string() {
        assert_eq!(parse_input("n=3").unwrap(), ("n".into(), Value::from(3)));
        assert_eq!(
            parse_input("s=hello world").unwrap(),
            ("s".into(), Value::from("hello world"))
        );
        assert_eq!(parse_input("o={\"a\":1}").unwrap().1["a"], 1);
        assert_eq!(parse_input("e=").unwrap().1, Value::from(""));
        assert!(matches!(parse_input("novalue"), Err(CliError::Usage(_))));
        assert!(matches!(parse_input("=1"), Err(CliError::Usage(_))));
    }
}
