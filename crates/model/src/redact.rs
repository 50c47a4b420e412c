//! Masking of secret parameter values in everything SpawnIt shows.

use serde_json::Value;

/// What replaces a secret value in output.
pub const MASK: &str = "(sensitive)";

/// Replaces every occurrence of any secret value by [`MASK`].
#[derive(Clone, Debug, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Redactor {
        let mut secrets: Vec<String> = secrets.into_iter().filter(|s| !s.is_empty()).collect();
        // Longest first, so a secret that contains another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    /// A redactor for the secret parameters of a service spec.
    pub fn for_spec(spec: &crate::ServiceSpec) -> Redactor {
        let values: Vec<String> = spec
            .secret_params
            .iter()
            .filter_map(|name| match spec.params.get(name) {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Null) | None => None,
                Some(other) => Some(other.to_string()),
            })
            .collect();
        // A secret inside a single-quoted shell word (an instance's user_data) has each `'`
        // written as `'"'"'`: mask that form too.
        let quoted: Vec<String> =
            values.iter().filter(|v| v.contains('\'')).map(|v| v.replace('\'', "'\"'\"'")).collect();
        Redactor::new(values.into_iter().chain(quoted))
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), MASK);
            }
        }
        out
    }

    /// Masks secrets in every string (and object key) of a JSON value.
    pub fn json(&self, value: &Value) -> Value {
        if self.secrets.is_empty() {
            return value.clone();
        }
        match value {
            Value::String(s) => Value::String(self.text(s)),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.json(v)).collect()),
            Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (self.text(k), self.json(v))).collect()),
            other => other.clone(),
        }
    }

    /// Serializes `value` to JSON with secrets masked.
    pub fn to_json<T: serde::Serialize>(&self, value: &T) -> Value {
        self.json(&serde_json::to_value(value).unwrap_or(Value::Null))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_every_occurrence_longest_first() {
        let r = Redactor::new(["abc".to_owned(), "abcdef".to_owned(), String::new()]);
        assert_eq!(r.text("x abcdef y abc"), "x (sensitive) y (sensitive)");
        let v = serde_json::json!({"env": {"PW": "abcdef"}, "cmd": ["--pw", "abc"]});
        assert_eq!(r.json(&v), serde_json::json!({"env": {"PW": MASK}, "cmd": ["--pw", MASK]}));
    }
}
