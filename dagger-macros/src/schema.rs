//! Compile-time checks of JSON Schema strings.

use serde_json::Value;

/// Checks that `source` is JSON and a valid JSON Schema; the error says why
/// not, with the line and column of a JSON syntax error.
pub(crate) fn check(source: &str) -> Result<(), String> {
    let value: Value = serde_json::from_str(source).map_err(|e| {
        format!(
            "not valid JSON: {} at line {} column {}",
            json_reason(&e),
            e.line(),
            e.column()
        )
    })?;
    if !matches!(value, Value::Object(_) | Value::Bool(_)) {
        return Err("a JSON Schema must be an object or a boolean".to_string());
    }
    jsonschema::validator_for(&value).map(drop).map_err(|e| {
        let at = e.instance_path().to_string();
        if at.is_empty() {
            format!("not a valid JSON Schema: {e}")
        } else {
            format!("not a valid JSON Schema: at `{at}`: {e}")
        }
    })
}

/// serde_json's message without its trailing position (we print our own).
fn json_reason(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn valid_schemas_pass() {
        assert_eq!(check(r#"{"type": "object"}"#), Ok(()));
        assert_eq!(check("true"), Ok(()));
    }

    #[test]
    fn json_syntax_errors_give_a_position() {
        let err = check("{\"type\": \n \"object\",}").unwrap_err();
        assert_eq!(err, "not valid JSON: trailing comma at line 2 column 11");
    }

    #[test]
    fn invalid_keywords_are_rejected() {
        let err = check(r#"{"properties": {"n": {"type": 5}}}"#).unwrap_err();
        assert!(
            err.starts_with("not a valid JSON Schema: at `/properties/n/type`: "),
            "{err}"
        );
        let err = check(r#"{"type": "no-such-type"}"#).unwrap_err();
        assert!(err.starts_with("not a valid JSON Schema: "), "{err}");
        assert_eq!(
            check("[1]").unwrap_err(),
            "a JSON Schema must be an object or a boolean"
        );
    }
}
