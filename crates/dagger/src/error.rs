//! Errors of the facade: registering the annotated actions and agents.

/// Registering every annotated action or agent at once failed; nothing was
/// registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationError {
    /// Two `#[action]` functions, or an annotated function and an action
    /// already in the registry, share a name.
    #[error("action `{name}` is defined more than once (by two `#[action]` functions or one already registered)")]
    DuplicateAction {
        /// The shared name.
        name: String,
    },
}
