//! The `dagger` command as a library: validate, run, resume and inspect DAG
//! Flow workflows on the embedded SQLite store or a shared Postgres database,
//! serve the web interface, and work for a Postgres-backed pool — over the
//! actions and agents of the binary that calls it.
//!
//! A binary whose `main` is `dagger_commands::run()` (through the facade:
//! `dagger::cli::run()`, feature `cli`) is the whole `dagger` command with
//! every `#[action]`, `#[task_agent]` and `#[pubsub_agent]` of the program
//! plus the built-in actions `shell`, `sleep`, `echo`, `fail`; the shipped
//! `dagger` binary is exactly that. [`Cli`] adds hand-registered code and
//! shared state, or turns the built-ins off:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     dagger_commands::Cli::new().without_builtins().run()
//! }
//! ```

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
// Output goes through `outln!`/`errln!`: `println!` panics on a closed pipe.
#![cfg_attr(not(test), deny(clippy::print_stdout, clippy::print_stderr))]

/// `println!` that never panics: when stdout is closed (`dagger run … | head`)
/// the text is dropped and the command carries on (docs/reliability.md).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `print!` that never panics (see `outln!`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

/// `eprintln!` that never panics: when stderr is closed the text is dropped.
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod actions;
mod app;
mod cmd_control;
mod cmd_gc;
mod cmd_inspect;
mod cmd_list;
mod cmd_logs;
mod cmd_pubsub;
mod cmd_rerun;
mod cmd_run;
mod cmd_schedule;
mod cmd_schedule_store;
mod cmd_serve;
mod cmd_tasks;
mod cmd_worker;
pub mod error;
mod groups;
mod logging;
mod ops;
mod progress;
mod signals;
mod store;
mod view;

pub use app::{App, Cli};
pub use error::CliError;

use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

/// The whole `dagger` command over every annotated action, task agent and
/// pub/sub agent of the program plus the built-ins: `Cli::new().run()`.
pub fn run() -> ExitCode {
    Cli::new().run()
}

/// Where runs are stored unless `--db` or `DAGGER_DB` says otherwise.
pub(crate) const DEFAULT_DB: &str = "sqlite:.dagger/dagger.db";

