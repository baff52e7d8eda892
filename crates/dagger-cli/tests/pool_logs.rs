//! `dagger logs` of a run whose nodes ran on a `dagger worker` process of a
//! Postgres pool: the shell's stdout travels with the completion and lands
//! in the coordinator's attempt record.
#![cfg(feature = "postgres")]

use dagger_storage::{PostgresOptions, PostgresStore};
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

fn url() -> String {
    std::env::var("DAGGER_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// The test's own schema, dropped at the end.
struct Schema {
    name: String,
    store: PostgresStore,
}

impl Schema {
    fn new() -> Option<Self> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("t_pool_logs_{}_{nanos}", std::process::id());
        let options = PostgresOptions {
            schema: Some(name.clone()),
            ..PostgresOptions::default()
        };
        match PostgresStore::connect_blocking(&url(), &options) {
            Ok(store) => Some(Self { name, store }),
            Err(e) if std::env::var("DAGGER_TEST_SKIP_SERVERS").is_ok_and(|v| v == "1") => {
                eprintln!("skipping: PostgreSQL at {} is unreachable ({e})", url());
                None
            }
            Err(e) => panic!("PostgreSQL at {} is unreachable: {e}", url()),
        }
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let store = self.store.clone();
        let _ = std::thread::spawn(move || {
            tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(store.drop_schema())
        })
        .join();
    }
}

#[test]
fn a_remote_shell_attempts_stdout_is_in_its_record() {
    let Some(schema) = Schema::new() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cmd = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_dagger"));
        c.args(args)
            .current_dir(dir.path())
            .env("DAGGER_PG_SCHEMA", &schema.name)
            .env("DAGGER_DB", url());
        c
    };
    let wf = dir.path().join("wf.yaml");
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
