//! The progress display of `dagger run`: on a terminal (driven through tmux)
//! a status line that ticks while a node sleeps; plain lines when stderr is
//! not a terminal; nothing with `--quiet`.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const SLOW: &str = "name: slow
nodes:
  - id: quick
    action: echo
  - id: nap
    action: sleep
    dependencies: [quick]
    inputs: [{ name: seconds, value: 6 }]
";

/// A tmux server of our own (its own socket), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .unwrap()
    }
    fn capture(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "progress"]).stdout)
            .to_string()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

/// The seconds shown for `node` on the status line, if it is there.
fn elapsed_of(screen: &str, node: &str) -> Option<f64> {
    let line = screen.lines().find(|l| l.contains("running 1,"))?;
    let after = line.split(&format!(" {node} ")).nth(1)?;
    after.split(' ').next()?.parse().ok()
}

#[test]
fn the_terminal_status_line_ticks_while_a_node_sleeps() {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("skipping: `tmux` not found (apt-get install -y tmux)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("slow.yaml"), SLOW).unwrap();
    let tmux = Tmux {
        socket: format!("dagger-progress-{}", std::process::id()),
    };
    let script = format!(
        "'{}' run slow.yaml --db sqlite:runs.db; sleep 60",
        env!("CARGO_BIN_EXE_dagger")
    );
    let dir_arg = dir.path().to_str().unwrap();
    let started = tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "progress",
        "-x",
        "200",
        "-y",
        "20",
        "-c",
        dir_arg,
        &script,
    ]);
    assert!(started.status.success(), "{started:?}");

    // Wait (bounded) until the line shows `nap` running.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (first, screen) = loop {
        let screen = tmux.capture();
        if let Some(secs) = elapsed_of(&screen, "nap") {
            break (secs, screen);
        }
        assert!(Instant::now() < deadline, "no status line:\n{screen}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        screen.contains("running 1, done 1, failed 0 of 2 | nap "),
        "{screen}"
    );
    assert!(screen.contains("completed quick"), "{screen}");
    // No event arrives while `nap` sleeps: only the tick moves the time.
    std::thread::sleep(Duration::from_millis(1500));
    let screen = tmux.capture();
    let second = elapsed_of(&screen, "nap").unwrap_or_else(|| panic!("{screen}"));
    assert!(
        second >= first + 1.0,
        "the elapsed time did not move: {first} then {second}\n{screen}"
    );
}

fn run(dir: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dagger"))
        .args(["run", "quick.yaml", "--db", "sqlite:runs.db"])
        .args(extra)
        .current_dir(dir)
        .output()
        .unwrap()
}

#[test]
fn without_a_terminal_progress_is_plain_lines_and_quiet_drops_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("quick.yaml"),
        "name: quick\nnodes:\n  - id: a\n    action: echo\n  - id: b\n    action: echo\n    dependencies: [a]\n",
    )
    .unwrap();
    let out = run(dir.path(), &[]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines[0].starts_with("run ") && lines[0].contains("workflow `quick` (2 nodes)"));
    assert_eq!(
        &lines[1..],
        ["started   a", "completed a", "started   b", "completed b"],
        "{err}"
    );
    assert!(!err.contains('\x1b'), "no escape codes off a terminal");

    let out = run(dir.path(), &["--quiet"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Completed: 2 completed"));
}