#[derive(Parser, Debug)]
#[command(
    name = "dagger",
    version,
    about = "Run and inspect Dagger workflows",
    propagate_version = true
)]
struct Args {
    #[command(subcommand)]
    command: Command,
    /// How diagnostics are written on stderr (events chosen by RUST_LOG or
    /// DAGGER_LOG, `warn` by default).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t,
        env = "DAGGER_LOG_FORMAT"
    )]
    log_format: logging::LogFormat,
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
        /// Workflow YAML files, directories (their *.yaml and *.yml files) or
        /// quoted glob patterns (`'flows/**/*.yaml'`).
        #[arg(required = true, value_name = "FILE|DIR|GLOB")]
        files: Vec<PathBuf>,
        /// Print the files checked and the problems as JSON (a `validation` of
        /// docs/schemas/cli.schema.json); exit 1 when there is a problem.
        #[arg(long)]
        json: bool,
    },
    /// Run a workflow with this binary's actions (and the built-ins shell, sleep, echo, fail). With
    /// `--db postgres://…` the nodes run on `dagger worker` processes (unless `--local`).
    ///
    /// Ctrl-C, SIGTERM and SIGHUP cancel the run cleanly (recorded as `Cancelled`
    /// with reason `signal: SIGTERM` etc.; exit 130, 143, 129). A closed stdout or
    /// stderr (`dagger run wf.yaml | head`) does not stop the run: the output is
    /// dropped and the run goes on to its end.
    Run(cmd_run::RunArgs),
    /// Resume an interrupted, paused or failed run; only unfinished nodes run.
    /// Signals and closed output behave as for `run`.
    Resume {
        /// The run to resume (or the start of its id, when only one run's id starts so).
        run_id: String,
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
        run_lease: cmd_run::RunLeaseArg,
    },
    /// Start a new run of a recorded run's definition that reuses the recorded
    /// outputs of every node not downstream of `--from NODE` (without it,
    /// every node runs again), with changed inputs if given. The new run
    /// records its parent and the node it was forked from (`runs show`).
    Rerun(cmd_rerun::RerunArgs),
    /// The schedules (`schedules:`) of workflow files: list them, fire them
    /// (`run`), start one run now (`trigger`), or the runs of a past range
    /// (`backfill`).
    Schedule {
        #[command(subcommand)]
        command: cmd_schedule::ScheduleCommand,
    },
    /// List or show recorded runs.
    Runs {
        #[command(subcommand)]
        command: cmd_inspect::RunsCommand,
    },
    /// Print the recorded attempts of a run's nodes: outcome, times, error, log
    /// lines, stdout and stderr (each stream bounded to 1 MiB). An attempt is
    /// recorded when it ends; `--follow` prints them as they do, until the run ends.
    ///
    /// Exit 1, naming it, for an unknown run or node, or a missing `--attempt` of a node.
    Logs(cmd_logs::LogsArgs),
    /// Print a workflow definition (FILE) or a recorded run (--run ID) as Graphviz DOT.
    Dot {
        /// A workflow YAML file.
        #[arg(required_unless_present = "run", conflicts_with = "run")]
        file: Option<PathBuf>,
        /// A recorded run id (or the start of one, when only one run's id starts so).
        #[arg(long)]
        run: Option<String>,
        #[command(flatten)]
        db: DbArg,
    },
    /// Ask a run (possibly in another process) to stop; it stops within a second.
    /// Exit 1 if the run is unknown or already ended.
    Cancel {
        /// The run (or the start of its id, when only one run's id starts so).
        run_id: String,
        /// Why.
        #[arg(long, default_value = "cancelled from the command line")]
        reason: String,
        #[command(flatten)]
        db: DbArg,
    },
    /// Approve a node waiting for a human, optionally with JSON input.
    ///
    /// Exit 1, naming run and node, if the run is unknown or ended, the node is
    /// unknown or not waiting (an approval before the node waits is refused), or
    /// the node was already approved or rejected: the first decision recorded wins.
    Approve {
        /// The run (or the start of its id, when only one run's id starts so).
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
    ///
    /// Refused (exit 1) in the same cases as `approve`.
    Reject {
        /// The run (or the start of its id, when only one run's id starts so).
        run_id: String,
        /// The waiting node.
        node_id: String,
        /// Why.
        #[arg(long, default_value = "rejected from the command line")]
        reason: String,
        #[command(flatten)]
        db: DbArg,
    },
    /// Send a signal to a run: a node waiting for it (`wait_for: { signal: NAME }`)
    /// takes it, now or when it starts waiting; a run not running now gets it
    /// when resumed. With `--workflow W` (and no RUN), to every unfinished run
    /// of W with a node waiting for NAME; prints one line per run reached.
    ///
    /// Exit 1, naming the run, if the run is unknown or ended, no node of it
    /// waits for NAME, or the payload does not match the waiting node's
    /// `schema` (naming the node and the signal too).
    Signal {
        /// `RUN NAME`: the run (or the start of its id) and the signal's
        /// name; with `--workflow`, only `NAME`.
        #[arg(value_names = ["RUN", "NAME"], num_args = 1..=2, required = true)]
        target: Vec<String>,
        /// The payload, JSON (default `null`).
        #[arg(long)]
        data: Option<String>,
        /// Broadcast to every unfinished run of this workflow with a node
        /// waiting for NAME.
        #[arg(long)]
        workflow: Option<String>,
        #[command(flatten)]
        db: DbArg,
    },
    /// Remove what finished more than `--older-than` ago: finished runs with
    /// their node records, attempts, snapshots, idempotency keys and the
    /// artifacts no remaining run uses; ended task jobs with their tasks and
    /// dead letters; Pub/Sub messages every subscriber has passed; finished
    /// node queue items. Unfinished runs are never touched. Prints the
    /// counts (`--dry-run`: what would go).
    Gc(cmd_gc::GcArgs),
    /// Serve the web interface (runs, workflows, JSON API) over the store.
    Serve(cmd_serve::ServeArgs),
    /// Work for a pool sharing a Postgres store: execute the DAG nodes that
    /// `dagger run --db postgres://…` dispatches and the tasks of running Task
    /// Agent jobs, with this binary's actions and task agents; with `--nats URL`
    /// (feature `nats`) it also hosts the binary's pub/sub agents (alone, when
    /// the store is not Postgres). Stops on Ctrl-C, SIGTERM or SIGHUP (exit
    /// 130, 143, 129); a `shell` node's processes are killed with it.
    Worker(cmd_worker::WorkerArgs),
    /// Publish one message on a channel over NATS JetStream, to the pub/sub
    /// agents that `worker --nats` hosts; prints the message id.
    #[cfg(feature = "nats")]
    Publish(cmd_pubsub::PublishArgs),
    /// Task Agent dead letters: list them, re-drive one.
    Tasks {
        #[command(subcommand)]
        command: cmd_tasks::TasksCommand,
    },
    /// List what this binary runs: actions (with descriptions and input/output
    /// schemas), task agents and pub/sub agents.
    #[command(visible_alias = "list")]
    Actions(cmd_list::ListArgs),
    /// Print a shell completion script on stdout, e.g.
    /// `dagger completions bash > ~/.local/share/bash-completion/completions/dagger`,
    /// `dagger completions zsh > ~/.zfunc/_dagger`,
    /// `dagger completions fish > ~/.config/fish/completions/dagger.fish`.
    Completions {
        /// The shell, in any case.
        #[arg(ignore_case = true)]
        shell: clap_complete::Shell,
    },
}

