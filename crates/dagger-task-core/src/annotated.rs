//! The functions annotated with `#[task_agent]` in the whole program,
//! collected at link time (the facade's macros submit them here), and
//! registering them all at once.

use crate::agent::{TaskAgent, TaskAgentRegistry};
use crate::error::TaskError;

use std::collections::HashSet;
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

/// Registers every `#[task_agent]` function and returns how many.
///
/// Fails with [`TaskError::DuplicateAgent`], registering nothing, when two
/// annotated agents share a name or one has the name of an agent already in
/// `registry`.
pub fn register_all_task_agents(registry: &TaskAgentRegistry) -> Result<usize, TaskError> {
    let all = annotated_task_agents();
    let mut seen = HashSet::new();
    if let Some(name) = all
        .iter()
        .map(|a| a.name())
        .find(|name| !seen.insert(*name) || registry.contains(name))
    {
        return Err(TaskError::DuplicateAgent(name.to_string()));
    }
    let count = all.len();
    for agent in all {
        registry.register_agent(agent)?;
    }
    Ok(count)
}
