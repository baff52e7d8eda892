//! `dagger runs list|show` and `dagger dot`.

use crate::DbArg;
use crate::error::CliError;
use crate::store::AnyStore;
use dagger_core::store::RunQuery;
use dagger_core::{RunStatus, now_millis};
use dagger_dag_flow::{NodeRunView, load_yaml_path, serialize_run_to_dot, serialize_tree_to_dot};
use std::path::PathBuf;
use std::process::ExitCode;

/// `dagger runs ...`
#[derive(clap::Subcommand, Debug)]
pub(crate) enum RunsCommand {
    /// Recorded runs, newest first: id, workflow, status, started, duration.
    /// An unfinished run whose owning process stopped renewing its lease
    /// (killed, machine lost) shows as Orphaned.
    List {
        #[command(flatten)]
        db: DbArg,
        /// Only runs with this status (Running, Completed, Failed, Cancelled, Paused, WaitingForHuman,
        /// or Orphaned: unfinished, their owner's lease lapsed).
        #[arg(long)]
        status: Option<String>,
        /// Only runs of this workflow.
        #[arg(long)]
        workflow: Option<String>,
        /// At most this many runs.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// One run with a per-node table and its lineage: the run it re-ran
    /// (parent), the node it was forked from, and the runs re-run from it.
    Show {
        /// The run.
        run_id: String,
        #[command(flatten)]
        db: DbArg,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn runs(command: RunsCommand) -> Result<ExitCode, CliError> {
    match command {
        RunsCommand::List {
            db,
            status,
            workflow,
            limit,
        } => {
            // `Orphaned` is derived (an unfinished run whose owner's lease
            // lapsed), not a stored status: it is filtered here.
            let orphaned = status
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case("orphaned"));
            let status = match status.filter(|_| !orphaned) {
                Some(s) => Some(RunStatus::parse(&s).ok_or_else(|| {
                    CliError::Usage(format!(
                        "unknown status `{s}` (have: {}, Orphaned)",
                        RunStatus::ALL.map(|s| s.as_str()).join(", ")
                    ))
                })?),
                None => None,
            };
            let store = AnyStore::open_for_reading(&db.db).await?;
            let runs = if orphaned {
                let mut runs = dagger_coord::orphaned_runs(&store.stores()).await?;
                runs.retain(|r| workflow.as_ref().is_none_or(|w| &r.workflow == w));
                runs.reverse(); // newest first, as the store lists them
                runs.truncate(limit);
                runs
            } else {
                store
                    .stores()
                    .runs
                    .list_runs(&RunQuery {
                        status,
                        workflow,
                        limit: Some(limit),
                        offset: 0,
                    })
                    .await?
            };
            outln!(
                "{:<38} {:<24} {:<16} {:<20} {:>10}",
                "RUN",
                "WORKFLOW",
                "STATUS",
                "STARTED (UTC)",
                "DURATION"
            );
            let now = now_millis();
            for r in runs {
                let end = r.finished_at.unwrap_or(now);
                outln!(
                    "{:<38} {:<24} {:<16} {:<20} {:>10}",
                    r.run_id,
                    r.workflow,
                    r.display_status(now),
                    format_time(r.created_at),
                    format_ms(end - r.created_at)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        RunsCommand::Show { run_id, db, json } => {
            let store = AnyStore::open_for_reading(&db.db).await?;
            let view = dagger_coord::load_run_view(&store.stores(), &run_id).await?;
            let children = store.stores().runs.child_runs(&view.record.run_id).await?;
            let now = now_millis();
            let lineage = view.record.lineage.as_ref();
            if json {
                let value = serde_json::json!({
                    "run_id": view.record.run_id,
                    "workflow": view.record.workflow,
                    "status": view.record.status,
                    "state": view.record.display_status(now),
                    "owner": view.record.owner,
                    "orphaned_since": view.record.orphaned_since(now),
                    "reason": view.record.reason,
                    "created_at": view.record.created_at,
                    "finished_at": view.record.finished_at,
                    "inputs": view.record.inputs,
                    "parent_run_id": lineage.map(|l| &l.parent_run_id),
                    "forked_from_node": lineage.and_then(|l| l.forked_from_node.as_ref()),
                    "children": children
                        .iter()
                        .map(|c| serde_json::json!({
                            "run_id": c.run_id,
                            "status": c.display_status(now),
                            "forked_from_node": c.lineage.as_ref().and_then(|l| l.forked_from_node.as_ref()),
                        }))
                        .collect::<Vec<_>>(),
                    "nodes": view.nodes,
                });
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&value)
                        .map_err(|e| CliError::Other(e.to_string()))?
                );
                return Ok(ExitCode::SUCCESS);
            }
            let r = &view.record;
            outln!("run       {}", r.run_id);
            outln!("workflow  {}", r.workflow);
            outln!(
                "status    {}{}",
                r.display_status(now),
                r.reason
                    .as_ref()
                    .map(|x| format!(" ({x})"))
                    .unwrap_or_default()
            );
            if let Some(o) = &r.owner {
                match r.orphaned_since(now) {
                    Some(since) => outln!(
                        "owner     pid {} on {}, gone since {} UTC (its lease lapsed); \
                         take it over with: dagger resume {}",
                        o.pid,
                        o.host,
                        format_time(since),
                        r.run_id
                    ),
                    None => outln!(
                        "owner     pid {} on {}, lease until {} UTC",
                        o.pid,
                        o.host,
                        format_time(o.lease_expires_at)
                    ),
                }
            }
            outln!("started   {}", format_time(r.created_at));
            if let Some(l) = lineage {
                outln!(
                    "parent    {} ({})",
                    l.parent_run_id,
                    l.forked_from_node.as_ref().map_or_else(
                        || "re-ran every node".to_string(),
                        |n| format!("forked from node `{n}`")
                    )
                );
            }
            for c in &children {
                outln!(
                    "child     {} {} ({})",
                    c.run_id,
                    c.display_status(now),
                    c.lineage
                        .as_ref()
                        .and_then(|l| l.forked_from_node.as_ref())
                        .map_or_else(
                            || "re-ran every node".to_string(),
                            |n| format!("from node `{n}`")
                        )
                );
            }
            outln!();
            outln!(
                "{:<28} {:<16} {:>8} {:>10}  ERROR",
                "NODE",
                "STATUS",
                "ATTEMPTS",
                "DURATION"
            );
            for n in &view.nodes {
                let id = if n.added_at_runtime {
                    format!("{} (added)", n.id)
                } else {
                    n.id.clone()
                };
                outln!(
                    "{:<28} {:<16} {:>8} {:>10}  {}",
                    id,
                    n.status,
                    n.attempts,
                    n.duration_ms
                        .map(|d| format_ms(d as i64))
                        .unwrap_or_else(|| "-".into()),
                    n.error.as_deref().unwrap_or("")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub(crate) async fn dot(
    file: Option<PathBuf>,
    run: Option<String>,
    db: &str,
) -> Result<ExitCode, CliError> {
    if let Some(file) = file {
        let def = match load_yaml_path(&file) {
            Ok(d) => d,
            Err(errors) => {
                for issue in errors.issues() {
                    outln!("{issue}");
                }
                return Err(CliError::Invalid {
                    count: errors.issues().len(),
                });
            }
        };
        out!("{}", serialize_tree_to_dot(&def));
        return Ok(ExitCode::SUCCESS);
    }
    let run_id = run.ok_or_else(|| CliError::Usage("give a FILE or --run RUN_ID".into()))?;
    let store = AnyStore::open_for_reading(db).await?;
    let view = dagger_coord::load_run_view(&store.stores(), &run_id).await?;
    let nodes: Vec<NodeRunView> = view
        .nodes
        .iter()
        .map(|n| {
            let mut v = NodeRunView::new(n.id.clone(), n.status);
            v.attempts = n.attempts;
            v.duration_ms = n.duration_ms;
            v.added_at_runtime = n.added_at_runtime;
            match n.status {
                dagger_core::NodeStatus::Failed => v.error = n.error.clone(),
                _ => v.reason = n.error.clone(),
            }
            v
        })
        .collect();
    out!("{}", serialize_run_to_dot(&view.workflow, &nodes));
    Ok(ExitCode::SUCCESS)
}

/// `YYYY-MM-DD HH:MM:SS` in UTC, from ms since the epoch.
fn format_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| ms.to_string())
}

fn format_ms(ms: i64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_format_in_utc() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00");
        assert_eq!(format_time(1_795_000_000_000), "2026-11-18 11:06:40");
        assert_eq!(format_ms(12), "12 ms");
        assert_eq!(format_ms(1500), "1.5 s");
    }
}
