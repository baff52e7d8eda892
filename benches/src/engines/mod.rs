//! One module per engine. Each builds a [`Shape`](crate::shape::Shape) into
//! its own graph (timed as build time) and runs it to completion (timed as
//! run time), so the harness can compare them on the same graph.

pub mod dag_executor;
pub mod dagger;
pub mod dagrs;
pub mod dagx;
pub mod floor;
pub mod paradigms;
pub mod postgres;

use std::time::Duration;

/// Times of one run of one engine on one shape.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Building the engine's graph from the shape.
    pub build: Duration,
    /// Running the graph to completion.
    pub run: Duration,
}
