//! `compare`'s Postgres workloads at a tiny size: the worker processes start,
//! run every task and node (the harness asserts that the job completed and
//! the run succeeded with every node), exit, and every case prints its line.
//! Needs PostgreSQL (`DAGGER_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`); `DAGGER_TEST_SKIP_SERVERS=1`
//! skips when 127.0.0.1:5432 does not answer.

use std::process::Command;
use std::time::Duration;

fn server_missing() -> bool {
    let skip = std::env::var("DAGGER_TEST_SKIP_SERVERS").is_ok_and(|v| v == "1");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 5432));
    skip && std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err()
}

fn compare(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_compare"))
        .args(args)
        .output()
        .expect("compare starts");
    assert!(
        out.status.success(),
        "compare {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_cases(stdout: &str, cases: &[&str]) {
    for case in cases {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("RESULT workload={case} ")))
            .unwrap_or_else(|| panic!("no RESULT line for {case} in:\n{stdout}"));
        assert!(line.contains("ratio_vs_sqlite="), "{line}");
    }
}

#[test]
fn q1_pg_runs_every_task_with_worker_processes() {
    if server_missing() {
        eprintln!("skipping: PostgreSQL on 127.0.0.1:5432 is unreachable");
        return;
    }
    let out = compare(&["--workload", "Q1-PG", "--tasks", "40", "--reps", "1"]);
    assert_cases(&out, &["Q1-PG-w1", "Q1-PG-w2", "Q1-PG-w4"]);
}

#[test]
fn d8_runs_every_node_on_workers_and_locally() {
    if server_missing() {
        eprintln!("skipping: PostgreSQL on 127.0.0.1:5432 is unreachable");
        return;
    }
    let out = compare(&["--workload", "D8", "--layers", "1", "--reps", "1"]);
    assert_cases(&out, &["D8-w1", "D8-w2", "D8-w4", "D8-local"]);
}
