//! Shell nodes' process groups that outlived a `dagger` process killed
//! without a word (SIGKILL, OOM killer). Each `shell` attempt records its
//! group in a small file next to the SQLite store (`<db>.groups/<pgid>`)
//! and removes it when the group is killed at the attempt's end. `dagger run`
//! and `dagger resume` first kill every recorded group whose owning process
//! is gone, so a resumed run never has its old `sleep 25` running beside the
//! new one, and no node's process stays re-parented to init.
//!
//! Pids are checked against their start time (`/proc/PID/stat`), so a
//! recycled pid is never mistaken for the owner or the group.

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Age past which a `.partial` record is taken for one whose writer died
/// mid-write (a write takes microseconds) and removed by the scan.
const PARTIAL_MAX_AGE: Duration = Duration::from_secs(60);

/// One recorded process group.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct GroupRecord {
    run_id: String,
    node_id: String,
    pgid: i32,
    /// Start time of the group's leader (clock ticks since boot).
    leader_start: Option<u64>,
    owner_pid: u32,
    owner_start: Option<u64>,
}

/// Where an attempt's process group is recorded while it runs.
#[derive(Debug, Clone)]
pub(crate) struct GroupBook {
    dir: PathBuf,
    owner_pid: u32,
    owner_start: Option<u64>,
}

/// The directory holding the group records of store `db`: `<file>.groups`
/// beside a SQLite file; for a store with no file of its own (Postgres, in
/// memory) a directory of this machine's temporary directory, since the
/// groups live on this machine whichever store the run is recorded in.
pub(crate) fn dir_for(db: &str) -> PathBuf {
    let beside_file = (!crate::store::is_postgres_url(db))
        .then(|| match dagger_storage::SqliteLocation::parse(db).ok()? {
            dagger_storage::SqliteLocation::File(path) => {
                let mut name = path.file_name()?.to_os_string();
                name.push(".groups");
                Some(path.with_file_name(name))
            }
            dagger_storage::SqliteLocation::Memory => None,
        })
        .flatten();
    beside_file.unwrap_or_else(|| std::env::temp_dir().join("dagger-shell-groups"))
}

