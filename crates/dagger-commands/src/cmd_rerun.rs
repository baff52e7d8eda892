//! `dagger rerun`: a new run of a recorded run's definition that reuses the
//! recorded outputs of every node not downstream of `--from`.

use crate::DbArg;
use crate::app::App;
use crate::cmd_run::{RunLeaseArg, dispatching, finish, parse_input, record_signal};
use crate::error::CliError;
use crate::progress::Progress;
use crate::signals;
use crate::store::{AnyStore, resolve_run_id};
use dagger_coord::{Coordinator, EventHook, RerunRequest};
use dagger_core::{Cache, RunId};
use dagger_dag_flow::{DagError, run_inputs_help};
use std::process::ExitCode;
use std::sync::Arc;

/// Arguments of `dagger rerun`.
#[derive(clap::Args, Debug)]
pub(crate) struct RerunArgs {
    /// The recorded run to run again (the parent; it is left as it was), or
    /// the start of its id when only one run's id starts so.
    run_id: String,
    /// Run this node and everything downstream of it again; reuse the
    /// recorded outputs of the rest. Without it, every node runs again.
    #[arg(long, value_name = "NODE")]
    from: Option<String>,
    /// Change a run input, as KEY=VALUE (JSON, else a string). Nodes reading
    /// a changed input run again too.
    #[arg(long = "input", value_name = "KEY=VALUE")]
    inputs: Vec<String>,
    /// The new run's id (default: a new UUID v7).
    #[arg(long = "run-id")]
    new_run_id: Option<String>,
    #[command(flatten)]
    db: DbArg,
    /// Print the report as JSON on stdout (a `report` of docs/schemas/cli.schema.json).
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

impl RerunArgs {
    /// The store location.
    pub(crate) fn db(&self) -> &str {
        &self.db.db
    }
}

/// Runs `args` with the app's actions (and its app data).
pub(crate) async fn rerun(args: RerunArgs, app: &App) -> Result<ExitCode, CliError> {
    let lease = args.run_lease.duration()?;
    let store = AnyStore::open_run(&args.db.db, &args.run_id).await?;
    let parent = resolve_run_id(&store.stores(), &args.run_id).await?;
    let mut request = RerunRequest::new(parent.as_str());
    request.from_node = args.from.clone();
    for text in &args.inputs {
        let (k, v) = parse_input(text)?;
        request.inputs.insert(k, v);
    }
    let new_id = args
        .new_run_id
        .clone()
        .unwrap_or_else(|| RunId::generate().to_string());
    request.run_id = Some(new_id.clone());
    let mut executor = app
        .executor(None, app.actions_recording(args.db()), store.stores())
        .await
        .map_err(dagger_coord::CoordError::from)?;
    let view = dagger_coord::load_run_view(&store.stores(), parent.as_str()).await?;
    if !args.quiet {
        errln!(
            "run {new_id}: re-running run {parent} (workflow `{}`) {}",
            view.record.workflow,
            args.from.as_deref().map_or_else(
                || "from the start".to_string(),
                |n| format!("from node `{n}`")
            )
        );
    }
    let coordinator = dispatching(
        Coordinator::new(
            vec![Arc::new(Progress::new(view.nodes.len(), args.quiet)) as Arc<dyn EventHook>],
            256,
            256,
        )
        .with_run_lease(lease),
        &store,
        args.local,
        args.quiet,
    );
    let (interrupt, cancel_rx) = signals::cancel_on_signal();
    let cache = Cache::new();
    match coordinator
        .rerun(&mut executor, &cache, &request, cancel_rx)
        .await
    {
        Ok(mut report) => {
            record_signal(&store, &mut report, &interrupt).await;
            Ok(finish(
                &report,
                &cache,
                &view.workflow,
                args.json,
                &interrupt,
            ))
        }
        Err(dagger_coord::CoordError::Dag(e @ DagError::InvalidRunInputs { .. })) => {
            errln!("error: {e}");
            errln!("{}", run_inputs_help(&view.workflow).trim_end());
            Ok(ExitCode::from(2))
        }
        Err(e) => Err(e.into()),
    }
}
