//! The settings of `algorithm.name: bayesian`, read from the spec's free-form `settings` map with
//! one error per bad field, named by its path so a user can fix it.

use std::collections::BTreeMap;

use serde_json::Value;

/// The settings `bayesian` accepts; any other key is a validation error.
pub const SETTINGS: &[&str] = &["initialPoints", "candidates", "restarts", "xi"];

/// Quasi-random points before the model takes over: Optuna's and Katib's default.
const DEFAULT_INITIAL_POINTS: usize = 10;
/// Quasi-random candidates scored per suggestion before the local search (Optuna scores 2048).
/// A quarter as many again are scored near the incumbent, and the local searches refine the best:
/// on the harness's public problems 128 found optima as good as 256 and 1024 did, within the
/// spread of 30 to 80 seeds (`cargo run --release --example public_suite`), at a fraction of
/// the cost.
const DEFAULT_CANDIDATES: usize = 128;
/// Local searches per suggestion (Optuna runs 10; 3 did as well here as 5 and 10).
const DEFAULT_RESTARTS: usize = 3;
/// Caps that keep one suggestion's cost bounded whatever a spec asks for.
const MAX_INITIAL_POINTS: u64 = 100_000;
const MAX_CANDIDATES: u64 = 100_000;
const MAX_RESTARTS: u64 = 100;

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SettingsError {
    #[error("spec.algorithm.settings.{key} must be a positive integer")]
    NotPositiveInteger { key: &'static str },
    #[error("spec.algorithm.settings.{key} must be at most {max}")]
    TooLarge { key: &'static str, max: u64 },
    #[error("spec.algorithm.settings.xi must be a finite number, 0 or more")]
    InvalidXi,
    #[error("spec.algorithm.settings.{0} is not a setting of bayesian (known settings: {known})", known = SETTINGS.join(", "))]
    Unknown(String),
}

impl SettingsError {
    /// The field path, as the spec validator reports it (`spec.algorithm.settings.xi`).
    pub fn field(&self) -> String {
        let key = match self {
            Self::NotPositiveInteger { key } | Self::TooLarge { key, .. } => key,
            Self::InvalidXi => "xi",
            Self::Unknown(key) => key.as_str(),
        };
        format!("spec.algorithm.settings.{key}")
    }

    /// The sentence after the field path.
    pub fn message(&self) -> String {
        let text = self.to_string();
        text.strip_prefix(&self.field()).map_or(text.clone(), |m| m.trim_start().to_string())
    }
}

/// The settings in force, defaults filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub initial_points: usize,
    pub candidates: usize,
    pub restarts: usize,
    /// The margin an improvement must clear, in standard deviations of the (transformed) objective.
    pub xi: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            initial_points: DEFAULT_INITIAL_POINTS,
            candidates: DEFAULT_CANDIDATES,
            restarts: DEFAULT_RESTARTS,
            xi: 0.0,
        }
    }
}

impl Settings {
    /// Reads the settings, or the first problem found (see [`check`] for all of them).
    pub fn parse(raw: &BTreeMap<String, Value>) -> Result<Self, SettingsError> {
        if let Some(problem) = check(raw).into_iter().next() {
            return Err(problem);
        }
        let defaults = Self::default();
        Ok(Self {
            initial_points: count(raw, "initialPoints", MAX_INITIAL_POINTS)?.unwrap_or(defaults.initial_points),
            candidates: count(raw, "candidates", MAX_CANDIDATES)?.unwrap_or(defaults.candidates),
            restarts: count(raw, "restarts", MAX_RESTARTS)?.unwrap_or(defaults.restarts),
            xi: xi(raw)?.unwrap_or(defaults.xi),
        })
    }
}

/// Every problem with the settings, so a validator can show them all at once.
pub fn check(raw: &BTreeMap<String, Value>) -> Vec<SettingsError> {
    let mut problems: Vec<SettingsError> =
        raw.keys().filter(|k| !SETTINGS.contains(&k.as_str())).map(|k| SettingsError::Unknown(k.clone())).collect();
    let counts = [("initialPoints", MAX_INITIAL_POINTS), ("candidates", MAX_CANDIDATES), ("restarts", MAX_RESTARTS)];
    problems.extend(counts.into_iter().filter_map(|(key, max)| count(raw, key, max).err()));
    problems.extend(xi(raw).err());
    problems
}

fn count(raw: &BTreeMap<String, Value>, key: &'static str, max: u64) -> Result<Option<usize>, SettingsError> {
    let Some(value) = raw.get(key) else { return Ok(None) };
    // Whole numbers written as floats (`10.0`, as YAML may give them) are accepted.
    let n = value.as_u64().or_else(|| value.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0).map(|f| f as u64));
    match n {
        Some(0) | None => Err(SettingsError::NotPositiveInteger { key }),
        Some(n) if n > max => Err(SettingsError::TooLarge { key, max }),
        Some(n) => Ok(Some(n as usize)),
    }
}

fn xi(raw: &BTreeMap<String, Value>) -> Result<Option<f64>, SettingsError> {
    match raw.get("xi") {
        None => Ok(None),
        Some(v) => v.as_f64().filter(|x| x.is_finite() && *x >= 0.0).map(Some).ok_or(SettingsError::InvalidXi),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn missing_settings_take_their_defaults() {
        assert_eq!(Settings::parse(&BTreeMap::new()).unwrap(), Settings::default());
        let s = Settings::parse(&settings(&[("initialPoints", json!(5)), ("xi", json!(0.01))])).unwrap();
        assert_eq!((s.initial_points, s.xi), (5, 0.01));
    }

    #[test]
    fn bad_settings_are_reported_by_field_with_a_sentence() {
        let raw = settings(&[
            ("initialPoints", json!(0)),
            ("candidates", json!("many")),
            ("restarts", json!(1000)),
            ("xi", json!(-1)),
            ("beta", json!(2)),
        ]);
        let messages: Vec<String> = check(&raw).iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                "spec.algorithm.settings.beta is not a setting of bayesian (known settings: initialPoints, candidates, restarts, xi)",
                "spec.algorithm.settings.initialPoints must be a positive integer",
                "spec.algorithm.settings.candidates must be a positive integer",
                "spec.algorithm.settings.restarts must be at most 100",
                "spec.algorithm.settings.xi must be a finite number, 0 or more",
            ]
        );
        let first = Settings::parse(&raw).unwrap_err();
        assert_eq!(first.field(), "spec.algorithm.settings.beta");
        assert!(first.message().starts_with("is not a setting of bayesian"));
    }
}