/// The start time of process `pid` in clock ticks since boot, from
/// `/proc/PID/stat`; `None` when there is no such process (or a zombie).
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid …`: comm may hold spaces, so split after `)`.
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace();
    if fields.next()? == "Z" {
        return None;
    }
    // After the state, starttime is the 19th field (field 22 of the line).
    fields.nth(18)?.parse().ok()
}

impl GroupBook {
    /// A book for this process in `dir` (created on first record).
    pub(crate) fn new(dir: PathBuf) -> Self {
        let owner_pid = std::process::id();
        Self {
            dir,
            owner_pid,
            owner_start: i32::try_from(owner_pid).ok().and_then(start_time),
        }
    }

    /// Records group `pgid` of node `node_id` of run `run_id`; returns the
    /// record's file (to remove when the group is gone). A record that
    /// cannot be written is only warned about: the group is still killed
    /// at the attempt's end, just not after a SIGKILL of this process.
    pub(crate) fn record(&self, run_id: &str, node_id: &str, pgid: Pid) -> Option<PathBuf> {
        // Without /proc this process cannot be told from a recycled pid
        // later: record nothing rather than risk killing a live run's group.
        self.owner_start?;
        let record = GroupRecord {
            run_id: run_id.to_string(),
            node_id: node_id.to_string(),
            pgid: pgid.as_raw(),
            leader_start: start_time(pgid.as_raw()),
            owner_pid: self.owner_pid,
            owner_start: self.owner_start,
        };
        let file = self.dir.join(pgid.as_raw().to_string());
        // Written aside and renamed, so a process killed mid-write leaves no
        // empty record under the group's name (one the scan could not read).
        let partial = self.dir.join(format!(".{}.partial", pgid.as_raw()));
        let written = std::fs::create_dir_all(&self.dir).and_then(|()| {
            let text = serde_json::to_vec(&record).map_err(std::io::Error::other)?;
            std::fs::write(&partial, text)?;
            std::fs::rename(&partial, &file)
        });
        match written {
            Ok(()) => Some(file),
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "cannot record a shell node's process group");
                None
            }
        }
    }
}

/// Kills every process group recorded in `dir` whose owning process is
/// gone, and removes its record; returns how many groups were killed.
/// A `.partial` record older than [`PARTIAL_MAX_AGE`] (its writer was
/// killed mid-write) is removed too.
pub(crate) fn kill_orphans(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut killed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            // A record being written, or one whose writer died mid-write.
            if is_stale_partial(&entry) {
                let _ = std::fs::remove_file(&path);
            }
            continue;
        }
        let Some(record) = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<GroupRecord>(&b).ok())
        else {
            continue;
        };
        let owner_alive = record.owner_start.is_none()
            || i32::try_from(record.owner_pid)
                .ok()
                .and_then(start_time)
                .is_some_and(|t| Some(t) == record.owner_start);
        if owner_alive {
            continue;
        }
        // A leader with another start time is a recycled pid: not ours. A
        // missing leader leaves the pgid reserved while any member lives,
        // so the group, if it still exists, is the recorded one.
        let leader = start_time(record.pgid);
        if (leader.is_none() || leader == record.leader_start)
            && killpg(Pid::from_raw(record.pgid), Signal::SIGKILL).is_ok()
        {
            killed += 1;
            tracing::warn!(
                run_id = record.run_id,
                node_id = record.node_id,
                pgid = record.pgid,
                "killed a shell node's process group left by a dead dagger process"
            );
        }
        let _ = std::fs::remove_file(&path);
    }
    killed
}

/// Whether `entry` is a `.partial` record last written more than
/// [`PARTIAL_MAX_AGE`] ago.
fn is_stale_partial(entry: &std::fs::DirEntry) -> bool {
    entry.file_name().to_string_lossy().ends_with(".partial")
        && entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age > PARTIAL_MAX_AGE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    #[test]
    fn the_record_directory_sits_beside_a_sqlite_file() {
        assert_eq!(
            dir_for("sqlite:.dagger/dagger.db"),
            PathBuf::from(".dagger/dagger.db.groups")
        );
        let machine = std::env::temp_dir().join("dagger-shell-groups");
        assert_eq!(dir_for("sqlite::memory:"), machine);
        assert_eq!(dir_for("postgres://u@h/db"), machine);
    }

    #[test]
    fn start_times_identify_live_processes() {
        let me = i32::try_from(std::process::id()).unwrap();
        assert!(start_time(me).is_some());
        assert_eq!(start_time(me), start_time(me));
        assert_eq!(start_time(i32::MAX), None);
    }

    #[test]
    fn groups_of_a_live_owner_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = Pid::from_raw(i32::try_from(child.id()).unwrap());
        let book = GroupBook::new(dir.path().to_path_buf());
        let file = book.record("r", "n", pgid).unwrap();
        assert_eq!(kill_orphans(dir.path()), 0, "this process owns it");
        assert!(child.try_wait().unwrap().is_none());
        // The same record from an owner that is gone (a recycled pid's start
        // time differs) is an orphan: its group is killed.
        let mut record: GroupRecord =
            serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        record.owner_start = record.owner_start.map(|t| t + 1);
        std::fs::write(&file, serde_json::to_vec(&record).unwrap()).unwrap();
        assert_eq!(kill_orphans(dir.path()), 1);
        assert!(child.wait().unwrap().code().is_none(), "killed by a signal");
        assert!(!file.exists());
    }

    #[test]
    fn partial_records_older_than_a_minute_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join(".41.partial");
        let fresh = dir.path().join(".42.partial");
        let other = dir.path().join(".hidden");
        for f in [&old, &fresh, &other] {
            std::fs::write(f, b"{\"run_id\":").unwrap();
        }
        let long_ago = SystemTime::now() - Duration::from_secs(120);
        for f in [&old, &other] {
            std::fs::File::options()
                .write(true)
                .open(f)
                .unwrap()
                .set_modified(long_ago)
                .unwrap();
        }
        assert_eq!(kill_orphans(dir.path()), 0);
        assert!(!old.exists(), "a writer killed mid-write left it long ago");
        assert!(fresh.exists(), "it may be being written right now");
        assert!(other.exists(), "not a record of ours");
    }
}
