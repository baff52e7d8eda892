//! The CLI on storage faults: a database on read-only media can be listed,
//! shown, drawn and served (changes answer 503 naming it), and `run` says
//! "read-only" naming it; a full disk gives
//! the documented "no space left to write". Both need root (a read-only bind
//! mount, a tiny tmpfs), as in CI; the tests print why and pass otherwise.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_dagger")
}

const WORKFLOW: &str = "name: small\nnodes:\n  - id: a\n    action: echo\n  - id: b\n    action: echo\n    dependencies: [a]\n";

fn dagger(db: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env_remove("DAGGER_DB")
        .env("DAGGER_DB", format!("sqlite:{}", db.display()))
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `mount` with `args`; true when it succeeded.
fn mount(args: &[&str], dir: &Path) -> bool {
    Command::new("mount")
        .args(args)
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success())
}

/// A mount point, unmounted on drop.
struct Mounted(tempfile::TempDir);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

/// A read-only bind mount of `src`, or why there is none.
fn read_only_view(src: &Path) -> Result<Mounted, String> {
    let mnt = tempfile::tempdir().unwrap();
    let src = src.to_str().unwrap();
    if !mount(&["--bind", src], mnt.path()) {
        return Err("cannot bind-mount (needs root)".into());
    }
    let view = Mounted(mnt);
    if !mount(&["-o", "remount,ro,bind"], view.0.path()) {
        return Err("cannot remount read-only".into());
    }
    if std::fs::write(view.0.path().join("probe"), b"x").is_ok() {
        return Err("the read-only mount accepts writes".into());
    }
    Ok(view)
}

/// A read-only view of the directory, or the test returns saying why not.
macro_rules! read_only_view_or_skip {
    ($src:expr) => {
        match read_only_view($src) {
            Ok(v) => v,
            Err(why) => {
                eprintln!("skipped: {why}");
                return;
            }
        }
    };
}

