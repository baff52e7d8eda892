//! Checks a JSON output against a `$defs` entry of
//! docs/schemas/cli.schema.json (shared with `#[path]`).

use serde_json::Value;

/// Panics with every violation of `$defs/<def>` by `value`.
pub(crate) fn assert_matches(def: &str, value: &Value) {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/schemas/cli.schema.json");
    let mut schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(
        schema["$defs"].get(def).is_some(),
        "the schema has no `{def}`"
    );
    schema["$ref"] = Value::String(format!("#/$defs/{def}"));
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{def}: {}\n{value}", errors.join("\n"));
}
