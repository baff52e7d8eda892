//! `dagger schedule run`: three schedulers on one SQLite store start each
//! fire's run exactly once; after all of them are SIGKILLed, a fire that
//! fell while none ran is started by the next scheduler (catch-up window).
//! Also `schedule list --json`, `trigger`, `backfill`, and a bad cron
//! expression named at its file, line and column; `schedule pause|resume`
//! stopping and restarting a running scheduler (SQLite and Postgres), and
//! `schedule add|delete` of a schedule kept in the store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

#[path = "support/schema.rs"]
mod schema;

fn dagger(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dagger"));
    c.args(args).current_dir(dir).env(
        "DAGGER_DB",
        format!("sqlite:{}", dir.join("runs.db").display()),
    );
    c
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A workflow whose schedule `tick` fires every second; each run appends
/// its id to `fires.log`.
fn write_workflow(dir: &Path, overlap: &str, catch_up: &str) -> String {
    let log = dir.join("fires.log");
    let wf = dir.join("ticker.yaml");
    std::fs::write(
        &wf,
        format!(
            "name: ticker\nschedules:\n  - name: tick\n    every: 1s\n    catch_up: {catch_up}\n    overlap: {overlap}\nnodes:\n  - id: mark\n    action: shell\n    inputs:\n      - name: command\n        value: 'echo \"$DAGGER_RUN_ID\" >> {}'\n",
            log.display()
        ),
    )
    .unwrap();
    wf.display().to_string()
}

/// Fire time (ms) of each run id of schedule `tick` in `fires.log`, with
/// how often it ran.
fn fires(dir: &Path) -> BTreeMap<i64, usize> {
    fires_of(dir, "tick")
}

/// [`fires`] of schedule `name`.
fn fires_of(dir: &Path, name: &str) -> BTreeMap<i64, usize> {
    let text = std::fs::read_to_string(dir.join("fires.log")).unwrap_or_default();
    let mut seen = BTreeMap::new();
    let prefix = format!("{name}@");
    for line in text.lines() {
        let Some(stamp) = line.strip_prefix(&prefix) else {
            continue;
        };
        let t = chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%S%.3fZ").unwrap();
        *seen.entry(t.and_utc().timestamp_millis()).or_insert(0) += 1;
    }
    seen
}

fn schedulers(dir: &Path, wf: &str, n: usize) -> Vec<Child> {
    (0..n)
        .map(|_| {
            dagger(dir, &["schedule", "run", wf])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect()
}

fn wait_until(what: &str, secs: u64, mut pred: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !pred() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[test]
fn three_schedulers_fire_once_and_catch_up_after_kill() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let wf = write_workflow(dir, "allow_all", "5s");
    let mut procs = schedulers(dir, &wf, 3);
    let started = now_ms();
    // The window's five past fires, then fires as they fall.
    wait_until("ten fires", 60, || fires(dir).len() >= 10);
    assert!(fires(dir).keys().any(|t| *t > started + 1000));
    for p in &mut procs {
        p.kill().unwrap(); // SIGKILL
        p.wait().unwrap();
    }
    let killed_at = now_ms();
    // Time itself is under test: fires fall while no scheduler runs.
    std::thread::sleep(Duration::from_millis(2500));
    let restarted_at = now_ms();
    let mut again = schedulers(dir, &wf, 1);
    wait_until("a fire missed while down", 60, || {
        fires(dir)
            .keys()
            .any(|t| *t > killed_at + 500 && *t < restarted_at - 500)
    });
    for p in &mut again {
        p.kill().unwrap();
        p.wait().unwrap();
    }
    let seen = fires(dir);
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "fires run more than once: {twice:?}");
    // Every fire time is a whole second: the three agreed on them.
    assert!(seen.keys().all(|t| t % 1000 == 0), "{seen:?}");
}

/// `dagger serve` fires the schedules of its workflows directory, and
/// `--no-schedules` turns that off.
#[test]
fn serve_fires_its_workflows_schedules() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let flows = dir.join("flows");
    std::fs::create_dir(&flows).unwrap();
    let wf = write_workflow(dir, "allow_all", "0s");
    std::fs::rename(&wf, flows.join("ticker.yaml")).unwrap();
    let flows = flows.display().to_string();
    let serve = |extra: &[&str]| {
        let mut args = vec!["serve", "--addr", "127.0.0.1:0", "--workflows", &flows];
        args.extend_from_slice(extra);
        dagger(dir, &args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut quiet = serve(&["--no-schedules"]);
    // Time is under test: three seconds in which a firing server would fire.
    std::thread::sleep(Duration::from_secs(3));
    quiet.kill().unwrap();
    quiet.wait().unwrap();
    assert!(
        fires(dir).is_empty(),
        "--no-schedules fired {:?}",
        fires(dir)
    );
    let mut firing = serve(&[]);
    wait_until("two fires from serve", 60, || fires(dir).len() >= 2);
    firing.kill().unwrap();
    firing.wait().unwrap();
}

/// `dagger serve` fires a schedule added to the store for one of its
/// workflows (one without `schedules:`) while it runs.
#[test]
fn serve_fires_a_schedule_added_to_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let flows = dir.join("flows");
    std::fs::create_dir(&flows).unwrap();
    let plain = flows.join("plain.yaml");
    std::fs::write(
        &plain,
        format!(
            "name: plain\nnodes:\n  - id: mark\n    action: shell\n    inputs:\n      - name: command\n        value: 'echo \"$DAGGER_RUN_ID\" >> {}'\n",
            dir.join("fires.log").display()
        ),
    )
    .unwrap();
    let flows = flows.display().to_string();
    let mut serve = dagger(
        dir,
        &["serve", "--addr", "127.0.0.1:0", "--workflows", &flows],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let plain = plain.display().to_string();
    ok(
        dagger(dir, &["schedule", "add", &plain, "added", "--every", "1s"])
            .output()
            .unwrap(),
    );
    wait_until("a fire of the added schedule", 60, || {
        fires_of(dir, "added").len() >= 2
    });
    serve.kill().unwrap();
    serve.wait().unwrap();
}

#[test]
fn list_trigger_backfill_and_bad_cron() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let wf = write_workflow(dir, "skip", "30s");
    let list: Value = serde_json::from_str(&ok(dagger(dir, &["schedule", "list", &wf, "--json"])
        .output()
        .unwrap()))
    .unwrap();
    schema::assert_matches("schedule_list", &list);
    assert_eq!(list[0]["name"], "tick");
    assert_eq!(list[0]["workflow"], "ticker");
    assert_eq!(list[0]["every"], "1s");
    assert_eq!(list[0]["overlap"], "skip");
    assert_eq!(list[0]["catch_up_ms"], 30_000);

    let out = ok(dagger(dir, &["schedule", "trigger", &wf, "tick"])
        .output()
        .unwrap());
    assert!(out.starts_with("tick@") && out.contains("Started"), "{out}");
    assert_eq!(fires(dir).len(), 1);

    // Five fires, two at a time; a second backfill of the range runs nothing.
    let range = [
        "--from",
        "2026-01-01T00:00:00Z",
        "--to",
        "2026-01-01T00:00:04Z",
        "--concurrency",
        "2",
    ];
    let mut args = vec!["schedule", "backfill", &wf, "tick"];
    args.extend(range);
    let out = ok(dagger(dir, &args).output().unwrap());
    assert_eq!(out.matches("Started").count(), 5, "{out}");
    assert_eq!(fires(dir).len(), 6);
    let out = ok(dagger(dir, &args).output().unwrap());
    assert_eq!(out.matches("Existing").count(), 5, "{out}");
    assert_eq!(fires(dir).len(), 6);
    assert!(fires(dir).values().all(|n| *n == 1));

    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "name: bad\nschedules:\n  - name: oops\n    cron: \"61 * * * *\"\nnodes:\n  - id: a\n    action: echo\n",
    )
    .unwrap();
    let out = dagger(dir, &["schedule", "list", bad.to_str().unwrap()])
        .output()
        .unwrap();
    let err = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success());
    assert!(
        err.contains("bad.yaml:4:11") && err.contains("invalid cron expression"),
        "{err}"
    );
}

