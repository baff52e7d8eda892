//! The functions annotated with `#[pubsub_agent]` in the whole program,
//! collected at link time (the facade's macros submit them here).

use crate::agent::PubSubAgent;
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
