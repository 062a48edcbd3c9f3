//! The search algorithms this build knows, by name: one enum, so adding an algorithm is a change the
//! compiler walks through (search::build, the settings check, the end reason), not a hunt for
//! strings.

crate::wire_strings! {
    /// `spec.algorithm.name`.
    pub enum AlgorithmName {
        Random => "random",
        Grid => "grid",
        Bayesian => "bayesian",
        Hyperband => "hyperband",
        ;
        /// A name this build does not know, kept so that the validator reports it with every other
        /// problem of the document (and the known names) instead of stopping at the first.
        Unknown
    }
}

impl AlgorithmName {
    /// Every algorithm this build runs.
    pub const KNOWN: &'static [AlgorithmName] = Self::NAMED;

    /// The keys `spec.algorithm.settings` may hold; `None` for an unknown algorithm.
    pub fn settings(&self) -> Option<&'static [&'static str]> {
        match self {
            AlgorithmName::Random => Some(&[]),
            AlgorithmName::Grid => Some(&["levels"]),
            AlgorithmName::Bayesian => Some(&["initialPoints", "candidates", "restarts", "xi"]),
            AlgorithmName::Hyperband => Some(&["resourceParameter", "eta"]),
            AlgorithmName::Unknown(_) => None,
        }
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
            assert_eq!(&serde_json::from_str::<AlgorithmName>(&text).unwrap(), name);
        }
        let unknown: AlgorithmName = serde_json::from_str("\"bayes\"").unwrap();
        assert_eq!(unknown, AlgorithmName::Unknown("bayes".into()));
        assert_eq!(unknown.settings(), None);
    }
}