/// Pauses `tick` with `cli` while a scheduler runs: no fire after the
/// pause returned; resumes it: fires again, without catching up the fires
/// that fell while paused.
fn pause_then_resume(dir: &Path, wf: &str, cli: &dyn Fn(&[&str]) -> Output) {
    wait_until("two fires", 60, || fires(dir).len() >= 2);
    let out = ok(cli(&["schedule", "pause", wf, "tick"]));
    assert_eq!(out.trim(), "tick\tpaused");
    let paused_at = now_ms();
    // Time is under test: three seconds in which an active schedule fires.
    std::thread::sleep(Duration::from_secs(3));
    let late: Vec<_> = fires(dir).into_keys().filter(|t| *t > paused_at).collect();
    assert!(late.is_empty(), "fired after the pause: {late:?}");
    let list: Value = serde_json::from_str(&ok(cli(&["schedule", "list", wf, "--json"]))).unwrap();
    schema::assert_matches("schedule_list", &list);
    assert_eq!(list[0]["paused"], true);
    assert_eq!(list[0]["paused_source"], "store");
    assert_eq!(list[0]["source"], "file");

    ok(cli(&["schedule", "resume", wf, "tick"]));
    let resumed_at = now_ms();
    wait_until("a fire after the resume", 60, || {
        fires(dir).keys().any(|t| *t > resumed_at)
    });
    // A tick just before the resume may take the fire of its last second.
    let caught_up: Vec<_> = fires(dir)
        .into_keys()
        .filter(|t| *t > paused_at && *t < resumed_at - 1500)
        .collect();
    assert!(
        caught_up.is_empty(),
        "paused fires caught up: {caught_up:?}"
    );
}

