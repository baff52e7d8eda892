//! Waiting nodes: durable timers (`sleep:`, `wait_until:`) and signals
//! (`wait_for:`). A waiting node has no action: once ready it waits, holding
//! no execution slot, then completes (a timer) or completes with the payload
//! of the signal it received. The coordinator keeps the waits; this module
//! holds their definitions and the small, pure parts (timestamps, the
//! `match` form) that validation and the run machine share.

use crate::model::NodeDef;
use crate::schedule::parse_duration_ms;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a node waits for under `wait_for:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WaitFor {
    /// The signal's name (`dagger signal RUN NAME`).
    pub signal: String,
    /// Which payloads count: clauses `<JSON pointer> == <value>` joined by
    /// `&&`; a value is a JSON literal or `{{ inputs.key }}` / `{{ node.key }}`
    /// (see [`SignalMatch`]). Without it every payload counts.
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<String>,
    /// How long to wait (`30s`, `1h`); without it the node waits for good.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// What the node does when the timeout runs out.
    #[serde(default, skip_serializing_if = "OnTimeout::is_fail")]
    pub on_timeout: OnTimeout,
    /// A JSON Schema the payload must match; a payload that does not is
    /// refused when sent (`dagger signal` fails, naming the run, node and signal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
}

/// What a signal wait does when its timeout runs out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnTimeout {
    /// The node fails (its `onfailure`/`on_failure` rules apply).
    #[default]
    Fail,
    /// The node is skipped, and so are its dependents.
    Skip,
    /// The node completes with an empty output (`{"timed_out": true}`), so
    /// its dependents run.
    Continue,
}

impl OnTimeout {
    fn is_fail(&self) -> bool {
        *self == OnTimeout::Fail
    }
}

/// A `wait_until:` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitUntil {
    /// A fixed time, ms since the Unix epoch.
    At(i64),
    /// A reference (`inputs.at`, `node.key`) whose value, an RFC 3339
    /// string, is read when the node becomes ready.
    Reference(String),
}

impl WaitUntil {
    /// Reads `{{ reference }}` or an RFC 3339 timestamp.
    pub fn parse(text: &str) -> Result<Self, String> {
        match template_reference(text) {
            Some(r) => Ok(WaitUntil::Reference(r.to_string())),
            None => parse_timestamp_ms(text).map(WaitUntil::At),
        }
    }
}

/// Milliseconds since the Unix epoch of an RFC 3339 timestamp
/// (`2026-12-08T09:00:00Z`, `2026-12-08T10:00:00+01:00`).
pub fn parse_timestamp_ms(text: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.timestamp_millis())
        .map_err(|e| format!("`{text}` is not an RFC 3339 time (e.g. 2026-12-08T09:00:00Z): {e}"))
}

/// The reference inside `{{ … }}`, when `text` is one.
fn template_reference(text: &str) -> Option<&str> {
    let inner = text.trim().strip_prefix("{{")?.strip_suffix("}}")?.trim();
    let (ns, key) = inner.split_once('.')?;
    (!ns.is_empty() && !key.is_empty() && !inner.contains(char::is_whitespace)).then_some(inner)
}

/// One side of a `match` clause that is compared with the payload.
#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Literal(Value),
    Reference(String),
}

/// A parsed `match:` of a signal wait: every clause `<pointer> == <value>`
/// must hold. The pointer is a JSON pointer into the payload (`/order/id`;
/// empty for the whole payload); the value is a JSON literal (`42`, `"a"`,
/// `true`; a bare word reads as a string) or `{{ reference }}`, read from the
/// run's inputs or an upstream node's output when the signal arrives.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalMatch {
    clauses: Vec<(String, Operand)>,
}

impl SignalMatch {
    /// Parses `text`, or says what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut clauses = Vec::new();
        for clause in text.split("&&") {
            let Some((pointer, value)) = clause.split_once("==") else {
                return Err(format!(
                    "`{}` is not `<JSON pointer> == <value>`",
                    clause.trim()
                ));
            };
            let pointer = pointer.trim();
            if !(pointer.is_empty() || pointer.starts_with('/')) {
                return Err(format!(
                    "`{pointer}` is not a JSON pointer (it starts with `/`, e.g. `/order_id`)"
                ));
            }
            let value = value.trim();
            if value.is_empty() {
                return Err(format!("`{}` compares with nothing", clause.trim()));
            }
            let operand = match template_reference(value) {
                Some(r) => Operand::Reference(r.to_string()),
                None if value.starts_with("{{") => {
                    return Err(format!(
                        "`{value}` is not a reference (`{{{{ inputs.key }}}}` or `{{{{ node.key }}}}`)"
                    ));
                }
                None => Operand::Literal(
                    serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.into())),
                ),
            };
            clauses.push((pointer.to_string(), operand));
        }
        Ok(Self { clauses })
    }

    /// Whether `payload` satisfies every clause; `resolve` reads a reference
    /// (a clause whose reference has no value does not hold).
    pub fn matches(&self, payload: &Value, resolve: &dyn Fn(&str) -> Option<Value>) -> bool {
        self.clauses.iter().all(|(pointer, operand)| {
            let Some(found) = payload.pointer(pointer) else {
                return false;
            };
            match operand {
                Operand::Literal(v) => loosely_equal(found, v),
                Operand::Reference(r) => resolve(r).is_some_and(|v| loosely_equal(found, &v)),
            }
        })
    }
}

/// JSON equality where numbers compare by value (`1` equals `1.0`).
fn loosely_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// What is wrong with the wait fields of `node`, as `(field, message)`.
pub(crate) fn problems(node: &NodeDef) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let kinds = [
        node.sleep.is_some(),
        node.wait_until.is_some(),
        node.wait_for.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() > 1 {
        out.push((
            "sleep",
            "give one of `sleep`, `wait_until` and `wait_for`".to_string(),
        ));
    }
    if !node.is_wait() {
        return out;
    }
    if !node.action.trim().is_empty() {
        out.push((
            "action",
            "a waiting node (`sleep`, `wait_until`, `wait_for`) has no action; \
             put the work in a dependent node"
                .to_string(),
        ));
    }
    if node.map_over.is_some() {
        out.push(("map_over", "a waiting node cannot fan out".to_string()));
    }
    if let Some(s) = &node.sleep
        && let Err(e) = parse_duration_ms(s)
    {
        out.push(("sleep", e));
    }
    if let Some(t) = &node.wait_until
        && let Err(e) = WaitUntil::parse(t)
    {
        out.push(("wait_until", e));
    }
    if let Some(w) = &node.wait_for {
        if w.signal.trim().is_empty() {
            out.push(("wait_for", "`signal` is empty".to_string()));
        }
        if let Some(m) = &w.matches
            && let Err(e) = SignalMatch::parse(m)
        {
            out.push(("wait_for", format!("`match`: {e}")));
        }
        if let Some(t) = &w.timeout
            && let Err(e) = parse_duration_ms(t)
        {
            out.push(("wait_for", format!("`timeout`: {e}")));
        }
        if let Some(schema) = &w.schema
            && let Err(e) = dagger_core::JsonSchema::compile(schema, None)
        {
            out.push(("wait_for", format!("`schema`: {e}")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wait_until_reads_timestamps_and_references() {
        assert_eq!(
            WaitUntil::parse("2026-12-08T09:00:00Z"),
            Ok(WaitUntil::At(1_796_720_400_000))
        );
        assert_eq!(
            WaitUntil::parse("{{ inputs.at }}"),
            Ok(WaitUntil::Reference("inputs.at".into()))
        );
        assert!(
            WaitUntil::parse("tomorrow")
                .unwrap_err()
                .contains("RFC 3339")
        );
    }

    #[test]
    fn match_compares_pointers_with_literals_and_references() {
        let m = SignalMatch::parse("/order_id == {{ inputs.order }} && /ok == true").unwrap();
        let inputs = |r: &str| (r == "inputs.order").then(|| json!(4711));
        assert!(m.matches(&json!({"order_id": 4711.0, "ok": true}), &inputs));
        assert!(!m.matches(&json!({"order_id": 4712, "ok": true}), &inputs));
        assert!(!m.matches(&json!({"ok": true}), &inputs));
        let word = SignalMatch::parse("/state == paid").unwrap();
        assert!(word.matches(&json!({"state": "paid"}), &|_| None));
        assert!(SignalMatch::parse("order_id == 1").is_err());
        assert!(SignalMatch::parse("/a = 1").is_err());
        assert!(SignalMatch::parse("/a == {{ nope }}").is_err());
    }
}
