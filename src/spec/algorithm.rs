//! The search algorithms this build knows, by name: one enum, so adding an algorithm is a change the
//! compiler walks through (search::build, the settings check, the end reason), not a hunt for
//! strings.

use std::fmt;

use serde::{Deserialize, Serialize};

/// `spec.algorithm.name`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum AlgorithmName {
    Random,
    Grid,
    Bayesian,
    /// A name this build does not know, kept so that the validator reports it with every other
    /// problem of the document (and the known names) instead of stopping at the first.
    Unknown(String),
}

impl AlgorithmName {
    /// Every algorithm this build runs.
    pub const KNOWN: [AlgorithmName; 3] = [AlgorithmName::Random, AlgorithmName::Grid, AlgorithmName::Bayesian];

    pub fn as_str(&self) -> &str {
        match self {
            AlgorithmName::Random => "random",
            AlgorithmName::Grid => "grid",
            AlgorithmName::Bayesian => "bayesian",
            AlgorithmName::Unknown(name) => name,
        }
    }

    /// The keys `spec.algorithm.settings` may hold; `None` for an unknown algorithm.
    pub fn settings(&self) -> Option<&'static [&'static str]> {
        match self {
            AlgorithmName::Random => Some(&[]),
            AlgorithmName::Grid => Some(&["levels"]),
            AlgorithmName::Bayesian => Some(&["initialPoints", "candidates", "restarts", "xi"]),
            AlgorithmName::Unknown(_) => None,
        }
    }
}

impl fmt::Display for AlgorithmName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for AlgorithmName {
    fn from(name: &str) -> Self {
        Self::KNOWN.into_iter().find(|a| a.as_str() == name).unwrap_or_else(|| AlgorithmName::Unknown(name.into()))
    }
}

impl From<String> for AlgorithmName {
    fn from(name: String) -> Self {
        AlgorithmName::from(name.as_str())
    }
}

impl From<AlgorithmName> for String {
    fn from(name: AlgorithmName) -> Self {
        name.as_str().to_string()
    }
}

impl schemars::JsonSchema for AlgorithmName {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "AlgorithmName".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let names: Vec<&str> = Self::KNOWN.iter().map(AlgorithmName::as_str).collect();
        schemars::json_schema!({"type": "string", "enum": names})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_and_write_as_their_strings_and_unknown_ones_survive_for_the_validator() {
        for name in AlgorithmName::KNOWN {
            let text = serde_json::to_string(&name).unwrap();
            assert_eq!(serde_json::from_str::<AlgorithmName>(&text).unwrap(), name);
        }
        let unknown: AlgorithmName = serde_json::from_str("\"bayes\"").unwrap();
        assert_eq!(unknown, AlgorithmName::Unknown("bayes".into()));
        assert_eq!(unknown.settings(), None);
    }
}
