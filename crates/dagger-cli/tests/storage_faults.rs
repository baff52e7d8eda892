//! The CLI on storage faults: a database on read-only media can be listed,
//! shown and drawn, and `run` says "read-only" naming it; a full disk gives
//! the documented "no space left to write". Both need root (a read-only bind
//! mount, a tiny tmpfs), as in CI; the tests print why and pass otherwise.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

#[test]
fn read_commands_work_on_read_only_media_and_run_says_read_only() {
    let src = tempfile::tempdir().unwrap();
    let wf = src.path().join("wf.yaml");
    std::fs::write(&wf, WORKFLOW).unwrap();
    let db = src.path().join("runs.db");
    let out = dagger(&db, &["run", wf.to_str().unwrap(), "--run-id", "r1"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let view = match read_only_view(src.path()) {
        Ok(v) => v,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
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
