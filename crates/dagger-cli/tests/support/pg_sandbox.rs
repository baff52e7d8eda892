//! A Postgres pool test's own schema, scratch directory and child
//! processes, shared (`#[path]`) by the pool tests of `dagger-cli` and of
//! `examples/app`. The including test file brings `PostgresOptions` and
//! `PostgresStore` into its root module (from `dagger_storage` or
//! `dagger::storage`), which this module reads as `super::…`.
//!
//! Needs the PostgreSQL of `DAGGER_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`); `DAGGER_TEST_SKIP_SERVERS=1`
//! skips when it is unreachable.
#![allow(dead_code)] // each test file uses its own part

use super::{PostgresOptions, PostgresStore};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The server the tests use.
pub(crate) fn url() -> String {
    std::env::var("DAGGER_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A schema of the test's own with a store on it, a scratch directory, and
/// the processes the test started; on drop the processes are killed and
/// the schema dropped.
pub(crate) struct PgSandbox {
    /// The schema (`t_<prefix>_<test>_<pid>_<nanos>`).
    pub(crate) schema: String,
    /// Scratch directory, the working directory of [`Self::command`]s.
    pub(crate) dir: tempfile::TempDir,
    /// A store on the schema.
    pub(crate) store: PostgresStore,
    /// Processes killed when the sandbox is dropped.
    pub(crate) children: Vec<Child>,
}

impl PgSandbox {
    /// A fresh schema for `test`, or `None` (after saying why) when the
    /// server is unreachable and `DAGGER_TEST_SKIP_SERVERS=1`; without that
    /// variable an unreachable server fails the test.
    pub(crate) fn new(prefix: &str, test: &str) -> Option<Self> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let schema = format!("t_{prefix}_{test}_{}_{nanos}", std::process::id());
        let options = PostgresOptions {
            schema: Some(schema.clone()),
            ..PostgresOptions::default()
        };
        let store = match PostgresStore::connect_blocking(&url(), &options) {
            Ok(s) => s,
            Err(e) if std::env::var("DAGGER_TEST_SKIP_SERVERS").is_ok_and(|v| v == "1") => {
                eprintln!("skipping: PostgreSQL at {} is unreachable ({e})", url());
                return None;
            }
            Err(e) => panic!(
                "PostgreSQL at {} is unreachable: {e} (set DAGGER_TEST_SKIP_SERVERS=1 to skip)",
                url()
            ),
        };
        Some(Self {
            schema,
            dir: tempfile::tempdir().unwrap(),
            store,
            children: Vec::new(),
        })
    }

    /// `bin ARGS` in the scratch directory, on this schema (`DAGGER_DB`,
    /// `DAGGER_PG_SCHEMA`).
    pub(crate) fn command(&self, bin: &str, args: &[&str]) -> Command {
        let mut c = Command::new(bin);
        c.args(args)
            .current_dir(self.dir.path())
            .env("DAGGER_PG_SCHEMA", &self.schema)
            .env("DAGGER_DB", url());
        c
    }

    /// `bin worker ARGS` on this schema, logging at `info`.
    pub(crate) fn worker_command(&self, bin: &str, args: &[&str]) -> Command {
        let mut c = self.command(bin, &[&["worker"], args].concat());
        c.env("DAGGER_LOG", "info");
        c
    }

    /// Starts `cmd` (stdin and stdout closed) with its stderr in
    /// `worker<i>.log` of the scratch directory, `i` the number of
    /// processes started before; it is killed on drop. Returns its pid.
    pub(crate) fn start(&mut self, mut cmd: Command) -> u32 {
        let log = std::fs::File::create(self.log_path(self.children.len())).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// Starts `bin worker ARGS` (see [`Self::start`]); returns its pid.
    pub(crate) fn spawn_worker(&mut self, bin: &str, args: &[&str]) -> u32 {
        let cmd = self.worker_command(bin, args);
        self.start(cmd)
    }

    fn log_path(&self, i: usize) -> std::path::PathBuf {
        self.dir.path().join(format!("worker{i}.log"))
    }

    /// The stderr so far of the `i`-th process started.
    pub(crate) fn log_of(&self, i: usize) -> String {
        std::fs::read_to_string(self.log_path(i)).unwrap_or_default()
    }

    /// Waits (up to 60 s) for `marker` in the log of the `i`-th process;
    /// returns the rest of that line.
    pub(crate) fn wait_log(&self, i: usize, marker: &str) -> String {
        let start = Instant::now();
        loop {
            if let Some(rest) = self.log_of(i).lines().find_map(|l| l.split(marker).nth(1)) {
                return rest.to_string();
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "`{marker}` never logged: {}",
                self.log_of(i)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PgSandbox {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let store = self.store.clone();
        let _ = std::thread::spawn(move || {
            tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(store.drop_schema())
        })
        .join();
    }
}
