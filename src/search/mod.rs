//! Search algorithms: given what has been tried, suggest what to try next.
//!
//! ```text
//! history (finished values, failures, still-running assignments) ──▶ Search::suggest ──▶ assignments
//! ```
//! Algorithms are synchronous and deterministic for a seed: the `k`-th suggestion of an experiment
//! depends only on the seed, `k` and the history, so a resumed experiment suggests what the
//! interrupted one would have.

pub mod bayes;
mod grid;
mod hyperband;
mod random;

use crate::space::{Assignment, Space, assignment_key};
use crate::spec::{AlgorithmName, EndReason, Experiment, ExperimentSpec, Problem, SpecError};

pub use grid::Grid;
pub use hyperband::{Bracket, Hyperband, brackets};
pub use random::Random;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown search algorithm {0:?}")]
    UnknownAlgorithm(String),
    #[error(transparent)]
    Settings(#[from] bayes::SettingsError),
    #[error("hyperband: {0}")]
    Hyperband(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What became of an earlier assignment.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Still running (or queued): its value is not known yet.
    Pending,
    /// Failed without a value.
    Failed,
    /// Finished with this objective value, oriented so that lower is better.
    Loss(f64),
}

/// One earlier assignment and its outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct Past {
    pub parameters: Assignment,
    pub outcome: Outcome,
}

/// A search algorithm.
pub trait Search: Send {
    /// Up to `count` new assignments, distinct from each other and, on finite spaces, from the
    /// history; fewer (or none) once the space is exhausted.
    fn suggest(&mut self, history: &[Past], count: usize) -> Result<Vec<Assignment>>;

    /// Work the suggestion after the next result will need, done ahead while the client evaluates
    /// (`history` as the latest suggestion saw it). It changes no suggestion, only how soon it
    /// comes; searches with nothing to precompute do nothing.
    fn anticipate(&mut self, _history: &[Past]) {}

    /// Whether a suggestion costs enough (milliseconds, not microseconds) to be worth computing
    /// ahead of the client's ask.
    fn costly(&self) -> bool {
        false
    }

    /// Whether fewer suggestions than asked mean the space is exhausted (the experiment then
    /// ends); a search that waits for results (Hyperband's rungs) says no.
    fn exhausts_when_short(&self) -> bool {
        true
    }
}

/// The experiment's end reason when the algorithm's suggestions run dry.
pub fn exhausted_reason(algorithm: &AlgorithmName) -> EndReason {
    match algorithm {
        AlgorithmName::Grid => EndReason::GridExhausted,
        AlgorithmName::Random | AlgorithmName::Bayesian | AlgorithmName::Hyperband | AlgorithmName::Unknown(_) => {
            EndReason::SearchSpaceExhausted
        }
    }
}

/// The algorithm the spec names, seeded with `seed`.
pub fn build(spec: &ExperimentSpec, seed: u64) -> Result<Box<dyn Search>> {
    let space = Space::new(&spec.parameters);
    match &spec.algorithm.name {
        AlgorithmName::Random => Ok(Box::new(Random::new(space, seed))),
        AlgorithmName::Bayesian => Ok(Box::new(bayes::Bayesian::new(space, seed, &spec.algorithm.settings)?)),
        AlgorithmName::Grid => Ok(Box::new(Grid::new(grid_space(spec, space)))),
        AlgorithmName::Hyperband => {
            let settings = &spec.algorithm.settings;
            let parameter = settings.get("resourceParameter").and_then(serde_json::Value::as_str).unwrap_or_default();
            let eta = settings.get("eta").and_then(serde_json::Value::as_u64).unwrap_or(3) as u32;
            let range = spec.parameters.iter().find(|p| p.name == parameter).and_then(|p| Some((p.min?, p.max?)));
            let Some((min, max)) = range else {
                return Err(Error::Hyperband(format!("resourceParameter {parameter:?} names no int parameter")));
            };
            Ok(Box::new(Hyperband::new(space, seed, parameter, min as i64, max as i64, eta)))
        }
        AlgorithmName::Unknown(other) => Err(Error::UnknownAlgorithm(other.clone())),
    }
}

/// The space a grid walks: unstepped doubles get `settings.levels` (or enough for the budget).
fn grid_space(spec: &ExperimentSpec, space: Space) -> Space {
    let levels = spec.algorithm.settings.get("levels").and_then(serde_json::Value::as_u64).map(|n| n as usize);
    let levels = levels.unwrap_or_else(|| grid::levels_for(&space, spec.max_trials));
    space.with_levels(levels)
}

/// How many trials an experiment runs at most: its budget, or the number of distinct points when
/// its algorithm walks a finite space smaller than that (a grid of 18 points runs 18).
pub fn trial_total(spec: &ExperimentSpec) -> u32 {
    let space = Space::new(&spec.parameters);
    let space = if spec.algorithm.name == AlgorithmName::Grid { grid_space(spec, space) } else { space };
    space.grid_size().map_or(spec.max_trials, |size| size.min(u128::from(spec.max_trials)) as u32)
}

/// Problems with the values of an algorithm's settings (unknown keys are the spec's to report).
pub fn check_settings(spec: &ExperimentSpec) -> Vec<Problem> {
    if spec.algorithm.name != AlgorithmName::Bayesian {
        return Vec::new();
    }
    bayes::check_settings(&spec.algorithm.settings)
        .into_iter()
        .filter(|e| !matches!(e, bayes::SettingsError::Unknown(_)))
        .map(|e| Problem::new(e.field(), e.message()))
        .collect()
}

/// Reads and checks an experiment document (YAML or JSON): its shape and meaning (`spec::read`)
/// and its algorithm's settings, in one report. The one way in for `tuna run`/`validate`, the API
/// and the CRs.
pub fn parse_document(text: &str) -> Result<Experiment, SpecError> {
    check_document(crate::spec::parse_value(text)?)
}

/// [`parse_document`] for a document already parsed (an API body, a custom resource).
pub fn check_document(value: serde_json::Value) -> Result<Experiment, SpecError> {
    read_document(value, |_| Vec::new())
}

/// [`check_document`] with the caller's own checks of the decoded experiment (the local
/// executor's folder and program) joined to the same report.
pub fn read_document(
    value: serde_json::Value,
    more: impl FnOnce(&Experiment) -> Vec<Problem>,
) -> Result<Experiment, SpecError> {
    let (experiment, mut problems) = crate::spec::read(value);
    if let Some(experiment) = &experiment {
        problems.extend(check_settings(&experiment.spec));
        problems.extend(more(experiment));
    }
    crate::spec::verdict(experiment, problems)
}

/// The canonical keys of every assignment in the history.
fn seen_keys(history: &[Past]) -> std::collections::HashSet<String> {
    history.iter().map(|p| assignment_key(&p.parameters)).collect()
}
