//! Live updates of a run as server-sent events.
//!
//! The store has no change notifications, so the server reads the run every
//! `live_interval` (500 ms by default) and sends only what changed; the
//! browser just listens. Events:
//! - `run`: `{status, reason, duration, node_count, resuming}` when any of them changed;
//! - `nodes`: `[{i, status, attempts, duration, error}]` for the nodes that changed
//!   (every node in the first event);
//! - `end`: the run reached a final status; the stream closes;
//! - `failure`: reading the store failed (`{error}`); the stream closes.

use crate::data::{format_ms, load_view};
use crate::error::ApiError;
use crate::pages::is_final;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use dagger_coord::RunView;
use dagger_core::NodeStatus;
use futures_util::stream::Stream;
use serde::Serialize;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

#[derive(Debug, Clone, Serialize)]
struct RunState {
    status: String,
    reason: Option<String>,
    duration: String,
    node_count: usize,
    resuming: bool,
}

impl RunState {
    /// Whether anything but the running duration differs (the duration alone
    /// is not worth an event; it rides along with the next one).
    fn differs(&self, other: &Self) -> bool {
        (&self.status, &self.reason, self.node_count, self.resuming)
            != (
                &other.status,
                &other.reason,
                other.node_count,
                other.resuming,
            )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct NodeState {
    i: usize,
    status: NodeStatus,
    attempts: u32,
    duration: String,
    error: Option<String>,
}

struct Follow {
    state: Arc<AppState>,
    run_id: String,
    last_run: Option<RunState>,
    last_nodes: Vec<NodeState>,
    queue: VecDeque<Event>,
    first: bool,
    done: bool,
}

fn snapshot(view: &RunView, resuming: bool) -> (RunState, Vec<NodeState>) {
    let summary = crate::data::RunSummary::from(&view.record);
    let run = RunState {
        status: summary.state.to_string(),
        reason: view.record.reason.clone(),
        duration: format_ms(summary.duration_ms),
        node_count: view.nodes.len(),
        resuming,
    };
    let nodes = view
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| NodeState {
            i,
            status: n.status,
            attempts: n.attempts,
            duration: n
                .duration_ms
                .map(|d| format_ms(d as i64))
                .unwrap_or_default(),
            error: n.error.clone(),
        })
        .collect();
    (run, nodes)
}

fn json_event(name: &str, value: &impl Serialize) -> Event {
    Event::default()
        .event(name)
        .data(serde_json::to_string(value).unwrap_or_else(|_| "null".into()))
}

impl Follow {
    /// Reads the run once and queues the events for what changed.
    async fn tick(&mut self) {
        let view = match load_view(&self.state.stores, &self.run_id).await {
            Ok(v) => v,
            Err(e) => {
                self.queue.push_back(json_event(
                    "failure",
                    &serde_json::json!({ "error": e.to_string() }),
                ));
                self.done = true;
                return;
            }
        };
        let resuming = self.state.is_resuming(&self.run_id);
        let (run, nodes) = snapshot(&view, resuming);
        let changed: Vec<&NodeState> = nodes
            .iter()
            .filter(|n| self.last_nodes.get(n.i) != Some(*n))
            .collect();
        if !changed.is_empty() {
            self.queue.push_back(json_event("nodes", &changed));
        }
        if self.last_run.as_ref().is_none_or(|last| last.differs(&run)) {
            self.queue.push_back(json_event("run", &run));
        }
        if is_final(view.record.status) && !resuming {
            self.queue
                .push_back(Event::default().event("end").data("{}"));
            self.done = true;
        }
        self.last_run = Some(run);
        self.last_nodes = nodes;
    }

    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some((Ok(event), self));
            }
            if self.done {
                return None;
            }
            if !self.first {
                let mut stopping = self.state.stopping.subscribe();
                tokio::select! {
                    _ = tokio::time::sleep(self.state.live_interval) => {}
                    _ = stopping.wait_for(|s| *s) => return None,
                }
            }
            self.first = false;
            self.tick().await;
        }
    }
}

/// `GET /api/runs/{id}/events`: the run's changes as server-sent events.
pub(crate) async fn run_events(
    State(state): State<Arc<AppState>>,
    Path(run_id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    // Unknown runs get a 404 rather than an empty stream.
    load_view(&state.stores, &run_id).await?;
    let follow = Follow {
        state,
        run_id,
        last_run: None,
        last_nodes: Vec::new(),
        queue: VecDeque::new(),
        first: true,
        done: false,
    };
    let stream = futures_util::stream::unfold(follow, Follow::next);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
