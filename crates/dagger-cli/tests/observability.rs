//! The operational endpoints of real `dagger` processes: `/metrics`
//! scraped during a run of `dagger serve` and parsed with a Prometheus
//! text parser, and `/healthz` / `/readyz` of `dagger serve` and of
//! `dagger worker --metrics-addr` (whose `/readyz` answers 503 once its
//! Postgres schema is gone).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[cfg(feature = "postgres")]
use dagger_storage::{PostgresOptions, PostgresStore};

use prometheus_parse::{Scrape, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A child process killed when the test ends, however it ends.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `dagger args` in `dir` and returns it with the address found
/// after `marker` (`http://ADDR/`) on its stderr; the rest of its stderr
/// goes to `log`.
fn spawn_with_addr(
    dir: &Path,
    args: &[&str],
    envs: &[(&str, &str)],
    marker: &str,
) -> (Proc, SocketAddr) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dagger"));
    cmd.args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let wanted = marker.to_string();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            eprintln!("[dagger] {line}");
            if !sent && let Some(rest) = line.split(&wanted).nth(1) {
                let addr = rest.split('/').next().unwrap_or_default().to_string();
                let _ = tx.send(addr);
                sent = true;
            }
        }
    });
    let proc = Proc(child);
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("`dagger {}` never printed `{marker}`", args.join(" ")));
    (proc, addr.parse().unwrap())
}

/// One HTTP/1.1 request; returns the status and the body.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        unchunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

/// The payload of a chunked body.
fn unchunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.push_str(&after[..n]);
        rest = &after[n + 2..];
    }
    out
}

fn scrape(addr: SocketAddr) -> Scrape {
    let (status, text) = http(addr, "GET", "/metrics", &[], "");
    assert_eq!(status, 200, "GET /metrics: {text}");
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
}

/// The value of counter or gauge `metric` with exactly `labels` (0 when absent).
fn value(s: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .find(|x| x.metric == metric && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map_or(0.0, |x| match &x.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            other => panic!("{metric} is not a counter or gauge: {other:?}"),
        })
}

