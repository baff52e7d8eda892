//! The CLI's built-in actions: `shell`, `sleep`, `echo`, `fail`.

use crate::groups::GroupBook;
use dagger_core::{BoxError, Permanent};
use dagger_dag_flow::{ActionRegistry, NodeAction, NodeCtx, NodeOutput};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// The names of the built-in actions.
pub(crate) const BUILTIN_ACTIONS: [&str; 4] = ["echo", "fail", "shell", "sleep"];

/// A registry with every built-in action.
pub(crate) fn builtin_registry() -> ActionRegistry {
    builtin_registry_with(None)
}

/// A registry with every built-in action; `shell` records its process groups
/// in `groups` (see [`crate::groups`]).
pub(crate) fn builtin_registry_with(groups: Option<GroupBook>) -> ActionRegistry {
    let registry = ActionRegistry::new();
    registry.register(Arc::new(Shell { groups }));
    registry.register(Arc::new(Sleep));
    registry.register(Arc::new(Echo));
    registry.register(Arc::new(Fail));
    registry
}

/// The built-in actions, with `shell` recording its process groups (see
/// [`crate::groups`]) after killing the groups that dead `dagger` processes
/// left behind: a SIGKILLed run's or worker's `sleep` does not run on beside
/// the attempt that replaces it.
pub(crate) fn recording_groups(db: &str) -> ActionRegistry {
    let dir = crate::groups::dir_for(db);
    let killed = crate::groups::kill_orphans(&dir);
    if killed > 0 {
        errln!(
            "killed {killed} process group(s) of shell nodes left running by a dagger process that died ({})",
            dir.display()
        );
    }
    builtin_registry_with(Some(GroupBook::new(dir)))
}

/// Runs `command` with `sh -c` in its own process group.
#[derive(Default)]
struct Shell {
    /// Where the group is recorded while it runs, if anywhere.
    groups: Option<GroupBook>,
}

/// How many bytes of stderr a failure message keeps.
const STDERR_TAIL: usize = 2_000;

#[async_trait::async_trait]
impl NodeAction for Shell {
    fn name(&self) -> &str {
        "shell"
    }

    fn description(&self) -> &str {
        "Runs input `command` with `sh -c`; other inputs arrive as DAGGER_INPUT_<NAME> environment variables"
    }

    async fn execute(&self, ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
        let command = ctx
            .inputs
            .get("command")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Permanent::new(format!(
                    "node `{}`: shell needs a string input `command`",
                    ctx.node_id
                ))
            })?;
        let parse_json = ctx.inputs.get("parse").and_then(Value::as_str) == Some("json");
        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-c")
            .arg(command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.process_group(0).kill_on_drop(true);
        for (name, value) in ctx
            .inputs
            .iter()
            .filter(|(n, _)| *n != "command" && *n != "parse")
        {
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            cmd.env(format!("DAGGER_INPUT_{}", env_name(name)), text);
        }
        cmd.env("DAGGER_RUN_ID", ctx.run_id.as_str())
            .env("DAGGER_NODE_ID", ctx.node_id.as_str());
        cmd.env("DAGGER_IDEMPOTENCY_KEY", &ctx.idempotency_key);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("node `{}`: cannot start `sh`: {e}", ctx.node_id))?;
        let pgid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw);
        // From here on, however the attempt ends (the shell exits, cancel,
        // timeout, or this process exits and drops it), the group dies.
        let record = pgid.and_then(|pgid| {
            self.groups
                .as_ref()
                .and_then(|book| book.record(ctx.run_id.as_str(), ctx.node_id.as_str(), pgid))
        });
        let _group = GroupGuard { pgid, record };
        let mut stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        let read_out = async {
            let mut buf = Vec::new();
            if let Some(s) = stdout.as_mut() {
                s.read_to_end(&mut buf).await?;
            }
            Ok::<_, std::io::Error>(buf)
        };
        let read_err = async {
            let mut buf = Vec::new();
            if let Some(s) = stderr.as_mut() {
                s.read_to_end(&mut buf).await?;
            }
            Ok::<_, std::io::Error>(buf)
        };
        let finished = async { tokio::try_join!(child.wait(), read_out, read_err) };
        let (status, out, err) = tokio::select! {
            r = finished => r.map_err(|e| format!("node `{}`: {e}", ctx.node_id))?,
            () = ctx.cancel.cancelled() => {
                // Kill the whole group: the shell and everything it started.
                if let Some(pgid) = pgid {
                    let _ = killpg(pgid, Signal::SIGTERM);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let _ = killpg(pgid, Signal::SIGKILL);
                }
                return Err(format!("node `{}`: command cancelled", ctx.node_id).into());
            }
        };
        let stdout = String::from_utf8_lossy(&out);
        let stderr = String::from_utf8_lossy(&err).to_string();
        // Into the attempt's record (bounded), whether the command succeeds or not.
        ctx.logs.set_stdout(&stdout);
        ctx.logs.set_stderr(&stderr);
        let stdout = stdout.trim().to_string();
        let code = status.code().unwrap_or(-1);
        if !status.success() {
            let tail = tail(&stderr, STDERR_TAIL);
            return Err(format!("command exited with status {code}: {tail}").into());
        }
        let stdout_value = if parse_json {
            serde_json::from_str(&stdout).map_err(|e| {
                Permanent::new(format!("node `{}`: stdout is not JSON ({e})", ctx.node_id))
            })?
        } else {
            Value::String(stdout)
        };
        Ok(NodeOutput::success(
            json!({ "stdout": stdout_value, "stderr": stderr, "exit_code": code }),
        ))
    }
}

