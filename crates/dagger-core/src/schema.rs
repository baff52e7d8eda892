//! JSON Schema validation over the `jsonschema` crate. A schema is compiled
//! once and reused; a violation carries the instance path and the keyword.

use crate::error::SchemaError;
use serde_json::Value;
use std::fmt;
use std::sync::Arc;

/// A compiled JSON Schema, cheap to clone.
#[derive(Clone)]
pub struct JsonSchema {
    source: Arc<Value>,
    validator: Arc<jsonschema::Validator>,
}

impl fmt::Debug for JsonSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("JsonSchema").field(&self.source).finish()
    }
}

/// Why a value does not match a schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("schema violation at `{instance_path}` (keyword `{keyword}`): {message}")]
pub struct SchemaViolation {
    /// JSON Pointer to the offending part of the value (`""` is the root).
    pub instance_path: String,
    /// The schema keyword that failed (`type`, `required`, ...).
    pub keyword: String,
    /// A readable description.
    pub message: String,
}

impl JsonSchema {
    /// Compiles a schema given as a JSON value. `owner` (an action, agent or
    /// channel name) is used in the error when the schema is invalid.
    pub fn compile(schema: &Value, owner: Option<&str>) -> Result<Self, SchemaError> {
        let validator =
            jsonschema::validator_for(schema).map_err(|e| SchemaError::InvalidSchema {
                owner: owner.map(str::to_string),
                message: e.to_string(),
            })?;
        Ok(Self {
            source: Arc::new(schema.clone()),
            validator: Arc::new(validator),
        })
    }

    /// Compiles a schema given as JSON text.
    pub fn compile_str(schema: &str, owner: Option<&str>) -> Result<Self, SchemaError> {
        let value: Value =
            serde_json::from_str(schema).map_err(|e| SchemaError::InvalidSchema {
                owner: owner.map(str::to_string),
                message: format!("not valid JSON: {e}"),
            })?;
        Self::compile(&value, owner)
    }

    /// The schema document.
    pub fn source(&self) -> &Value {
        &self.source
    }

    /// Whether `instance` is valid (fast path, no error built).
    pub fn is_valid(&self, instance: &Value) -> bool {
        self.validator.is_valid(instance)
    }

    /// Validates `instance`, returning the first violation.
    pub fn validate(&self, instance: &Value) -> Result<(), SchemaViolation> {
        match self.validator.iter_errors(instance).next() {
            None => Ok(()),
            Some(err) => Err(violation(&err)),
        }
    }

    /// Every violation of `instance`.
    pub fn violations(&self, instance: &Value) -> Vec<SchemaViolation> {
        self.validator
            .iter_errors(instance)
            .map(|e| violation(&e))
            .collect()
    }
}

fn violation(err: &jsonschema::ValidationError<'_>) -> SchemaViolation {
    let schema_path = err.schema_path().to_string();
    let keyword = schema_path
        .rsplit('/')
        .find(|s| !s.is_empty() && s.parse::<usize>().is_err())
        .unwrap_or("");
    SchemaViolation {
        instance_path: err.instance_path().to_string(),
        keyword: keyword.to_string(),
        message: err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn person() -> JsonSchema {
        JsonSchema::compile(
            &json!({"type": "object", "required": ["name"], "properties": {
                "name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}}}),
            Some("person"),
        )
        .unwrap()
    }

    #[test]
    fn valid_values_pass() {
        assert!(
            person()
                .validate(&json!({"name": "Ada", "age": 36}))
                .is_ok()
        );
        assert!(person().is_valid(&json!({"name": "Ada"})));
    }

    #[test]
    fn violations_name_path_and_keyword() {
        let v = person()
            .validate(&json!({"name": "Ada", "age": -1}))
            .unwrap_err();
        assert_eq!(v.instance_path, "/age");
        assert_eq!(v.keyword, "minimum");
        let v = person().validate(&json!({"age": 3})).unwrap_err();
        assert_eq!(v.instance_path, "");
        assert_eq!(v.keyword, "required");
        let v = person().validate(&json!({"name": 5})).unwrap_err();
        assert_eq!(
            (v.instance_path.as_str(), v.keyword.as_str()),
            ("/name", "type")
        );
    }

    #[test]
    fn invalid_schemas_are_errors_naming_the_owner() {
        let e = JsonSchema::compile(&json!({"type": "no-such-type"}), Some("calc")).unwrap_err();
        assert!(e.to_string().contains("`calc`"), "{e}");
        let e = JsonSchema::compile_str("{not json", Some("calc")).unwrap_err();
        assert!(e.to_string().contains("not valid JSON"), "{e}");
    }
}
