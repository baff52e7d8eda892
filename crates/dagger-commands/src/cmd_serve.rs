//! `dagger serve`: the web interface over the store.

use crate::App;
use crate::DbArg;
use crate::error::CliError;
use crate::store::AnyStore;
use dagger_serve::{ServeOptions, Server, WorkflowCatalog};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// Where workflow definitions are read from unless `--workflows` says otherwise.
const DEFAULT_WORKFLOWS: &str = "examples/workflows";

/// Arguments of `dagger serve`.
#[derive(clap::Args, Debug)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    db: DbArg,
    /// Address to listen on. Loopback by default; any other address needs --token.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Token that changes (cancel, resume, approve, reject) must carry; at
    /// least 16 characters.
    #[arg(long, env = "DAGGER_SERVE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Directory of workflow definitions for the Workflows page.
    #[arg(long, default_value = DEFAULT_WORKFLOWS)]
    workflows: PathBuf,
    /// Take over orphaned runs (unfinished, their process stopped renewing
    /// its lease), checking every SECS seconds [default: 5]
    #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "5")]
    resume_orphans: Option<f64>,
    /// Do not fire the schedules of the workflows directory's workflows
    /// (`schedules:`, and those added to the store with `dagger schedule
    /// add`; fired by default when the store is writable).
    #[arg(long)]
    no_schedules: bool,
    #[command(flatten)]
    run_lease: crate::cmd_run::RunLeaseArg,
}

pub(crate) async fn serve(args: ServeArgs, app: &App) -> Result<ExitCode, CliError> {
    let token = args.token.filter(|t| !t.is_empty());
    let run_lease = args.run_lease.duration()?;
    let resume_orphans = args
        .resume_orphans
        .map(crate::cmd_worker::scan_interval)
        .transpose()?;
    // Refuse an unsafe address before touching the store.
    dagger_serve::check_bind(args.addr, token.as_deref())
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let catalog = if args.workflows.as_os_str() == DEFAULT_WORKFLOWS && !args.workflows.is_dir() {
        WorkflowCatalog::default()
    } else {
        dagger_serve::load_workflow_dir(&args.workflows)
            .map_err(|e| CliError::Usage(e.to_string()))?
    };
    // A database on read-only media is served read-only: its pages and read
    // API work, changes answer 503 naming the database.
    // A database that does not exist yet is created: serve starts runs.
    let store = match AnyStore::open_for_reading(&args.db.db).await? {
        Some(store) => store,
        None => crate::open_store(&args.db.db).await?,
    };
    if store.is_read_only() {
        if resume_orphans.is_some() {
            return Err(CliError::Usage(format!(
                "--resume-orphans needs to write, and database `{}` is read-only",
                store.location()
            )));
        }
        errln!(
            "database `{}` is read-only: serving its pages; changes (start, resume, cancel, approve, reject) are refused",
            store.location()
        );
    }
    // Every workflow of the directory: a schedule may be added to the
    // store for any of them while serve runs (`dagger schedule add`).
    let scheduled: Vec<_> = catalog
        .workflows
        .iter()
        .map(|w| (format!("workflow `{}`", w.name), w.clone()))
        .collect();
    let schedules = CancellationToken::new();
    if !args.no_schedules && !store.is_read_only() && !scheduled.is_empty() {
        let scheduler =
            crate::cmd_schedule::scheduler_of(scheduled, &store, &args.db.db, app).await?;
        errln!(
            "firing {} schedule(s) of the workflows directory",
            scheduler.schedules().count()
        );
        let cancel = schedules.clone();
        tokio::spawn(async move {
            if let Err(e) = scheduler.run(cancel).await {
                tracing::error!(error = %e, "the scheduler stopped");
            }
        });
    }
    let listener = dagger_serve::bind(args.addr, token.as_deref())
        .await
        .map_err(|e| CliError::Other(e.to_string()))?;
    let mut options = ServeOptions::new(store.stores())
        .with_catalog(catalog)
        .with_registry(app.actions_recording(&args.db.db))
        .with_task_store(store.task_store())
        .with_token(token)
        .with_run_lease(run_lease);
    if let Some(every) = resume_orphans {
        errln!("taking over orphaned runs (checking every {every:?})");
        options = options.with_resume_orphans(every);
    }
    if let Some(data) = app.app_data() {
        options = options.with_app_data(data);
    }
    if let Some(log) = store.message_log() {
        options = options.with_message_log(log);
    }
    let server = Server::new(options).map_err(|e| CliError::Other(e.to_string()))?;
    let local = listener.local_addr().unwrap_or(args.addr);
    errln!(
        "serving {} on http://{local}/ (Ctrl-C to stop)",
        store.location()
    );
    server
        .serve(listener, async {
            let _ = tokio::signal::ctrl_c().await;
            errln!("stopping: live pages close, runs resumed here are cancelled");
        })
        .await
        .map_err(|e| CliError::Other(e.to_string()))?;
    schedules.cancel();
    Ok(ExitCode::SUCCESS)
}
