//! The hand-written floor: atomic in-degree counters and one `tokio::spawn`
//! per node, with no cache, registry or events. It shows how much of a
//! run's time is the runtime's own cost of spawning and waking tasks.

use super::Timing;
use crate::shape::Shape;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Instant;
use tokio::sync::Notify;

/// A shape ready to run: dependents and in-degree counters.
#[derive(Debug)]
pub struct Graph {
    dependents: Vec<Vec<u32>>,
    pending: Vec<AtomicU32>,
    remaining: AtomicUsize,
    done: Notify,
}

/// Builds the counters of `shape`.
pub fn build(shape: &Shape) -> Arc<Graph> {
    Arc::new(Graph {
        dependents: shape.dependents(),
        pending: shape
            .deps
            .iter()
            .map(|d| AtomicU32::new(d.len() as u32))
            .collect(),
        remaining: AtomicUsize::new(shape.len()),
        done: Notify::new(),
    })
}

fn spawn(g: &Arc<Graph>, node: u32) {
    let g = g.clone();
    tokio::spawn(async move {
        for &d in &g.dependents[node as usize] {
            if g.pending[d as usize].fetch_sub(1, Ordering::AcqRel) == 1 {
                spawn(&g, d);
            }
        }
        if g.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            g.done.notify_one();
        }
    });
}

/// Runs `g` to completion.
pub async fn run(g: &Arc<Graph>) {
    let done = g.done.notified();
    tokio::pin!(done);
    done.as_mut().enable();
    // Roots first, then spawn: a running root may already bring a
    // dependent's counter to zero.
    let roots: Vec<u32> = (0..g.pending.len() as u32)
        .filter(|&i| g.pending[i as usize].load(Ordering::Acquire) == 0)
        .collect();
    for r in roots {
        spawn(g, r);
    }
    done.await;
}

/// Builds and runs `shape` once.
pub async fn build_and_run(shape: &Shape) -> Timing {
    let t0 = Instant::now();
    let g = build(shape);
    let build = t0.elapsed();
    let t1 = Instant::now();
    run(&g).await;
    Timing {
        build,
        run: t1.elapsed(),
    }
}
