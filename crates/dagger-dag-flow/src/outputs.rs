//! `outcome.outputs.as_ref()`: the DAG Flow guide's way of asking whether a
//! node returned outputs.

use serde_json::Value;

/// `as_ref()` on a JSON value: `Some(value)`, or `None` when it is `null`
/// (an action that returned no outputs). In the prelude, so that the DAG
/// Flow guide's hooks read as written:
///
/// ```
/// use dagger_dag_flow::ValueAsRef;
/// use serde_json::{Value, json};
///
/// let outputs = json!({"needs_validation": true});
/// if let Some(analysis) = outputs.as_ref() {
///     assert!(analysis["needs_validation"] == true);
/// }
/// assert!(Value::Null.as_ref().is_none());
/// ```
///
/// `outputs` is a [`Value`]: indexing it directly
/// (`outcome.outputs["needs_validation"]`, `null` when absent) or
/// `outcome.outputs.get("key")` says the same with less ceremony.
pub trait ValueAsRef {
    /// The value, unless it is `null`.
    fn as_ref(&self) -> Option<&Value>;
}

impl ValueAsRef for Value {
    fn as_ref(&self) -> Option<&Value> {
        (!self.is_null()).then_some(self)
    }
}