/// Kills a shell node's whole process group when dropped, so that nothing
/// a node started outlives its attempt: after the shell exited (stragglers it
/// left in the background), when the attempt is cancelled or times out (its
/// future is dropped), and when the `dagger` process exits (the runtime drops
/// every task). No child is left to be re-parented to init.
/// Its record (for a SIGKILL of this process) is removed with it.
struct GroupGuard {
    pgid: Option<Pid>,
    record: Option<PathBuf>,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid {
            // ESRCH (the group is already gone) is the normal case.
            let _ = killpg(pgid, Signal::SIGKILL);
        }
        if let Some(record) = &self.record {
            let _ = std::fs::remove_file(record);
        }
    }
}

fn env_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

fn tail(s: &str, max: usize) -> String {
    let s = s.trim();
    if s.len() <= max {
        return s.to_string();
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    format!("...{}", &s[start..])
}

/// Sleeps `seconds` (or `ms`), honouring cancellation.
struct Sleep;

#[async_trait::async_trait]
impl NodeAction for Sleep {
    fn name(&self) -> &str {
        "sleep"
    }

    fn description(&self) -> &str {
        "Sleeps for input `seconds` (or `ms`)"
    }

    async fn execute(&self, ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
        let secs = match (
            ctx.inputs.get("seconds").and_then(Value::as_f64),
            ctx.inputs.get("ms").and_then(Value::as_f64),
        ) {
            (Some(s), _) => s,
            (None, Some(ms)) => ms / 1000.0,
            (None, None) => 0.0,
        };
        if !(secs.is_finite() && secs >= 0.0) {
            return Err(Permanent::new(format!(
                "node `{}`: sleep needs a non-negative duration",
                ctx.node_id
            ))
            .into());
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs_f64(secs)) => Ok(NodeOutput::success(json!({ "slept_seconds": secs }))),
            () = ctx.cancel.cancelled() => Err("sleep cancelled".into()),
        }
    }
}

/// Returns its inputs as outputs.
struct Echo;

#[async_trait::async_trait]
impl NodeAction for Echo {
    fn name(&self) -> &str {
        "echo"
    }

    fn description(&self) -> &str {
        "Returns its inputs as outputs"
    }

    async fn execute(&self, ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
        Ok(NodeOutput::success(ctx.inputs.to_value()))
    }
}

