//! DOT rendering of a job's tasks.

use dagger_core::store::TaskRecord;
use dagger_core::{DotWriter, TaskStatus};

fn colour(s: TaskStatus) -> &'static str {
    match s {
        TaskStatus::Pending => "lightgrey",
        TaskStatus::Ready => "lightblue",
        TaskStatus::Blocked => "orange",
        TaskStatus::InProgress => "yellow",
        TaskStatus::Completed => "lightgreen",
        TaskStatus::Accepted => "green",
        TaskStatus::Failed | TaskStatus::Rejected => "salmon",
        TaskStatus::Cancelled => "grey",
    }
}

/// Renders tasks and their dependency edges (dependency -> dependent).
pub(crate) fn render(name: &str, tasks: &[TaskRecord]) -> String {
    let mut w = DotWriter::new(name);
    w.graph_attr("rankdir", "TB");
    w.node_defaults(&[("shape", "box"), ("style", "filled")]);
    for t in tasks {
        let mut label = format!(
            "{}\n{} [{}]\nagent: {}\nStatus: {}\nattempts: {}",
            t.task_id, t.description, t.task_type, t.agent, t.status, t.attempts
        );
        if let Some(e) = &t.error {
            label.push_str("\nerror: ");
            label.push_str(e);
        }
        w.node(
            t.task_id.as_str(),
            &[("label", &label), ("fillcolor", colour(t.status))],
        );
    }
    for t in tasks {
        for d in &t.dependencies {
            w.edge(d.as_str(), t.task_id.as_str(), &[]);
        }
        if let Some(p) = &t.parent_id
            && !t.dependencies.contains(p)
        {
            w.edge(p.as_str(), t.task_id.as_str(), &[("style", "dashed")]);
        }
    }
    w.finish()
}
