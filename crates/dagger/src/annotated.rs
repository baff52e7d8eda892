//! The functions annotated with `#[action]`, `#[task_agent]` and
//! `#[pubsub_agent]` in the whole program, collected at link time.

use crate::error::RegistrationError;
use dagger_dag_flow::{ActionRegistry, NodeAction};
use dagger_pubsub::{PubSubAgent, PubSubExecutor};
use dagger_task_core::{TaskAgent, TaskAgentRegistry};
use std::collections::HashSet;
use std::sync::Arc;

/// An `#[action]` function, recorded by the macro.
#[doc(hidden)]
pub struct AnnotatedAction(pub fn() -> Arc<dyn NodeAction>);

/// A `#[task_agent]` function, recorded by the macro.
#[doc(hidden)]
pub struct AnnotatedTaskAgent(pub fn() -> Arc<dyn TaskAgent>);

/// A `#[pubsub_agent]` function, recorded by the macro.
#[doc(hidden)]
pub struct AnnotatedPubSubAgent(pub fn() -> Arc<dyn PubSubAgent>);

inventory::collect!(AnnotatedAction);
inventory::collect!(AnnotatedTaskAgent);
inventory::collect!(AnnotatedPubSubAgent);

/// Every `#[action]` function in the program, sorted by name.
pub fn annotated_actions() -> Vec<Arc<dyn NodeAction>> {
    let mut all: Vec<_> = inventory::iter::<AnnotatedAction>
        .into_iter()
        .map(|entry| (entry.0)())
        .collect();
    all.sort_by(|a, b| a.name().cmp(b.name()));
    all
}

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

/// Every `#[pubsub_agent]` function in the program, sorted by name.
pub fn annotated_pubsub_agents() -> Vec<Arc<dyn PubSubAgent>> {
    let mut all: Vec<_> = inventory::iter::<AnnotatedPubSubAgent>
        .into_iter()
        .map(|entry| (entry.0)())
        .collect();
    all.sort_by(|a, b| a.name().cmp(b.name()));
    all
}

/// The first name in `names` that repeats or that `taken` reports as used.
fn first_clash<'a>(
    names: impl IntoIterator<Item = &'a str>,
    taken: impl Fn(&str) -> bool,
) -> Option<String> {
    let mut seen = HashSet::new();
    names
        .into_iter()
        .find(|name| !seen.insert(*name) || taken(name))
        .map(str::to_string)
}

/// Registers every `#[action]` function and returns how many.
///
/// Fails, registering nothing, when two annotated actions share a name or
/// one has the name of an action already in `registry` (which
/// [`ActionRegistry::register`] would silently replace).
pub fn register_all_actions(registry: &ActionRegistry) -> Result<usize, RegistrationError> {
    let all = annotated_actions();
    if let Some(name) = first_clash(all.iter().map(|a| a.name()), |n| registry.contains(n)) {
        return Err(RegistrationError::DuplicateAction { name });
    }
    let count = all.len();
    for action in all {
        registry.register(action);
    }
    Ok(count)
}

/// Registers every `#[task_agent]` function and returns how many.
///
/// Fails, registering nothing, when two annotated agents share a name or one
/// has the name of an agent already in `registry`.
pub fn register_all_task_agents(registry: &TaskAgentRegistry) -> Result<usize, RegistrationError> {
    let all = annotated_task_agents();
    if let Some(name) = first_clash(all.iter().map(|a| a.name()), |n| registry.contains(n)) {
        return Err(RegistrationError::DuplicateTaskAgent { name });
    }
    let count = all.len();
    for agent in all {
        registry.register_agent(agent)?;
    }
    Ok(count)
}

/// Registers every `#[pubsub_agent]` function with `executor` (before it
/// starts) and returns how many.
///
/// Two annotated agents sharing a name fail before anything is registered;
/// an agent the executor refuses (its name is taken, a pattern is invalid)
/// fails with the executor's error, after the agents before it (by name) were
/// registered.
pub fn register_all_pubsub_agents(executor: &PubSubExecutor) -> Result<usize, RegistrationError> {
    let all = annotated_pubsub_agents();
    if let Some(name) = first_clash(all.iter().map(|a| a.name()), |_| false) {
        return Err(RegistrationError::DuplicatePubSubAgent { name });
    }
    let count = all.len();
    for agent in all {
        executor.register_agent(agent)?;
    }
    Ok(count)
}
