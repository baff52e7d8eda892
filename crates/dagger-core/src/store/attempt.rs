//! The record of every attempt of every node: when it ran, how it ended, its
//! output (also a failure's detail), and what it wrote (log lines through
//! `NodeCtx::log`, a shell command's stdout and stderr), each bounded.

use super::ArtifactId;
use crate::ids::{NodeId, RunId};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;

/// At most this many bytes of each captured stream (stdout, stderr) are
/// kept per attempt; beyond it the middle is dropped and a marker says how
/// much (see [`bound_text`]).
pub const STREAM_LIMIT: usize = 1 << 20;

/// At most this many bytes of log lines are kept per attempt; later lines
/// are counted in [`AttemptLogs::dropped_lines`] and a marker line says so.
pub const LOG_LIMIT: usize = 1 << 20;

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AttemptOutcome {
    /// The action returned an output that passed its schema.
    Succeeded,
    /// The action returned an error, reported failure, or its input or
    /// output was rejected.
    Failed,
    /// The attempt ran past the node's `timeout` and was cancelled.
    TimedOut,
    /// The run was cancelled or halted while the attempt ran.
    Cancelled,
    /// The action (or the attempt around it) panicked.
    Panicked,
}

impl AttemptOutcome {
    /// The stored name (`Succeeded`, `Failed`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::TimedOut => "TimedOut",
            Self::Cancelled => "Cancelled",
            Self::Panicked => "Panicked",
        }
    }

    /// Parses a stored name; `None` for an unknown one.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "Succeeded" => Self::Succeeded,
            "Failed" => Self::Failed,
            "TimedOut" => Self::TimedOut,
            "Cancelled" => Self::Cancelled,
            "Panicked" => Self::Panicked,
            _ => return None,
        })
    }
}

impl std::fmt::Display for AttemptOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an attempt wrote: log lines and captured streams, each bounded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptLogs {
    /// Lines written through `NodeCtx::log`, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<String>,
    /// Lines dropped because [`LOG_LIMIT`] was reached.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped_lines: u64,
    /// A command's standard output (bounded by [`STREAM_LIMIT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout: Option<String>,
    /// A command's standard error (bounded by [`STREAM_LIMIT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl AttemptLogs {
    /// True when nothing was written.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
            && self.dropped_lines == 0
            && self.stdout.is_none()
            && self.stderr.is_none()
    }
}

/// `text` if it fits in `limit` bytes; otherwise its head and tail (about
/// half of `limit` each, cut at character boundaries) around the line
/// `[… N bytes truncated …]`.
pub fn bound_text(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_string();
    }
    let half = limit / 2;
    let mut head = half;
    while !text.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = text.len() - half;
    while !text.is_char_boundary(tail) {
        tail += 1;
    }
    format!(
        "{}\n[… {} bytes truncated …]\n{}",
        &text[..head],
        tail - head,
        &text[tail..]
    )
}

#[derive(Debug, Default)]
struct SinkState {
    logs: AttemptLogs,
    line_bytes: usize,
}

/// Where an attempt's action writes log lines and captured streams (see
/// `NodeCtx::log`). Cheap to clone (shared); a disabled sink (a run that
/// records nothing) drops everything and costs no allocation.
#[derive(Debug, Clone, Default)]
pub struct LogSink {
    inner: Option<Arc<Mutex<SinkState>>>,
}

impl LogSink {
    /// A sink that keeps what is written, up to the bounds.
    pub fn new() -> Self {
        Self {
            inner: Some(Arc::default()),
        }
    }

    /// A sink that drops everything.
    pub fn disabled() -> Self {
        Self { inner: None }
    }

    /// Whether written text is kept.
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Appends a log line; once [`LOG_LIMIT`] bytes of lines are kept,
    /// further lines are only counted and one marker line says so.
    pub fn log(&self, line: impl Into<String>) {
        let Some(inner) = &self.inner else { return };
        let line = line.into();
        let mut s = inner.lock();
        if s.logs.dropped_lines > 0 || s.line_bytes + line.len() > LOG_LIMIT {
            if s.logs.dropped_lines == 0 {
                s.logs
                    .lines
                    .push(format!("[… log truncated at {LOG_LIMIT} bytes …]"));
            }
            s.logs.dropped_lines += 1;
            return;
        }
        s.line_bytes += line.len();
        s.logs.lines.push(line);
    }

    /// Sets the captured standard output (bounded by [`STREAM_LIMIT`]).
    pub fn set_stdout(&self, text: &str) {
        if let Some(inner) = &self.inner {
            inner.lock().logs.stdout = Some(bound_text(text, STREAM_LIMIT));
        }
    }

