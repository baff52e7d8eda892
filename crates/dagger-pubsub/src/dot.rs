//! DOT rendering: agents as boxes, channels as ellipses with their counts,
//! edges for subscriptions (channel → agent) and publications (agent → channel).

use crate::metrics::ChannelMetrics;
use crate::pattern::Pattern;
use crate::runtime::Runtime;
use dagger_core::DotWriter;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

pub(crate) struct AgentView<'a> {
    pub(crate) name: &'a str,
    pub(crate) description: &'a str,
    pub(crate) subscriptions: &'a [Pattern],
    pub(crate) publications: &'a [Pattern],
    pub(crate) processed: u64,
}

pub(crate) fn render_started(rt: &Runtime) -> String {
    let agents: Vec<AgentView<'_>> = rt
        .agents
        .iter()
        .map(|a| AgentView {
            name: &a.name,
            description: a.agent.description(),
            subscriptions: &a.subscriptions,
            publications: &a.publications,
            processed: a.processed.load(Ordering::Relaxed),
        })
        .collect();
    let channels: Vec<(String, ChannelMetrics)> = crate::metrics::PubSubMetrics::of(rt)
        .channels
        .into_iter()
        .collect();
    render(&agents, &channels)
}

fn agent_id(name: &str) -> String {
    format!("agent:{name}")
}

fn channel_id(name: &str) -> String {
    format!("channel:{name}")
}

pub(crate) fn render(agents: &[AgentView<'_>], channels: &[(String, ChannelMetrics)]) -> String {
    let mut w = DotWriter::new("pubsub");
    w.graph_attr("rankdir", "LR");
    for a in agents {
        let mut label = a.name.to_string();
        if !a.description.is_empty() {
            label.push('\n');
            label.push_str(a.description);
        }
        label.push_str(&format!("\nprocessed {}", a.processed));
        w.node(&agent_id(a.name), &[("shape", "box"), ("label", &label)]);
    }
    // Every channel in use, plus every declared name or pattern not yet used.
    let mut nodes: BTreeMap<String, Option<&ChannelMetrics>> = BTreeMap::new();
    for (name, m) in channels {
        nodes.insert(name.clone(), Some(m));
    }
    for a in agents {
        for p in a.subscriptions.iter().chain(a.publications) {
            nodes.entry(p.as_str().to_string()).or_insert(None);
        }
    }
    for (name, m) in &nodes {
        match m {
            Some(m) => {
                let label = format!(
                    "{name}\npublished {} | delivered {} | dead-lettered {}",
                    m.published, m.delivered, m.dead_lettered
                );
                let style = if m.durable { "bold" } else { "solid" };
                w.node(
                    &channel_id(name),
                    &[("shape", "ellipse"), ("style", style), ("label", &label)],
                );
            }
            None => {
                w.node(
                    &channel_id(name),
                    &[("shape", "ellipse"), ("style", "dashed"), ("label", name)],
                );
            }
        }
    }
    for a in agents {
        for p in a.subscriptions {
            w.edge(
                &channel_id(p.as_str()),
                &agent_id(a.name),
                &[("style", "dashed")],
            );
        }
        for (name, m) in channels {
            if m.subscribers.iter().any(|s| s == a.name)
                && !a.subscriptions.iter().any(|p| p.as_str() == name)
            {
                w.edge(&channel_id(name), &agent_id(a.name), &[]);
            }
        }
        for p in a.publications {
            w.edge(&agent_id(a.name), &channel_id(p.as_str()), &[]);
        }
    }
    w.finish()
}
