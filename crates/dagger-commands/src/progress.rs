//! Progress of a run on the terminal: a bar on a TTY, plain lines otherwise.

use dagger_coord::{EventHook, ExecutionEvent, ExecutorCommand, HookContext};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

/// Reports node events on stderr.
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    pub(crate) fn new(total: usize) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total as u64);
            if let Ok(style) = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
            ) {
                bar.set_style(style);
            }
            bar
        });
        Self { bar }
    }

    fn line(&self, text: String) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => errln!("{text}"),
        }
    }
}

#[async_trait::async_trait]
impl EventHook for Progress {
    async fn handle(&self, ctx: &HookContext, event: &ExecutionEvent) -> Vec<ExecutorCommand> {
        match event {
            ExecutionEvent::NodeStarted { node } => {
                if let Some(bar) = &self.bar {
                    bar.set_message(node.node_id.clone());
                } else if node.attempt > 1 {
                    self.line(format!(
                        "started   {} (attempt {})",
                        node.node_id, node.attempt
                    ));
                } else {
                    self.line(format!("started   {}", node.node_id));
                }
            }
            ExecutionEvent::NodeCompleted { node, outcome } => {
                if let Some(bar) = &self.bar {
                    bar.inc(1);
                }
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
                if let Some(bar) = &self.bar {
                    bar.inc(1);
                }
                self.line(format!("failed    {}: {error}", node.node_id));
            }
            ExecutionEvent::NodeSkipped { node, reason } => {
                if let Some(bar) = &self.bar {
                    bar.inc(1);
                }
                self.line(format!("skipped   {}: {reason}", node.node_id));
            }
            ExecutionEvent::NodeCancelled { node, reason } => {
                if let Some(bar) = &self.bar {
                    bar.inc(1);
                }
                self.line(format!("cancelled {}: {reason}", node.node_id));
            }
            ExecutionEvent::NodeWaitingForHuman { node, prompt } => {
                self.line(format!(
                    "waiting   {} for a human: {prompt} (answer with: dagger approve {} {})",
                    node.node_id, ctx.run_id, node.node_id
                ));
            }
            ExecutionEvent::NodesAdded { node_ids } => {
                if let Some(bar) = &self.bar {
                    bar.inc_length(node_ids.len() as u64);
                }
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
                if let Some(bar) = &self.bar {
                    bar.finish_and_clear();
                }
            }
            _ => {}
        }
        Vec::new()
    }
}