    /// Sets the captured standard error (bounded by [`STREAM_LIMIT`]).
    pub fn set_stderr(&self, text: &str) {
        if let Some(inner) = &self.inner {
            inner.lock().logs.stderr = Some(bound_text(text, STREAM_LIMIT));
        }
    }

    /// Adds logs an attempt wrote elsewhere (a worker process): its lines
    /// (bounds applied again) and its streams.
    pub fn extend(&self, logs: AttemptLogs) {
        for line in logs.lines {
            self.log(line);
        }
        if let Some(inner) = &self.inner {
            let mut s = inner.lock();
            s.logs.dropped_lines += logs.dropped_lines;
            if let Some(out) = logs.stdout {
                s.logs.stdout = Some(bound_text(&out, STREAM_LIMIT));
            }
            if let Some(err) = logs.stderr {
                s.logs.stderr = Some(bound_text(&err, STREAM_LIMIT));
            }
        }
    }

    /// True when nothing was written (or the sink is disabled).
    pub fn is_empty(&self) -> bool {
        self.inner
            .as_ref()
            .is_none_or(|inner| inner.lock().logs.is_empty())
    }

    /// Takes what was written so far, leaving the sink empty.
    pub fn take(&self) -> AttemptLogs {
        match &self.inner {
            Some(inner) => {
                let mut s = inner.lock();
                s.line_bytes = 0;
                std::mem::take(&mut s.logs)
            }
            None => AttemptLogs::default(),
        }
    }
}

/// One attempt of one node (or fan-out invocation) as recorded. Attempts are
/// kept for the life of their run; `node_runs` holds only the latest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// The run.
    pub run_id: RunId,
    /// The node.
    pub node_id: NodeId,
    /// `""` for a plain node; the element's index for a fan-out invocation.
    pub invocation_key: String,
    /// The attempt number, starting at 1.
    pub attempt: u32,
    /// The action the attempt ran.
    pub action: String,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// The error, for an attempt that did not succeed.
    pub error: Option<String>,
    /// A failed output's detail (`null` when there is none, and for a
    /// success, whose output is the artifact below).
    pub output: Value,
    /// The stored output of a successful attempt.
    pub output_artifact_id: Option<ArtifactId>,
    /// When the attempt started (ms since the epoch).
    pub started_at: i64,
    /// When it ended (ms since the epoch).
    pub finished_at: i64,
    /// Log lines and captured streams.
    pub logs: AttemptLogs,
}

/// Which attempts [`super::RunStore::attempts`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttemptQuery {
    /// Only this node's attempts.
    pub node_id: Option<NodeId>,
    /// Only attempts with this number.
    pub attempt: Option<u32>,
}

impl AttemptQuery {
    /// Whether `record` matches.
    pub fn matches(&self, record: &AttemptRecord) -> bool {
        self.node_id.as_ref().is_none_or(|n| *n == record.node_id)
            && self.attempt.is_none_or(|a| a == record.attempt)
    }
}

/// Sorts attempts as stores return them: by node, invocation (fan-out
/// indices numerically) and attempt number.
pub fn sort_attempts(attempts: &mut [AttemptRecord]) {
    attempts.sort_by(|a, b| {
        let key = |r: &AttemptRecord| {
            (
                r.invocation_key.parse::<u64>().unwrap_or(u64::MAX),
                r.invocation_key.clone(),
            )
        };
        (a.node_id.as_str(), key(a), a.attempt).cmp(&(b.node_id.as_str(), key(b), b.attempt))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_text_keeps_head_and_tail_with_a_marker() {
        let text = format!("{}{}", "a".repeat(100), "z".repeat(100));
        let bounded = bound_text(&text, 50);
        assert!(bounded.starts_with(&"a".repeat(25)));
        assert!(bounded.ends_with(&"z".repeat(25)));
        assert!(bounded.contains("[… 150 bytes truncated …]"), "{bounded}");
        assert_eq!(bound_text("short", 50), "short");
    }

    #[test]
    fn bound_text_cuts_at_char_boundaries() {
        let text = "é".repeat(100);
        let bounded = bound_text(&text, 51);
        assert!(bounded.contains("truncated"));
    }

    #[test]
    fn sink_bounds_lines_and_says_so() {
        let sink = LogSink::new();
        let line = "x".repeat(LOG_LIMIT / 2);
        sink.log(line.clone());
        sink.log(line.clone());
        sink.log(line.clone());
        sink.log("later");
        let logs = sink.take();
        assert_eq!(logs.lines.len(), 3);
        assert_eq!(logs.dropped_lines, 2);
        assert!(logs.lines[2].contains("log truncated"));
    }

    #[test]
    fn disabled_sink_keeps_nothing() {
        let sink = LogSink::disabled();
        sink.log("x");
        sink.set_stdout("y");
        assert!(sink.take().is_empty());
    }
}
