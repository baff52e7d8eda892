//! `dagrs` 0.9.0: one `DefaultNode` per node and one edge per dependency.
//! Each action awaits every input channel (one token per dependency) and
//! then broadcasts a unit token to its dependents, so the engine's own
//! dependency machinery (channels between nodes) does the scheduling.

use super::Timing;
use crate::shape::Shape;
use dagrs::{
    Action, Content, DefaultNode, EnvVar, Graph, InChannels, Node, NodeId, NodeTable, OutChannels,
    Output,
};
use std::sync::Arc;
use std::time::Instant;

/// Awaits its inputs, then broadcasts `()`.
#[derive(Debug)]
pub struct Token;

#[async_trait::async_trait]
impl Action for Token {
    async fn run(
        &self,
        in_channels: &mut InChannels,
        out_channels: &mut OutChannels,
        _env: Arc<EnvVar>,
    ) -> Output {
        let received = in_channels.map(|c| c.is_ok()).await;
        debug_assert!(received.into_iter().all(|ok| ok));
        out_channels.broadcast(Content::new(())).await;
        Output::empty()
    }
}

/// Builds `shape` as a `dagrs` graph.
pub fn build(shape: &Shape) -> Graph {
    let mut table = NodeTable::new();
    let mut graph = Graph::new();
    let ids: Vec<NodeId> = (0..shape.len())
        .map(|i| {
            let node = DefaultNode::with_action(Shape::name(i), Token, &mut table);
            let id = node.id();
            graph.add_node(node).expect("unique node ids");
            id
        })
        .collect();
    for (i, dependents) in shape.dependents().iter().enumerate() {
        if !dependents.is_empty() {
            graph
                .add_edge(ids[i], dependents.iter().map(|&d| ids[d as usize]))
                .expect("edges between existing nodes");
        }
    }
    graph.set_env(EnvVar::new(table));
    graph
}

/// Runs `graph` to completion.
pub async fn run(graph: &mut Graph) {
    graph.async_start().await.expect("dagrs run succeeds");
}

/// Builds and runs `shape` once.
pub async fn build_and_run(shape: &Shape) -> Timing {
    let t0 = Instant::now();
    let mut graph = build(shape);
    let build = t0.elapsed();
    let t1 = Instant::now();
    run(&mut graph).await;
    Timing {
        build,
        run: t1.elapsed(),
    }
}
