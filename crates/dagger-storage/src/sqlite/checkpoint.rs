//! WAL checkpoints off the commit path.
//!
//! SQLite's default (`wal_autocheckpoint`) makes whichever connection commits
//! past 1000 WAL pages copy the WAL back into the database file and fsync it,
//! inside that commit. For a task queue that is a stall of several
//! milliseconds every few thousand commits, which is what a p99 latency
//! shows (Q3: 4.5 ms p99 with it, 0.9 ms without). So every connection of a
//! writable store turns automatic checkpoints off and one background thread
//! per store runs passive checkpoints instead: they never block readers or
//! writers, and run only when another connection has committed since the
//! last look.
//!
//! A passive checkpoint alone does not bound the WAL file: SQLite starts
//! writing the WAL from its beginning again only when a write transaction
//! begins after *everything* was copied, and under steady load some task
//! transaction is always in flight while the checkpoint copies, so the WAL
//! grew without end (150 MB after Q1's 100,000 tasks, 650 MB after 20,000
//! Q3 tasks at 5,000/s). So once the WAL holds [`RESTART_FRAMES`] frames, a
//! second passive checkpoint runs while holding this process's write lock
//! on the file (taken by task transactions and the writer thread): no write
//! of this process is in flight, it has only the frames of the last moments
//! to copy, and the next write restarts the WAL.

use crate::sqlite::tasks::FileShared;
use rusqlite::Connection;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the checkpointer looks for new commits.
const INTERVAL: Duration = Duration::from_millis(100);

/// WAL frames (pages) from which a checkpoint also makes the WAL restart:
/// SQLite's own automatic checkpoint threshold (about 4 MB).
const RESTART_FRAMES: i64 = 1000;

/// The background checkpointer of one store; stops when dropped.
pub(crate) struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts checkpointing the database behind `conn` (a connection of its
    /// own, opened on the store's file).
    pub(crate) fn start(
        conn: Connection,
        location: String,
        file: Arc<FileShared>,
    ) -> std::io::Result<Self> {
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("dagger-sqlite-checkpoint".into())
            .spawn(move || run(&conn, &stopped, &location, &file))?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take()
            && t.thread().id() != std::thread::current().id()
        {
            let _ = t.join();
        }
    }
}

fn run(conn: &Connection, stopped: &mpsc::Receiver<()>, location: &str, file: &FileShared) {
    let mut seen = None;
    loop {
        match stopped.recv_timeout(INTERVAL) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        // `data_version` changes when another connection commits; this one
        // never writes, so an unchanged value means nothing to copy.
        let version: Option<i64> = conn.query_row("PRAGMA data_version", [], |r| r.get(0)).ok();
        if version.is_some() && version == seen {
            continue;
        }
        seen = version;
        checkpoint_once(conn, location, file);
    }
}

/// One round: copy the WAL into the database file without blocking anyone,
/// then, if the WAL has grown large, finish the copy under the process's
/// write lock on the file so that the WAL restarts (see the module docs).
fn checkpoint_once(conn: &Connection, location: &str, file: &FileShared) {
    let Some(frames) = passive(conn, location) else {
        return;
    };
    if frames >= RESTART_FRAMES {
        let _no_writes = file.write.lock();
        passive(conn, location);
    }
}

/// A passive checkpoint; the WAL's size in frames, `None` when it could not
/// run. Busy (another checkpoint, an exclusive lock) is not an error: the
/// next tick tries again.
fn passive(conn: &Connection, location: &str) -> Option<i64> {
    // Columns: busy flag, frames in the WAL, frames copied.
    match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1)) {
        Ok(frames) => Some(frames),
        Err(e) => {
            tracing::debug!(location, error = %e, "WAL checkpoint skipped");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection writing `path` in WAL mode as a store's do (no automatic
    /// checkpoints), and the background checkpointer of that file with the
    /// process's write lock on it.
    fn writer_and_checkpointer(
        path: &std::path::Path,
    ) -> (Connection, Checkpointer, Arc<FileShared>) {
        let writer = Connection::open(path).unwrap();
        writer
            .query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
            .unwrap();
        writer.pragma_update(None, "synchronous", "NORMAL").unwrap();
        writer.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        let file = crate::sqlite::tasks::shared(path);
        let checkpointer =
            Checkpointer::start(Connection::open(path).unwrap(), "test".into(), file.clone())
                .unwrap();
        (writer, checkpointer, file)
    }

    #[test]
    fn commits_are_checkpointed_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let (writer, checkpointer, _) = writer_and_checkpointer(&path);
        writer.execute("CREATE TABLE t (v TEXT)", []).unwrap();
        for i in 0..200 {
            writer
                .execute("INSERT INTO t VALUES (?1)", [format!("{i:0>100}")])
                .unwrap();
        }
        // Automatic checkpoints are off and both connections stay open, so
        // only the background thread can copy the WAL into the file.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(&path).unwrap().len() < 3 * 4096 {
            assert!(
                std::time::Instant::now() < deadline,
                "nothing was checkpointed"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(checkpointer);
    }

    /// A writer that is always inside a transaction (a loaded task queue)
    /// and takes the file's write lock as task transactions do: the WAL must
    /// still restart, so its file stays near [`RESTART_FRAMES`] instead of
    /// holding every frame ever written.
    #[test]
    fn the_wal_restarts_under_writes_that_never_pause() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let (writer, checkpointer, file) = writer_and_checkpointer(&path);
        writer.execute("CREATE TABLE t (v BLOB)", []).unwrap();
        // At least one frame per commit: without restarts the WAL would
        // hold four times the restart threshold.
        let commits = 4 * RESTART_FRAMES;
        for _ in 0..commits {
            let _task_write = file.write.lock();
            writer.execute_batch("BEGIN IMMEDIATE").unwrap();
            writer
                .execute("INSERT INTO t VALUES (zeroblob(1000))", [])
                .unwrap();
            // The transaction is in flight, as a claim or completion is
            // while the checkpointer copies.
            std::thread::sleep(Duration::from_micros(300));
            writer.execute_batch("COMMIT").unwrap();
        }
        drop(checkpointer);
        let wal_bytes = std::fs::metadata(dir.path().join("r.db-wal"))
            .unwrap()
            .len();
        let frame_bytes = 4096 + 24;
        let bound = u64::try_from(5 * RESTART_FRAMES / 2).unwrap() * frame_bytes;
        assert!(
            wal_bytes < bound,
            "WAL is {wal_bytes} bytes after {commits} commits (bound {bound}): it never restarted"
        );
    }
}