/// Always fails with input `message`.
struct Fail;

#[async_trait::async_trait]
impl NodeAction for Fail {
    fn name(&self) -> &str {
        "fail"
    }

    fn description(&self) -> &str {
        "Fails with input `message`"
    }

    async fn execute(&self, ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
        let message = ctx
            .inputs
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("failed on purpose");
        Err(message.to_string().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn ctx(inputs: Value) -> NodeCtx {
        let Value::Object(map) = inputs else {
            panic!("object")
        };
        NodeCtx::for_test("n", map)
    }

    #[tokio::test]
    async fn shell_captures_output_and_passes_inputs_as_env() {
        let out = Shell::default().execute(&ctx(json!({"command": "echo \"$DAGGER_INPUT_WHO_AM_I\"; echo oops >&2", "who-am-i": "x"}))).await.unwrap();
        assert_eq!(out.outputs["stdout"], json!("x"));
        assert_eq!(out.outputs["stderr"], json!("oops\n"));
        assert_eq!(out.outputs["exit_code"], json!(0));
    }

    #[tokio::test]
    async fn shell_parses_json_when_asked() {
        let out = Shell::default()
            .execute(&ctx(
                json!({"command": "echo '{\"n\": 3}'", "parse": "json"}),
            ))
            .await
            .unwrap();
        assert_eq!(out.outputs["stdout"], json!({"n": 3}));
    }

    #[tokio::test]
    async fn shell_failure_carries_the_stderr_tail() {
        let err = Shell::default()
            .execute(&ctx(json!({"command": "echo broken >&2; exit 3"})))
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "command exited with status 3: broken");
    }

    #[tokio::test]
    async fn shell_cancel_kills_the_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("survived");
        let c =
            ctx(json!({"command": format!("(sleep 1; touch {}) & sleep 30", marker.display())}));
        let token = c.cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            token.cancel();
        });
        let err = Shell::default().execute(&c).await.unwrap_err();
        assert_eq!(err.to_string(), "node `n`: command cancelled");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(
            !marker.exists(),
            "the background child was killed with its group"
        );
    }

    /// Waits (bounded) until the process whose pid the shell wrote to `file` is gone.
    async fn pid_gone(file: &std::path::Path) -> bool {
        let pid: i32 = std::fs::read_to_string(file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        for _ in 0..200 {
            if nix::sys::signal::kill(Pid::from_raw(pid), None).is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        false
    }

    #[tokio::test]
    async fn a_dropped_attempt_kills_the_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let c =
            ctx(json!({"command": format!("sleep 30 & echo $! > {}; wait", pid_file.display())}));
        let shell = Shell::default();
        let attempt = shell.execute(&c);
        // A node timeout (or the end of the process) drops the attempt.
        let dropped = tokio::time::timeout(Duration::from_millis(500), attempt).await;
        assert!(dropped.is_err(), "the attempt was still running");
        assert!(pid_gone(&pid_file).await, "the `sleep` survived its node");
    }

    #[tokio::test]
    async fn background_processes_do_not_outlive_their_node() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let c = ctx(
            json!({"command": format!("sleep 30 >/dev/null 2>&1 & echo $! > {}", pid_file.display())}),
        );
        Shell::default().execute(&c).await.unwrap();
        assert!(
            pid_gone(&pid_file).await,
            "the background `sleep` survived its node"
        );
    }

    #[test]
    fn the_builtin_names_are_the_registered_ones() {
        assert_eq!(builtin_registry().names(), BUILTIN_ACTIONS);
    }

    #[tokio::test]
    async fn echo_sleep_and_fail() {
        let out = Echo.execute(&ctx(json!({"a": 1}))).await.unwrap();
        assert_eq!(out.outputs, json!({"a": 1}));
        assert!(Sleep.execute(&ctx(json!({"ms": 1}))).await.is_ok());
        let err = Fail
            .execute(&ctx(json!({"message": "boom"})))
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "boom");
        let _ = Map::new();
    }
}