/// `schedule pause|resume` act on a running `schedule run` at its next
/// tick; `schedule add` gives it a stored schedule to fire, `delete` takes
/// it away.
#[test]
fn pause_resume_add_delete_reach_a_running_scheduler() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let wf = write_workflow(dir, "allow_all", "0s");
    let mut procs = schedulers(dir, &wf, 1);
    let cli = |args: &[&str]| dagger(dir, args).output().unwrap();
    pause_then_resume(dir, &wf, &cli);

    ok(cli(&[
        "schedule",
        "add",
        &wf,
        "extra",
        "--every",
        "1s",
        "--input",
        "n=3",
        "--overlap",
        "allow_all",
        "--catch-up",
        "0s",
    ]));
    wait_until("a fire of the stored schedule", 60, || {
        !fires_of(dir, "extra").is_empty()
    });
    let list: Value = serde_json::from_str(&ok(cli(&["schedule", "list", &wf, "--json"]))).unwrap();
    schema::assert_matches("schedule_list", &list);
    assert_eq!(list[1]["name"], "extra");
    assert_eq!(list[1]["source"], "store");
    assert_eq!(list[1]["paused"], false);
    assert_eq!(list[1]["overlap"], "allow_all");
    // The stored schedule's inputs reach its runs.
    let runs: Value = serde_json::from_str(&ok(cli(&["runs", "list", "--json"]))).unwrap();
    let extra = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["run_id"].as_str().unwrap().starts_with("extra@"))
        .unwrap();
    let id = extra["run_id"].as_str().unwrap();
    let shown: Value = serde_json::from_str(&ok(cli(&["runs", "show", id, "--json"]))).unwrap();
    assert_eq!(shown["inputs"]["n"], 3, "{shown}");

    ok(cli(&["schedule", "delete", &wf, "extra"]));
    let deleted_at = now_ms();
    // Time is under test: three seconds in which the schedule would fire.
    std::thread::sleep(Duration::from_secs(3));
    let late: Vec<_> = fires_of(dir, "extra")
        .into_keys()
        .filter(|t| *t > deleted_at)
        .collect();
    assert!(late.is_empty(), "a deleted schedule fired: {late:?}");
    for p in &mut procs {
        p.kill().unwrap();
        p.wait().unwrap();
    }
    assert!(fires_of(dir, "extra").values().all(|n| *n == 1));
    assert!(fires(dir).values().all(|n| *n == 1));
}

