//! `dagger logs`: every recorded attempt of a run's nodes, from the binary.

use serde_json::Value;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn write(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_dagger"));
        c.args(args).current_dir(self.dir.path()).env(
            "DAGGER_DB",
            format!("sqlite:{}", self.dir.path().join("runs.db").display()),
        );
        c
    }
    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A workflow of one shell node `a` (two tries) running input `cmd`, and `b` after it.
const SHELL_WF: &str = "name: logs
nodes:
  - id: a
    action: shell
    try_count: 2
    inputs:
      - name: command
        reference: inputs.cmd
  - id: b
    action: echo
    dependencies: [a]
";

fn json_lines(out: &Output) -> Vec<Value> {
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn logs_shows_the_stdout_of_a_failed_shell_attempt() {
    let sb = Sandbox::new();
    let wf = sb.write("wf.yaml", SHELL_WF);
    let cmd = "cmd=echo \"out of try $DAGGER_RUN_ID\"; echo broken >&2; exit 3";
    let run = sb.run(&["run", &wf, "--run-id", "r1", "--input", cmd]);
    assert_eq!(run.status.code(), Some(1), "{}", text(&run.stderr));

    let out = sb.run(&["logs", "r1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("=== node a attempt 1 (shell): Failed"),
        "{shown}"
    );
    assert!(
        shown.contains("=== node a attempt 2 (shell): Failed"),
        "{shown}"
    );
    assert!(shown.contains("error: command exited with status 3: broken"));
    assert_eq!(
        shown.matches("--- stdout\nout of try r1\n").count(),
        2,
        "{shown}"
    );
    assert_eq!(shown.matches("--- stderr\nbroken\n").count(), 2, "{shown}");

    // One record per attempt, each with its error and streams.
    let lines = json_lines(&sb.run(&["logs", "r1", "a", "--json"]));
    assert_eq!(lines.len(), 2);
    for (i, a) in lines.iter().enumerate() {
        assert_eq!(a["attempt"], i as u64 + 1);
        assert_eq!(a["outcome"], "Failed");
        assert_eq!(a["error"], "command exited with status 3: broken");
        assert_eq!(a["logs"]["stdout"], "out of try r1\n");
        assert_eq!(a["logs"]["stderr"], "broken\n");
        assert!(a["finished_at"].as_i64() >= a["started_at"].as_i64());
    }
    let second = json_lines(&sb.run(&["logs", "r1", "a", "--attempt", "2", "--json"]));
    assert_eq!(second.len(), 1);
    assert_eq!(second[0]["attempt"], 2);

    // Unknown run, node and attempt are errors naming them.
    let cases = [
        (vec!["logs", "nope"], "error: unknown run `nope`"),
        (vec!["logs", "r1", "zz"], "error: run `r1` has no node `zz`"),
        (
            vec!["logs", "r1", "aa"],
            "error: run `r1` has no node `aa` (did you mean `a`?)",
        ),
        (
            vec!["logs", "r1", "a", "--attempt", "7"],
            "error: node `a` of run `r1` has no recorded attempt 7",
        ),
    ];
    for (args, message) in cases {
        let out = sb.run(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(text(&out.stderr).contains(message), "{}", text(&out.stderr));
    }
}

#[test]
fn shell_output_beyond_the_bound_keeps_head_and_tail_with_a_marker() {
    let sb = Sandbox::new();
    let wf = sb.write("wf.yaml", SHELL_WF);
    // 1.5 MiB of stdout: `s` at the start, `e` at the end.
    let cmd = "cmd=printf s; head -c 1572864 /dev/zero | tr '\\0' x; printf e";
    let run = sb.run(&["run", &wf, "--run-id", "big", "--input", cmd]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let lines = json_lines(&sb.run(&["logs", "big", "a", "--json"]));
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["outcome"], "Succeeded");
    assert!(lines[0]["output_artifact_id"].is_string());
    let stdout = lines[0]["logs"]["stdout"].as_str().unwrap();
    assert!(stdout.len() <= (1 << 20) + 100, "{}", stdout.len());
    assert!(stdout.starts_with("sxxx") && stdout.ends_with("xxxe"));
    let marker = format!("[… {} bytes truncated …]", 1_572_866 - (1 << 20));
    assert!(stdout.contains(&marker), "no `{marker}`");
}

#[test]
fn follow_prints_attempts_as_they_end_and_stops_with_the_run() {
    let sb = Sandbox::new();
    let wf = sb.write(
        "wf.yaml",
        "name: follow
nodes:
  - id: first
    action: shell
    inputs:
      - name: command
        reference: inputs.first
  - id: second
    action: shell
    dependencies: [first]
    inputs:
      - name: command
        reference: inputs.second
",
    );
    let mut run = sb
        .cmd(&[
            "run",
            &wf,
            "--run-id",
            "f1",
            "--input",
            "first=echo one",
            "--input",
            "second=sleep 2; echo two",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the run to be recorded, then follow it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sb.run(&["runs", "show", "f1"]).status.success() {
        assert!(Instant::now() < deadline, "the run was never recorded");
        std::thread::sleep(Duration::from_millis(50));
    }
    let follow = sb.run(&["logs", "f1", "--follow"]);
    assert!(run.wait().unwrap().success());
    assert!(follow.status.success(), "{}", text(&follow.stderr));
    let shown = text(&follow.stdout);
    assert!(
        shown.contains("=== node first attempt 1 (shell): Succeeded"),
        "{shown}"
    );
    assert!(
        shown.contains("=== node second attempt 1 (shell): Succeeded"),
        "{shown}"
    );
    assert!(shown.contains("--- stdout\ntwo\n"), "{shown}");
    assert!(text(&follow.stderr).contains("run `f1` is Completed"));
}
