//! `dagger gc`: removes what finished before a cutoff (old finished runs,
//! their attempts and unshared artifacts, ended task jobs, Pub/Sub messages
//! every subscriber passed) through [`Retention::prune`].

use crate::DbArg;
use crate::error::CliError;
use crate::store::AnyStore;
use dagger_core::store::{PruneReport, Retention};
use std::process::ExitCode;

/// `dagger gc` arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct GcArgs {
    /// Remove what finished more than this long ago (`30d`, `12h`, `90m`).
    /// Runs that have not finished are never removed, however old.
    #[arg(long, value_name = "DURATION")]
    older_than: String,
    /// Count what would be removed; remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the counts as JSON (a `gc_report` of docs/schemas/cli.schema.json).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    db: DbArg,
}

pub(crate) async fn gc(args: GcArgs) -> Result<ExitCode, CliError> {
    let age = dagger_dag_flow::schedule::parse_duration_ms(&args.older_than)
        .map_err(|e| CliError::Usage(format!("--older-than: {e}")))?;
    let cutoff = dagger_core::now_millis().saturating_sub(age);
    // A SQLite file that does not exist has nothing to prune; gc creates none.
    let report = match AnyStore::open_for_reading(&args.db.db).await? {
        None => PruneReport::default(),
        Some(AnyStore::Sqlite(s)) => s.prune(cutoff, args.dry_run).await?,
        #[cfg(feature = "postgres")]
        Some(AnyStore::Postgres(s)) => s.prune(cutoff, args.dry_run).await?,
    };
    if args.json {
        let value = serde_json::json!({
            "cutoff_at": cutoff,
            "dry_run": args.dry_run,
            "counts": report,
        });
        outln!("{value}");
    } else {
        let verb = if args.dry_run {
            "WOULD REMOVE"
        } else {
            "REMOVED"
        };
        outln!("{:<20} {verb}", "KIND");
        for (kind, n) in report.rows() {
            outln!("{kind:<20} {n}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
