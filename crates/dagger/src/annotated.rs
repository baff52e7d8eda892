//! The functions annotated with `#[action]`, `#[task_agent]` and
//! `#[pubsub_agent]` in the whole program, collected at link time.

use crate::error::RegistrationError;
use dagger_dag_flow::{ActionRegistry, NodeAction};
use std::collections::HashSet;
use std::sync::Arc;

/// An `#[action]` function, recorded by the macro.
#[doc(hidden)]
pub struct AnnotatedAction(pub fn() -> Arc<dyn NodeAction>);

inventory::collect!(AnnotatedAction);

/// Every `#[action]` in the program, sorted by name.
pub fn annotated_actions() -> Vec<Arc<dyn NodeAction>> {
    let mut actions: Vec<Arc<dyn NodeAction>> = inventory::iter::<AnnotatedAction>
        .into_iter()
        .map(|entry| (entry.0)())
        .collect();
    actions.sort_by(|a, b| a.name().cmp(b.name()));
    actions
}

/// Registers every `#[action]` in the program and returns how many.
///
/// Fails, registering nothing, when two annotated actions share a name or
/// one has the name of an action already in `registry`.
pub fn register_all_actions(registry: &ActionRegistry) -> Result<usize, RegistrationError> {
    let actions = annotated_actions();
    let mut seen = HashSet::new();
    for action in &actions {
        if !seen.insert(action.name()) || registry.contains(action.name()) {
            return Err(RegistrationError::DuplicateAction {
                name: action.name().to_string(),
            });
        }
    }
    let count = actions.len();
    for action in actions {
        registry.register(action);
    }
    Ok(count)
}