/// Writes the small workflow to `dir/file` and records its run `r1` in
/// `dir/runs.db`.
fn record_completed_run(dir: &Path, file: &str) {
    let wf = dir.join(file);
    std::fs::write(&wf, WORKFLOW).unwrap();
    let out = dagger(
        &dir.join("runs.db"),
        &["run", wf.to_str().unwrap(), "--run-id", "r1"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn read_commands_work_on_read_only_media_and_run_says_read_only() {
    let src = tempfile::tempdir().unwrap();
    record_completed_run(src.path(), "wf.yaml");

    let view = read_only_view_or_skip!(src.path());
    let db: PathBuf = view.0.path().join("runs.db");

    let out = dagger(&db, &["runs", "list"]);
    assert!(out.status.success(), "runs list: {}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("r1"));
    let out = dagger(&db, &["runs", "show", "r1", "--json"]);
    assert!(out.status.success(), "runs show: {}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Completed"));
    let out = dagger(&db, &["dot", "--run", "r1"]);
    assert!(out.status.success(), "dot --run: {}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("digraph"));

    let wf = view.0.path().join("wf.yaml");
    let out = dagger(&db, &["run", wf.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("database `sqlite:{}` is read-only", db.display())),
        "{}",
        stderr(&out)
    );
}

const APPROVAL: &str = "name: review\nnodes:\n  - id: draft\n    action: echo\n  - id: publish\n    action: echo\n    approval: publish?\n    dependencies: [draft]\n";

/// The server token of the read-only `serve` test (bearer auth stands in for CSRF).
const TOKEN: &str = "read-only-media-token";

/// Kills the child on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits (up to 30 s) until `runs show RUN --json` contains `needle`.
fn wait_for_show(db: &Path, run_id: &str, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = dagger(db, &["runs", "show", run_id, "--json"]);
        if String::from_utf8_lossy(&out.stdout).contains(needle) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "run {run_id} never showed {needle}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One HTTP/1.1 request with the server token; the status and the body.
fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

#[test]
fn serve_on_read_only_media_shows_runs_and_refuses_changes_naming_the_database() {
    let src = tempfile::tempdir().unwrap();
    record_completed_run(src.path(), "small.yaml");
    let review = src.path().join("review.yaml");
    std::fs::write(&review, APPROVAL).unwrap();
    let db = src.path().join("runs.db");
    // A run left waiting for a human by a process that died.
    let waiting = Command::new(bin())
        .args(["run", review.to_str().unwrap(), "--run-id", "w1"])
        .env("DAGGER_DB", format!("sqlite:{}", db.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let waiting = Killed(waiting);
    wait_for_show(&db, "w1", "WaitingForHuman");
    drop(waiting);

    let view = read_only_view_or_skip!(src.path());
    let db: PathBuf = view.0.path().join("runs.db");
    let serve = |extra: &[&str]| {
        let mut args = vec![
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--token",
            TOKEN,
            "--workflows",
        ];
        args.push(view.0.path().to_str().unwrap());
        args.extend_from_slice(extra);
        Command::new(bin())
            .args(&args)
            .env("DAGGER_DB", format!("sqlite:{}", db.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };

    // Taking over orphans needs writes: refused up front, naming the database.
    let mut refused = Killed(serve(&["--resume-orphans"]));
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = refused.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "serve --resume-orphans kept running on a read-only database"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(2));
    let mut said = String::new();
    refused
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut said)
        .unwrap();
    let read_only = format!("database `sqlite:{}` is read-only", db.display());
    assert!(said.contains(&read_only), "{said}");

    let mut server = Killed(serve(&[]));
    let mut lines = BufReader::new(server.0.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("serve exited before listening")
            .unwrap();
        if let Some(rest) = line.split("http://").nth(1) {
            break rest.split('/').next().unwrap().to_string();
        }
        assert!(
            line.contains(&read_only) || line.is_empty(),
            "unexpected: {line}"
        );
    };

    let (status, body) = http(&addr, "GET", "/api/runs", "");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"r1\"") && body.contains("\"w1\""), "{body}");
    let (status, body) = http(&addr, "GET", "/runs/r1", "");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Completed"), "{body}");
    let (status, body) = http(&addr, "GET", "/api/runs/r1/nodes/b/attempts", "");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Succeeded"), "{body}");

    let changes = [
        ("POST", "/api/workflows/small/runs", ""),
        ("POST", "/api/runs/w1/approve", "{\"node\": \"publish\"}"),
        ("POST", "/api/runs/w1/reject", "{\"node\": \"publish\"}"),
        ("POST", "/api/runs/w1/cancel", ""),
    ];
    for (method, path, request) in changes {
        let (status, body) = http(&addr, method, path, request);
        assert_eq!(status, 503, "{path}: {body}");
        assert!(body.contains(&read_only), "{path}: {body}");
    }
    // Still serving after the refusals, and nothing changed.
    let (status, body) = http(&addr, "GET", "/api/runs/w1", "");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("WaitingForHuman"), "{body}");
    drop(server);
}

#[test]
fn run_on_a_nearly_full_disk_says_no_space_left() {
    let mnt = tempfile::tempdir().unwrap();
    if !mount(&["-t", "tmpfs", "-o", "size=256k", "tmpfs"], mnt.path()) {
        eprintln!("skipped: cannot mount a tmpfs (needs root)");
        return;
    }
    let fs = Mounted(mnt);
    let wf = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(wf.path(), WORKFLOW).unwrap();
    // Fill the disk, then free 8 KiB: room for a page, not for the WAL index.
    let filler = fs.0.path().join("filler");
    let chunk = vec![0u8; 4096];
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        while f.write_all(&chunk).and_then(|()| f.flush()).is_ok() {}
        let len = f.metadata().unwrap().len();
        f.set_len(len.saturating_sub(8192)).unwrap();
    }
    let db = fs.0.path().join("runs.db");
    let out = dagger(&db, &["run", wf.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "database `sqlite:{}` is full: no space left to write",
            db.display()
        )),
        "{}",
        stderr(&out)
    );
}
