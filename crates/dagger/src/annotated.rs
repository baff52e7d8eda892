//! Registering at once the functions annotated with `#[action]`,
//! `#[task_agent]` and `#[pubsub_agent]` in the whole program (the paradigm
//! crates collect them at link time).

use crate::error::RegistrationError;
use dagger_dag_flow::{ActionRegistry, annotated_actions};
use dagger_pubsub::{PubSubExecutor, annotated_pubsub_agents};
use dagger_task_core::{TaskAgentRegistry, annotated_task_agents};
use std::collections::HashSet;

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
