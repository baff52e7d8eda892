//! The functions annotated with `#[task_agent]` in the whole program,
//! collected at link time (the facade's macros submit them here).

use crate::agent::TaskAgent;
use std::sync::Arc;

/// A `#[task_agent]` function, recorded by the macro. Not public API.
#[doc(hidden)]
pub struct AnnotatedTaskAgent(pub fn() -> Arc<dyn TaskAgent>);

inventory::collect!(AnnotatedTaskAgent);

/// Every `#[task_agent]` function in the program, sorted by name (agents
/// from `#[task_agent]` on an `impl` block need a value: register those
/// yourself).
pub fn annotated_task_agents() -> Vec<Arc<dyn TaskAgent>> {
    let mut all: Vec<_> = inventory::iter::<AnnotatedTaskAgent>
        .into_iter()
        .map(|entry| (entry.0)())
        .collect();
    all.sort_by(|a, b| a.name().cmp(b.name()));
    all
}
