//! Validated identifiers for clients, services, networks and templates.
//!
//! An id is `[a-z0-9][a-z0-9-]{0,62}`. It is the only user input that ever becomes a path
//! segment in the store or part of a Docker object name, so it is checked once, here, when it is
//! parsed, and every later use can rely on it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An identifier that matches `[a-z0-9][a-z0-9-]{0,62}`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Id(String);

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{value:?} is not a valid id: {reason} (ids are 1 to 63 characters of a-z, 0-9 and '-', starting with a letter or digit)"
)]
pub struct IdError {
    pub value: String,
    pub reason: &'static str,
}

impl Id {
    pub const MAX_LEN: usize = 63;

    /// What [`Id::parse`] accepts, as a regular expression (for JSON Schemas).
    pub const PATTERN: &str = "^[a-z0-9][a-z0-9-]{0,62}$";

    pub fn parse(value: &str) -> Result<Id, IdError> {
        let reason = if value.is_empty() {
            Some("it is empty")
        } else if value.len() > Self::MAX_LEN {
            Some("it is longer than 63 characters")
        } else if !value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            Some("it has a character other than a-z, 0-9 and '-'")
        } else if value.starts_with('-') {
            Some("it starts with '-'")
        } else {
            None
        };
        match reason {
            // Show at most a short prefix of a bad value: it may be long or hostile.
            Some(reason) => Err(IdError { value: value.chars().take(80).collect(), reason }),
            None => Ok(Id(value.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An id's JSON Schema: a string matching [`Id::PATTERN`].
#[cfg(feature = "schema")]
impl utoipa::PartialSchema for Id {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(Id::PATTERN))
            .min_length(Some(1))
            .max_length(Some(Id::MAX_LEN))
            .description(Some("1 to 63 characters of a-z, 0-9 and '-', starting with a letter or digit"))
            .into()
    }
}

#[cfg(feature = "schema")]
impl utoipa::ToSchema for Id {}

impl TryFrom<String> for Id {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Id::parse(&value)
    }
}

impl From<Id> for String {
    fn from(id: Id) -> String {
        id.0
    }
}

impl std::str::FromStr for Id {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Id::parse(s)
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Id {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_ids() {
        for ok in ["a", "0", "web-1", "a-b-c", &"x".repeat(63)] {
            assert_eq!(Id::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn refuses_invalid_ids_with_a_reason() {
        for (bad, reason) in [
            ("", "it is empty"),
            ("-a", "it starts with '-'"),
            ("A", "it has a character other than a-z, 0-9 and '-'"),
            ("../etc", "it has a character other than a-z, 0-9 and '-'"),
            ("a/b", "it has a character other than a-z, 0-9 and '-'"),
            ("a_b", "it has a character other than a-z, 0-9 and '-'"),
        ] {
            assert_eq!(Id::parse(bad).unwrap_err().reason, reason, "{bad:?}");
        }
        assert_eq!(Id::parse(&"x".repeat(64)).unwrap_err().reason, "it is longer than 63 characters");
        assert!(serde_json::from_str::<Id>("\"../x\"").is_err());
    }

    /// The pattern the API's document states accepts exactly what `parse` accepts.
    #[test]
    fn the_pattern_says_what_parse_accepts() {
        let pattern = regex::Regex::new(Id::PATTERN).unwrap();
        let long = "x".repeat(63);
        let too_long = "x".repeat(64);
        let samples =
            ["a", "0", "web-1", "a-", "-a", "", "A", "é", "a b", "a\n", "a_b", long.as_str(), too_long.as_str()];
        for value in samples {
            assert_eq!(pattern.is_match(value), Id::parse(value).is_ok(), "{value:?}");
        }
    }
}