/// The completion script of the `dagger` command for `shell`.
fn completions(shell: clap_complete::Shell) -> ExitCode {
    let mut command = <Args as clap::CommandFactory>::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "dagger", &mut script);
    out!("{}", String::from_utf8_lossy(&script));
    ExitCode::SUCCESS
}

/// Builds `cli`, parses `args` and runs the subcommand (`Cli::run_from`).
fn main_with<I, T>(cli: Cli, args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args = match Args::try_parse_from(args) {
        Ok(args) => args,
        // `--help` and `--version` print and exit 0; mistakes exit 2.
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let app = match cli.build() {
        Ok(app) => app,
        Err(e) => {
            errln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // Declared before the runtime, so dropped after it: the spans its tasks
    // held are closed when the traces are flushed.
    let _traces = logging::init(args.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            errln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(dispatch(args.command, &app)) {
        Ok(code) => code,
        Err(CliError::Invalid { count }) => {
            errln!("{count} problem(s) found");
            ExitCode::from(1)
        }
        Err(CliError::Usage(msg)) => {
            errln!("error: {msg}");
            ExitCode::from(2)
        }
        Err(e @ CliError::AmbiguousRunId { .. }) => {
            errln!("error: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            errln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

async fn dispatch(command: Command, app: &App) -> Result<ExitCode, CliError> {
    match command {
        Command::Validate { files, json } => cmd_run::validate(&files, json, app),
        Command::Run(args) => cmd_run::run(args, app).await,
        Command::Resume {
            run_id,
            db,
            json,
            quiet,
            local,
            run_lease,
        } => {
            let output = cmd_run::Output { json, quiet };
            cmd_run::resume(&run_id, &db.db, output, local, &run_lease, app).await
        }
        Command::Rerun(args) => cmd_rerun::rerun(args, app).await,
        Command::Gc(args) => cmd_gc::gc(args).await,
        Command::Runs { command } => cmd_inspect::runs(command).await,
        Command::Schedule { command } => cmd_schedule::schedule(command, app).await,
        Command::Logs(args) => cmd_logs::logs(args).await,
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
        Command::Signal {
            target,
            data,
            workflow,
            db,
        } => {
            let (target, name) = match (<[String; 2]>::try_from(target), workflow) {
                (Ok([run, name]), None) => (cmd_control::Target::Run(run), name),
                (Err(mut one), Some(w)) if one.len() == 1 => {
                    (cmd_control::Target::Workflow(w), one.remove(0))
                }
                (_, None) => {
                    return Err(CliError::Usage(
                        "give RUN NAME, or --workflow W NAME".into(),
                    ));
                }
                (_, Some(_)) => {
                    return Err(CliError::Usage(
                        "with --workflow give only NAME (no RUN)".into(),
                    ));
                }
            };
            cmd_control::signal(target, &name, data.as_deref(), &db.db).await
        }
        Command::Serve(args) => cmd_serve::serve(args, app).await,
        Command::Worker(args) => cmd_worker::worker(args, app).await,
        #[cfg(feature = "nats")]
        Command::Publish(args) => cmd_pubsub::publish(args).await,
        Command::Tasks { command } => cmd_tasks::tasks(command).await,
        Command::Actions(args) => cmd_list::list(&args, app),
        Command::Completions { shell } => Ok(completions(shell)),
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
