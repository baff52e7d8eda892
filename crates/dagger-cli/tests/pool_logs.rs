//! `dagger logs` of a run whose nodes ran on a `dagger worker` process of a
//! Postgres pool: the shell's stdout travels with the completion and lands
//! in the coordinator's attempt record.
#![cfg(feature = "postgres")]

use dagger_storage::{PostgresOptions, PostgresStore};
use serde_json::Value;
use std::process::Stdio;

#[path = "support/pg_sandbox.rs"]
mod pg_sandbox;

use pg_sandbox::PgSandbox;

#[test]
fn a_remote_shell_attempts_stdout_is_in_its_record() {
    let Some(sandbox) = PgSandbox::new("pool_logs", "stdout") else {
        return;
    };
    let cmd = |args: &[&str]| sandbox.command(env!("CARGO_BIN_EXE_dagger"), args);
    let wf = sandbox.dir.path().join("wf.yaml");
    std::fs::write(
        &wf,
        "name: remote
nodes:
  - id: a
    action: shell
    try_count: 2
    inputs:
      - name: command
        reference: inputs.cmd
",
    )
    .unwrap();
    let mut worker = cmd(&["worker", "--lease", "1", "--concurrency", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let worker_pid = worker.id();
    let input = "cmd=echo \"worker pid $PPID says hi\"; echo oops >&2; exit 4";
    let run = cmd(&[
        "run",
        wf.to_str().unwrap(),
        "--run-id",
        "r1",
        "--input",
        input,
    ])
    .output()
    .unwrap();
    let _ = worker.kill();
    let _ = worker.wait();
    assert_eq!(
        run.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let logs = cmd(&["logs", "r1", "a", "--json"]).output().unwrap();
    assert!(
        logs.status.success(),
        "{}",
        String::from_utf8_lossy(&logs.stderr)
    );
    let attempts: Vec<Value> = String::from_utf8_lossy(&logs.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    for (i, a) in attempts.iter().enumerate() {
        assert_eq!(a["attempt"], i as u64 + 1);
        assert_eq!(a["outcome"], "Failed");
        assert_eq!(a["error"], "command exited with status 4: oops");
        // `sh`'s parent is the worker process: the node ran there.
        assert_eq!(
            a["logs"]["stdout"],
            format!("worker pid {worker_pid} says hi\n")
        );
        assert_eq!(a["logs"]["stderr"], "oops\n");
    }
}
