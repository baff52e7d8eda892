//! The functions annotated with `#[pubsub_agent]` in the whole program,
//! collected at link time (the facade's macros submit them here), and
//! registering them all at once.

use crate::agent::PubSubAgent;
use crate::error::PubSubError;
use crate::executor::PubSubExecutor;
use std::collections::HashSet;
use std::sync::Arc;

/// A `#[pubsub_agent]` function, recorded by the macro. Not public API.
#[doc(hidden)]
pub struct AnnotatedPubSubAgent(pub fn() -> Arc<dyn PubSubAgent>);

inventory::collect!(AnnotatedPubSubAgent);

/// Every `#[pubsub_agent]` function in the program, sorted by name.
pub fn annotated_pubsub_agents() -> Vec<Arc<dyn PubSubAgent>> {
    let mut all: Vec<_> = inventory::iter::<AnnotatedPubSubAgent>
        .into_iter()
        .map(|entry| (entry.0)())
        .collect();
    all.sort_by(|a, b| a.name().cmp(b.name()));
    all
}

/// Registers every `#[pubsub_agent]` function with `executor` (before it
/// starts) and returns how many.
///
/// Two annotated agents sharing a name fail with
/// [`PubSubError::DuplicateAgent`] before anything is registered; an agent
/// the executor refuses (its name is taken, a pattern is invalid) fails with
/// the executor's error, after the agents before it (by name) were
/// registered.
pub fn register_all_pubsub_agents(executor: &PubSubExecutor) -> Result<usize, PubSubError> {
    let all = annotated_pubsub_agents();
    let mut seen = HashSet::new();
    if let Some(name) = all
        .iter()
        .map(|a| a.name())
        .find(|name| !seen.insert(*name))
    {
        return Err(PubSubError::DuplicateAgent {
            agent: name.to_string(),
        });
    }
    let count = all.len();
    for agent in all {
        executor.register_agent(agent)?;
    }
    Ok(count)
}
