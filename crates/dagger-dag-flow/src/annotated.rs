//! The functions annotated with `#[action]` in the whole program, collected
//! at link time (the facade's macros submit them here), and registering them
//! all at once.

use crate::action::{ActionRegistry, NodeAction};
use crate::error::DagError;
use std::collections::HashSet;
use std::sync::Arc;

/// An `#[action]` function, recorded by the macro. Not public API.
#[doc(hidden)]
pub struct AnnotatedAction(pub fn() -> Arc<dyn NodeAction>);

inventory::collect!(AnnotatedAction);

/// Every `#[action]` function in the program, sorted by name.
pub fn annotated_actions() -> Vec<Arc<dyn NodeAction>> {
    let mut all: Vec<_> = inventory::iter::<AnnotatedAction>
        .into_iter()
        .map(|entry| (entry.0)())
        .collect();
    all.sort_by(|a, b| a.name().cmp(b.name()));
    all
}

/// Registers every `#[action]` function and returns how many.
///
/// Fails with [`DagError::DuplicateAction`], registering nothing, when two
/// annotated actions share a name or one has the name of an action already
/// in `registry` (which [`ActionRegistry::register`] would silently
/// replace).
pub fn register_all_actions(registry: &ActionRegistry) -> Result<usize, DagError> {
    let all = annotated_actions();
    let mut seen = HashSet::new();
    if let Some(name) = all
        .iter()
        .map(|a| a.name())
        .find(|name| !seen.insert(*name) || registry.contains(name))
    {
        return Err(DagError::DuplicateAction {
            name: name.to_string(),
        });
    }
    let count = all.len();
    for action in all {
        registry.register(action);
    }
    Ok(count)
}