/// How many observations histogram `metric` with `labels` holds (its `+Inf` bucket).
fn observations(s: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let sample = s
        .samples
        .iter()
        .find(|x| x.metric == metric && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)));
    match sample.map(|x| &x.value) {
        Some(Value::Histogram(buckets)) => {
            assert!(buckets.len() > 1, "{metric} has no buckets: {buckets:?}");
            buckets
                .iter()
                .find(|b| b.less_than.is_infinite())
                .map_or(0.0, |b| b.count)
        }
        None => 0.0,
        Some(other) => panic!("{metric} is not a histogram: {other:?}"),
    }
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < limit,
            "{what} did not happen within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_exposes_metrics_during_a_run_and_health() {
    let dir = tempfile::tempdir().unwrap();
    let flows = dir.path().join("workflows");
    std::fs::create_dir(&flows).unwrap();
    let release = dir.path().join("release");
    std::fs::write(
        flows.join("obs.yaml"),
        format!(
            r#"name: obs
nodes:
  - {{ id: first, action: echo, inputs: [{{ name: value, value: 1 }}] }}
  - id: gate
    action: shell
    dependencies: [first]
    inputs: [{{ name: command, value: "while [ ! -f '{}' ]; do sleep 0.05; done" }}]
"#,
            release.display()
        ),
    )
    .unwrap();
    let db = format!("sqlite:{}", dir.path().join("d.db").display());
    let (_serve, addr) = spawn_with_addr(
        dir.path(),
        &[
            "serve",
            "--db",
            &db,
            "--addr",
            "127.0.0.1:0",
            "--workflows",
            flows.to_str().unwrap(),
        ],
        &[],
        "on http://",
    );
    assert_eq!(http(addr, "GET", "/healthz", &[], ""), (200, "ok\n".into()));
    assert_eq!(
        http(addr, "GET", "/readyz", &[], ""),
        (200, "ready\n".into())
    );

    let (_, csrf) = http(addr, "GET", "/api/csrf", &[], "");
    let csrf: serde_json::Value = serde_json::from_str(&csrf).unwrap();
    let csrf = csrf["csrf_token"].as_str().unwrap();
    let (status, body) = http(
        addr,
        "POST",
        "/api/workflows/obs/runs",
        &[("x-csrf-token", csrf), ("content-type", "application/json")],
        "{}",
    );
    assert!(
        status == 201 || status == 200 || status == 202,
        "start: {status} {body}"
    );

    // During the run: `first` is done, `gate` runs until released.
    let echo_ok = [("action", "echo"), ("outcome", "succeeded")];
    let mut during = None;
    wait_until(
        "the first node's attempt in /metrics",
        Duration::from_secs(60),
        || {
            let s = scrape(addr);
            let seen = value(&s, "dagger_node_attempts_total", &echo_ok) == 1.0
                && value(&s, "dagger_running_nodes", &[]) == 1.0;
            if seen {
                during = Some(s);
            }
            seen
        },
    );
    let s = during.unwrap();
    assert_eq!(
        observations(&s, "dagger_node_duration_seconds", &[("action", "echo")]),
        1.0
    );
    assert_eq!(value(&s, "dagger_runs_started_total", &[]), 1.0);
    assert_eq!(
        value(
            &s,
            "dagger_runs_finished_total",
            &[("outcome", "completed")]
        ),
        0.0
    );
    assert_eq!(
        value(
            &s,
            "dagger_node_attempts_total",
            &[("action", "shell"), ("outcome", "succeeded")]
        ),
        0.0,
        "the gate is still running"
    );
    assert!(
        s.docs.contains_key("dagger_node_attempts_total"),
        "HELP text missing: {:?}",
        s.docs.keys().collect::<Vec<_>>()
    );

    std::fs::write(&release, "").unwrap();
    let mut after = None;
    wait_until("the run's end in /metrics", Duration::from_secs(60), || {
        let s = scrape(addr);
        let done = value(
            &s,
            "dagger_runs_finished_total",
            &[("outcome", "completed")],
        ) == 1.0;
        if done {
            after = Some(s);
        }
        done
    });
    let s = after.unwrap();
    assert_eq!(
        value(
            &s,
            "dagger_node_attempts_total",
            &[("action", "shell"), ("outcome", "succeeded")]
        ),
        1.0
    );
    assert_eq!(
        observations(&s, "dagger_node_duration_seconds", &[("action", "shell")]),
        1.0
    );
    assert_eq!(value(&s, "dagger_running_nodes", &[]), 0.0);
    assert_eq!(value(&s, "dagger_ready_nodes", &[]), 0.0);
    assert!(observations(&s, "dagger_store_commit_seconds", &[("store", "sqlite")]) >= 1.0);
    assert!(observations(&s, "dagger_store_commit_batch_size", &[("store", "sqlite")]) >= 1.0);
}

#[cfg(feature = "postgres")]
#[path = "support/pg_sandbox.rs"]
mod pg_sandbox;

#[cfg(feature = "postgres")]
mod worker {
    use super::*;
    use crate::pg_sandbox::PgSandbox;

