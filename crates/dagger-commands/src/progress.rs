//! Progress of a run on stderr: on a terminal, one status line redrawn every
//! 200 ms with the elapsed time, the counts of running, done and failed
//! nodes over the total, and each running node with how long it has run;
//! elsewhere (a pipe, a file), one plain line per node event; nothing with
//! `--quiet`.

use dagger_coord::{EventHook, ExecutionEvent, ExecutorCommand, HookContext};
use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How often the terminal line is redrawn, so that elapsed times move while
/// no event arrives.
const TICK: Duration = Duration::from_millis(200);

/// Running nodes named on the status line; the rest are counted.
const SHOWN_RUNNING: usize = 4;

/// What the status line shows.
#[derive(Debug, Default)]
struct Counts {
    total: usize,
    done: usize,
    failed: usize,
    /// Running nodes and when each started.
    running: BTreeMap<String, Instant>,
}

impl Counts {
    /// `running 2, done 3, failed 0 of 8 | fetch 4.2 s, load 0.3 s`.
    fn render(&self, now: Instant) -> String {
        let mut line = format!(
            "running {}, done {}, failed {} of {}",
            self.running.len(),
            self.done,
            self.failed,
            self.total
        );
        if !self.running.is_empty() {
            line.push_str(" |");
            // Longest-running first: those are the ones worth watching.
            let mut running: Vec<(&String, &Instant)> = self.running.iter().collect();
            running.sort_by_key(|(id, started)| (**started, id.as_str()));
            for (i, (id, started)) in running.iter().take(SHOWN_RUNNING).enumerate() {
                let sep = if i == 0 { " " } else { ", " };
                let secs = now.saturating_duration_since(**started).as_secs_f64();
                let _ = write!(line, "{sep}{id} {secs:.1} s");
            }
            if running.len() > SHOWN_RUNNING {
                let _ = write!(line, " and {} more", running.len() - SHOWN_RUNNING);
            }
        }
        line
    }
}

/// How progress is shown.
enum Mode {
    /// A status line on a terminal.
    Line(ProgressBar),
    /// One line per event.
    Plain,
    /// Nothing.
    Quiet,
}

/// Reports node events on stderr.
pub(crate) struct Progress {
    mode: Mode,
    counts: Arc<Mutex<Counts>>,
}

impl Progress {
    /// Progress over `total` nodes: a ticking line when stderr is a
    /// terminal, plain lines otherwise, nothing when `quiet`.
    pub(crate) fn new(total: usize, quiet: bool) -> Self {
        let counts = Arc::new(Mutex::new(Counts {
            total,
            ..Counts::default()
        }));
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Line(status_line(&counts))
        } else {
            Mode::Plain
        };
        Self { mode, counts }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn line(&self, text: String) {
        match &self.mode {
            Mode::Line(bar) => bar.println(text),
            Mode::Plain => errln!("{text}"),
            Mode::Quiet => {}
        }
    }

    /// A node left the running set; `failed` counts it as failed.
    fn ended(&self, node_id: &str, failed: bool) {
        let mut c = self.counts();
        c.running.remove(node_id);
        c.done += 1;
        c.failed += usize::from(failed);
    }
}

/// The terminal line, redrawn every [`TICK`] from `counts`.
fn status_line(counts: &Arc<Mutex<Counts>>) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    let shared = counts.clone();
    let render = move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
        let text = shared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .render(Instant::now());
        let _ = w.write_str(&text);
    };
    if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed:>4} {counts}") {
        bar.set_style(style.with_key("counts", render));
    }
    bar.enable_steady_tick(TICK);
    bar
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Mode::Line(bar) = &self.mode {
            bar.finish_and_clear();
        }
    }
}

#[async_trait::async_trait]
impl EventHook for Progress {
    async fn handle(&self, ctx: &HookContext, event: &ExecutionEvent) -> Vec<ExecutorCommand> {
        let plain = matches!(self.mode, Mode::Plain);
        match event {
            ExecutionEvent::NodeStarted { node } => {
                self.counts()
                    .running
                    .entry(node.node_id.clone())
                    .or_insert_with(Instant::now);
                if plain {
                    if node.attempt > 1 {
                        self.line(format!(
                            "started   {} (attempt {})",
                            node.node_id, node.attempt
                        ));
                    } else {
                        self.line(format!("started   {}", node.node_id));
                    }
                }
            }
            ExecutionEvent::NodeCompleted { node, outcome } => {
                self.ended(&node.node_id, false);
                let hit = if outcome.cache_hit() { " (cached)" } else { "" };
                self.line(format!("completed {}{hit}", node.node_id));
            }
            ExecutionEvent::NodeRetrying {
                node,
                error,
                delay_ms,
            } => {
                self.line(format!(
                    "retrying  {} in {delay_ms} ms: {error}",
                    node.node_id
                ));
            }
            ExecutionEvent::NodeFailed { node, error } => {
                self.ended(&node.node_id, true);
                self.line(format!("failed    {}: {error}", node.node_id));
            }
            ExecutionEvent::NodeSkipped { node, reason } => {
                self.ended(&node.node_id, false);
                self.line(format!("skipped   {}: {reason}", node.node_id));
            }
            ExecutionEvent::NodeCancelled { node, reason } => {
                self.ended(&node.node_id, false);
                self.line(format!("cancelled {}: {reason}", node.node_id));
            }
            ExecutionEvent::NodeWaitingForHuman { node, prompt } => {
                self.counts().running.remove(&node.node_id);
                self.line(format!(
                    "waiting   {} for a human: {prompt} (answer with: dagger approve {} {})",
                    node.node_id, ctx.run_id, node.node_id
                ));
            }
            ExecutionEvent::NodeWaiting {
                node,
                wake_at,
                signal,
            } => {
                let until = wake_at
                    .map(|at| format!(" until {} UTC", crate::view::format_time(at)))
                    .unwrap_or_default();
                self.line(match signal {
                    Some(s) => format!(
                        "waiting   {} for signal {s}{until} (send with: dagger signal {} {s} --data JSON)",
                        node.node_id, ctx.run_id
                    ),
                    None => format!("waiting   {}{until}", node.node_id),
                });
            }
            ExecutionEvent::NodesAdded { node_ids } => {
                self.counts().total += node_ids.len();
            }
            ExecutionEvent::HookPanicked {
                hook,
                during,
                message,
            } => {
                self.line(format!(
                    "hook      `{hook}` panicked during {during}: {message}"
                ));
            }
            ExecutionEvent::CommandRejected { command, reason } => {
                self.line(format!("rejected  hook command {command}: {reason}"));
            }
            ExecutionEvent::RunCompleted { .. } => {
                if let Mode::Line(bar) = &self.mode {
                    bar.finish_and_clear();
                }
            }
            _ => {}
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_counts_and_times_running_nodes() {
        let start = Instant::now();
        let mut c = Counts {
            total: 8,
            done: 3,
            failed: 1,
            ..Counts::default()
        };
        assert_eq!(c.render(start), "running 0, done 3, failed 1 of 8");
        c.running
            .insert("load".into(), start + Duration::from_millis(3900));
        c.running.insert("fetch".into(), start);
        assert_eq!(
            c.render(start + Duration::from_millis(4200)),
            "running 2, done 3, failed 1 of 8 | fetch 4.2 s, load 0.3 s"
        );
        for i in 0..4 {
            c.running
                .insert(format!("n{i}"), start + Duration::from_secs(1));
        }
        assert!(
            c.render(start + Duration::from_secs(5))
                .ends_with("n2 4.0 s and 2 more"),
            "{}",
            c.render(start + Duration::from_secs(5))
        );
    }
}
