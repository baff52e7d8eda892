//! The `dagger` command: validate, run, resume and inspect DAG Flow workflows
//! on the embedded SQLite store or a shared Postgres database, and serve as
//! a worker of a Postgres-backed pool (`dagger worker`).

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod actions;
mod cmd_control;
mod cmd_inspect;
mod cmd_run;
mod cmd_serve;
mod cmd_worker;
mod error;
mod progress;
mod store;

use clap::{Parser, Subcommand};
use error::CliError;
use std::path::PathBuf;
use std::process::ExitCode;

/// Where runs are stored unless `--db` or `DAGGER_DB` says otherwise.
pub(crate) const DEFAULT_DB: &str = "sqlite:.dagger/dagger.db";

#[derive(Parser, Debug)]
#[command(
    name = "dagger",
    version,
    about = "Run and inspect Dagger workflows",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The store location flag shared by the commands that use one.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct DbArg {
    /// Store location: `sqlite:PATH`, `sqlite::memory:` or `postgres://user@host/db` [default:
    /// sqlite:.dagger/dagger.db in the current directory, or $DAGGER_DB]
    #[arg(long, env = "DAGGER_DB", default_value = DEFAULT_DB, hide_default_value = true)]
    pub(crate) db: String,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check workflow files; print every problem as `file:line:col: message`.
    Validate {
        /// Workflow YAML files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run a workflow with the built-in actions (shell, sleep, echo, fail). With
    /// `--db postgres://…` the nodes run on `dagger worker` processes (unless `--local`).
    Run(cmd_run::RunArgs),
    /// Resume an interrupted, paused or failed run; only unfinished nodes run.
    Resume {
        /// The run to resume.
        run_id: String,
        #[command(flatten)]
        db: DbArg,
        /// Print the report as JSON on stdout.
        #[arg(long)]
        json: bool,
        /// With a Postgres store, execute the nodes in this process instead of
        /// dispatching them to `dagger worker` processes.
        #[arg(long)]
        local: bool,
        #[command(flatten)]
        run_lease: cmd_run::RunLeaseArg,
    },
    /// List or show recorded runs.
    Runs {
        #[command(subcommand)]
        command: cmd_inspect::RunsCommand,
    },
    /// Print a workflow definition (FILE) or a recorded run (--run ID) as Graphviz DOT.
    Dot {
        /// A workflow YAML file.
        #[arg(required_unless_present = "run", conflicts_with = "run")]
        file: Option<PathBuf>,
        /// A recorded run id.
        #[arg(long)]
        run: Option<String>,
        #[command(flatten)]
        db: DbArg,
    },
    /// Ask a run (possibly in another process) to stop; it stops within a second.
    Cancel {
        /// The run.
        run_id: String,
        /// Why.
        #[arg(long, default_value = "cancelled from the command line")]
        reason: String,
        #[command(flatten)]
        db: DbArg,
    },
    /// Approve a node waiting for a human, optionally with JSON input.
    Approve {
        /// The run.
        run_id: String,
        /// The waiting node.
        node_id: String,
        /// JSON given to the node as its input `human_input`.
        #[arg(long)]
        input: Option<String>,
        #[command(flatten)]
        db: DbArg,
    },
    /// Reject a node waiting for a human: it fails with the reason.
    Reject {
        /// The run.
        run_id: String,
        /// The waiting node.
        node_id: String,
        /// Why.
        #[arg(long, default_value = "rejected from the command line")]
        reason: String,
        #[command(flatten)]
        db: DbArg,
    },
    /// Serve the web interface (runs, workflows, JSON API) over the store.
    Serve(cmd_serve::ServeArgs),
    /// Work for a pool sharing a Postgres store: execute the DAG nodes that
    /// `dagger run --db postgres://…` dispatches and the tasks of running Task
    /// Agent jobs, with the built-in actions. Stops on Ctrl-C or SIGTERM.
    Worker(cmd_worker::WorkerArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DAGGER_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(CliError::Invalid { count }) => {
            eprintln!("{count} problem(s) found");
            ExitCode::from(1)
        }
        Err(CliError::Usage(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

async fn dispatch(command: Command) -> Result<ExitCode, CliError> {
    match command {
        Command::Validate { files } => cmd_run::validate(&files),
        Command::Run(args) => cmd_run::run(args).await,
        Command::Resume {
            run_id,
            db,
            json,
            local,
            run_lease,
        } => cmd_run::resume(&run_id, &db.db, json, local, &run_lease).await,
        Command::Runs { command } => cmd_inspect::runs(command).await,
        Command::Dot { file, run, db } => cmd_inspect::dot(file, run, &db.db).await,
        Command::Cancel { run_id, reason, db } => {
            cmd_control::cancel(&run_id, &reason, &db.db).await
        }
        Command::Approve {
            run_id,
            node_id,
            input,
            db,
        } => cmd_control::approve(&run_id, &node_id, input.as_deref(), &db.db).await,
        Command::Reject {
            run_id,
            node_id,
            reason,
            db,
        } => cmd_control::reject(&run_id, &node_id, &reason, &db.db).await,
        Command::Serve(args) => cmd_serve::serve(args).await,
        Command::Worker(args) => cmd_worker::worker(args).await,
    }
}

/// Opens the store (SQLite or Postgres), creating the default `.dagger/`
/// directory when needed.
pub(crate) async fn open_store(db: &str) -> Result<store::AnyStore, CliError> {
    if db == DEFAULT_DB {
        std::fs::create_dir_all(".dagger")
            .map_err(|e| CliError::Other(format!("cannot create `.dagger/`: {e}")))?;
    }
    store::AnyStore::open(db).await
}
