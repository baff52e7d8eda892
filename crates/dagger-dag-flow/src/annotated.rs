//! The functions annotated with `#[action]` in the whole program, collected
//! at link time (the facade's macros submit them here).

use crate::action::NodeAction;
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