/// `schedule add` checks what it stores as the YAML loader does; names
/// clashing with a declared schedule, deleting a declared schedule and
/// pausing an unknown one are errors that say so.
#[test]
fn stored_schedules_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let wf = write_workflow(dir, "skip", "1m");
    let fail = |args: &[&str]| {
        let out = dagger(dir, args).output().unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let err = fail(&["schedule", "add", &wf, "h", "--cron", "61 * * * *"]);
    assert!(
        err.contains("field `cron`: invalid cron expression"),
        "{err}"
    );
    let err = fail(&[
        "schedule",
        "add",
        &wf,
        "h",
        "--every",
        "1m",
        "--overlap",
        "sometimes",
    ]);
    assert!(err.contains("--overlap `sometimes`"), "{err}");
    let err = fail(&["schedule", "add", &wf, "tick", "--every", "1m"]);
    assert!(
        err.contains("schedule `tick` is declared in") && err.contains("ticker.yaml"),
        "{err}"
    );
    ok(dagger(
        dir,
        &[
            "schedule",
            "add",
            &wf,
            "h",
            "--cron",
            "0 * * * *",
            "--timezone",
            "Europe/Berlin",
        ],
    )
    .output()
    .unwrap());
    let err = fail(&["schedule", "add", &wf, "h", "--every", "1m"]);
    assert!(err.contains("already stored (workflow `ticker`)"), "{err}");
    let err = fail(&["schedule", "delete", &wf, "tick"]);
    assert!(err.contains("edit the file"), "{err}");
    let err = fail(&["schedule", "pause", &wf, "nope"]);
    assert!(err.contains("no schedule `nope`"), "{err}");
    let list: Value = serde_json::from_str(&ok(dagger(dir, &["schedule", "list", &wf, "--json"])
        .output()
        .unwrap()))
    .unwrap();
    assert_eq!(list[1]["name"], "h");
    assert_eq!(list[1]["timezone"], "Europe/Berlin");
    ok(dagger(dir, &["schedule", "delete", &wf, "h"])
        .output()
        .unwrap());
    let err = fail(&["schedule", "delete", &wf, "h"]);
    assert!(err.contains("no schedule `h` is stored"), "{err}");
}

#[cfg(feature = "postgres")]
use dagger_storage::{PostgresOptions, PostgresStore};

#[cfg(feature = "postgres")]
#[path = "support/pg_sandbox.rs"]
mod pg_sandbox;

#[cfg(feature = "postgres")]
mod pg {
    use super::pg_sandbox::PgSandbox;
    use super::*;

    /// Three `dagger worker --schedules` on one Postgres schema: each fire
    /// runs once, and a fire missed while all were SIGKILLed is caught up.
    #[test]
    fn three_workers_fire_once_on_postgres() {
        let Some(mut pool) = PgSandbox::new("sched", "three") else {
            return;
        };
        let dir = pool.dir.path().to_path_buf();
        let wf = write_workflow(&dir, "allow_all", "5s");
        let spawn = |pool: &mut PgSandbox| {
            let child = pool
                .command(
                    env!("CARGO_BIN_EXE_dagger"),
                    &["worker", "--schedules", &wf, "--concurrency", "1"],
                )
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            pool.children.push(child);
        };
        for _ in 0..3 {
            spawn(&mut pool);
        }
        let started = now_ms();
        wait_until("ten fires", 60, || fires(&dir).len() >= 10);
        assert!(fires(&dir).keys().any(|t| *t > started + 1000));
        for c in &mut pool.children {
            c.kill().unwrap();
            c.wait().unwrap();
        }
        pool.children.clear();
        let killed_at = now_ms();
        std::thread::sleep(Duration::from_millis(2500));
        let restarted_at = now_ms();
        spawn(&mut pool);
        wait_until("a fire missed while down", 60, || {
            fires(&dir)
                .keys()
                .any(|t| *t > killed_at + 500 && *t < restarted_at - 500)
        });
        let seen = fires(&dir);
        let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "fires run more than once: {twice:?}");
    }

    /// `schedule pause|resume` on Postgres act on a running
    /// `dagger worker --schedules` at its next tick.
    #[test]
    fn pause_resume_reach_a_running_worker_on_postgres() {
        let Some(mut pool) = PgSandbox::new("sched", "pause") else {
            return;
        };
        let dir = pool.dir.path().to_path_buf();
        let wf = write_workflow(&dir, "allow_all", "0s");
        let child = pool
            .command(
                env!("CARGO_BIN_EXE_dagger"),
                &["worker", "--schedules", &wf, "--concurrency", "1"],
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        pool.children.push(child);
        let cli = |args: &[&str]| {
            pool.command(env!("CARGO_BIN_EXE_dagger"), args)
                .output()
                .unwrap()
        };
        pause_then_resume(&dir, &wf, &cli);
    }
}