    fn block_on<T>(f: impl std::future::Future<Output = T> + Send + 'static) -> T
    where
        T: Send + 'static,
    {
        std::thread::spawn(move || tokio::runtime::Runtime::new().unwrap().block_on(f))
            .join()
            .unwrap()
    }

    #[test]
    fn worker_metrics_and_readyz_follow_the_store() {
        let Some(mut sandbox) = PgSandbox::new("obs", "worker") else {
            return;
        };
        let bin = env!("CARGO_BIN_EXE_dagger");
        sandbox.spawn_worker(bin, &["--metrics-addr", "127.0.0.1:0"]);
        let addr: SocketAddr = sandbox
            .wait_log(0, "metrics on http://")
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(http(addr, "GET", "/healthz", &[], ""), (200, "ok\n".into()));
        assert_eq!(
            http(addr, "GET", "/readyz", &[], ""),
            (200, "ready\n".into())
        );

        let wf = sandbox.dir.path().join("one.yaml");
        std::fs::write(
            &wf,
            "name: one\nnodes:\n  - { id: only, action: echo, inputs: [{ name: value, value: 1 }] }\n",
        )
        .unwrap();
        let out = sandbox
            .command(bin, &["run", wf.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The attempt ran on the worker: counted there.
        let s = scrape(addr);
        let ok = [("action", "echo"), ("outcome", "succeeded")];
        assert_eq!(value(&s, "dagger_node_attempts_total", &ok), 1.0);
        assert_eq!(
            observations(&s, "dagger_node_duration_seconds", &[("action", "echo")]),
            1.0
        );
        assert_eq!(value(&s, "dagger_claims_total", &[("queue", "nodes")]), 1.0);

        block_on(sandbox.store.clone().drop_schema()).unwrap();
        let (status, body) = http(addr, "GET", "/readyz", &[], "");
        assert_eq!(status, 503, "{body}");
        assert!(
            body.starts_with("not ready: the store does not answer"),
            "{body}"
        );
        assert_eq!(http(addr, "GET", "/healthz", &[], "").0, 200);
    }
}

/// Runs `dagger run --db sqlite:… wf.yaml` (plus `extra`) with `envs`,
/// stderr piped (not a terminal); returns its stderr.
fn run_logged(dir: &Path, extra: &[&str], envs: &[(&str, &str)]) -> String {
    let wf = dir.join("flaky.yaml");
    std::fs::write(
        &wf,
        "name: flaky\nnodes:\n  - { id: first, action: echo, inputs: [{ name: value, value: 1 }] }\n  - id: flaky\n    action: shell\n    dependencies: [first]\n    try_count: 2\n    inputs: [{ name: command, value: \"test -f tried || { touch tried; echo first try fails >&2; exit 3; }\" }]\n",
    )
    .unwrap();
    let _ = std::fs::remove_file(dir.join("tried"));
    let db = format!("sqlite:{}", dir.join("d.db").display());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dagger"));
    cmd.arg("run")
        .args(extra)
        .args(["--db", &db, wf.to_str().unwrap()])
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("DAGGER_LOG")
        .env_remove("DAGGER_LOG_FORMAT")
        .env_remove("NO_COLOR");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");
    stderr
}

#[test]
fn json_logs_tell_the_run_with_durations_and_no_escapes() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = run_logged(
        dir.path(),
        &["--log-format", "json"],
        &[("RUST_LOG", "info")],
    );
    assert!(
        !stderr.contains("\x1b["),
        "escapes on a non-terminal stderr:\n{stderr}"
    );
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let find = |message: &str, node: &str| {
        events
            .iter()
            .filter(|e| e["message"] == message && (node.is_empty() || e["node_id"] == node))
            .collect::<Vec<_>>()
    };
    let first = find("node finished", "first");
    assert_eq!(first.len(), 1, "{stderr}");
    assert_eq!(first[0]["outcome"], "succeeded");
    assert_eq!(first[0]["level"], "INFO");
    let ms = first[0]["duration_ms"]
        .as_f64()
        .expect("duration_ms is a number");
    assert!(ms >= 0.0);
    assert_eq!(find("node started", "first")[0]["action"], "echo");

    let flaky = find("node finished", "flaky");
    assert_eq!(flaky.len(), 2, "{stderr}");
    assert_eq!(flaky[0]["outcome"], "failed");
    assert!(
        flaky[0]["error"]
            .as_str()
            .unwrap()
            .contains("first try fails"),
        "{}",
        flaky[0]
    );
    assert_eq!(flaky[1]["outcome"], "succeeded");
    let retry = find("node attempt failed; retrying", "flaky");
    assert_eq!(retry.len(), 1, "{stderr}");
    assert!(
        retry[0]["error"]
            .as_str()
            .unwrap()
            .contains("first try fails")
    );
    assert_eq!(retry[0]["attempt"], 1);

    let end = find("run finished", "");
    assert_eq!(end.len(), 1, "{stderr}");
    assert_eq!(end[0]["status"], "Completed");
    assert_eq!(end[0]["completed"], 2);
    assert_eq!(end[0]["failed"], 0);
    assert_eq!(end[0]["retries"], 1);
}

#[test]
fn text_logs_follow_rust_log_and_its_alias_without_escapes() {
    let dir = tempfile::tempdir().unwrap();
    let quiet = run_logged(dir.path(), &[], &[]);
    assert!(
        !quiet.contains("node finished"),
        "info events at the default level:\n{quiet}"
    );
    for var in ["RUST_LOG", "DAGGER_LOG"] {
        let stderr = run_logged(dir.path(), &[], &[(var, "info")]);
        assert!(
            !stderr.contains("\x1b["),
            "{var}: escapes on a non-terminal stderr:\n{stderr}"
        );
        let line = stderr
            .lines()
            .find(|l| l.contains("node finished") && l.contains("node_id=first"))
            .unwrap_or_else(|| panic!("{var}: no `node finished` line:\n{stderr}"));
        assert!(
            line.contains("INFO") && line.contains("duration_ms="),
            "{line}"
        );
    }
}
