//! Plot-ready data about one experiment, computed from its spec, trials and observations: the
//! same numbers for the dashboard (through `/api/v1/experiments/{name}/plots/*`) and `tuna plot`.
//!
//! ```text
//! spec + trials ──▶ history      (objective per trial, best so far)
//!               ──▶ parameters   (one axis per parameter, each trial's coordinates)
//!               ──▶ importance   (variance of the objective explained by each parameter)
//! observations  ──▶ intermediate (each trial's objective metric by step)
//! ```
//! Pure: no I/O, no clock. Phases are passed through as the trials carry them, so a phase added
//! later is shown as itself.

mod importance;

use serde::{Deserialize, Serialize};

pub use importance::{IMPORTANCE_METHOD, Importance, ParameterImportance, importance};

use crate::space::ParamValue;
use crate::spec::{Experiment, Goal, ParameterSpec, ParameterType, Scalar, Scale};
use crate::trial::{Observation, Trial, TrialPhase};

/// `GET …/plots/history`: every trial's objective in trial order, and the best so far.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct History {
    pub metric: String,
    pub goal: Goal,
    pub points: Vec<HistoryPoint>,
}

/// One trial of the optimization history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HistoryPoint {
    pub trial: String,
    pub index: u32,
    pub phase: TrialPhase,
    /// `null` when the trial has no objective (failed, running, pending).
    pub objective: Option<f64>,
    /// The best objective of the succeeded trials up to this one; `null` before the first.
    pub best: Option<f64>,
}

/// The optimization history of `trials` (any order; answered in trial order).
pub fn history(experiment: &Experiment, trials: &[Trial]) -> History {
    history_of(experiment, trials.iter().map(history_point).collect())
}

/// One trial as a point of the history, its `best` not yet known: the projection a reader keeps
/// of each trial as it reads them one at a time (then [`history_of`]).
pub fn history_point(t: &Trial) -> HistoryPoint {
    HistoryPoint { trial: t.name.clone(), index: t.index, phase: t.phase, objective: t.objective, best: None }
}

/// The optimization history from every trial's [`history_point`] (any order; answered in trial
/// order, each with the best so far).
pub fn history_of(experiment: &Experiment, mut points: Vec<HistoryPoint>) -> History {
    let objective = &experiment.spec.objective;
    points.sort_by_key(|p| p.index);
    let mut best: Option<f64> = None;
    for p in &mut points {
        let counted = p.objective.filter(|v| v.is_finite() && p.phase == TrialPhase::Succeeded);
        if let Some(v) = counted {
            best = Some(match (best, objective.goal) {
                (Some(b), Goal::Maximize) => b.max(v),
                (Some(b), Goal::Minimize) => b.min(v),
                (None, _) => v,
            });
        }
        p.best = best;
    }
    History { metric: objective.metric.clone(), goal: objective.goal, points }
}

/// `GET …/plots/parameters`: the axes of the search space and every trial's place on them (for
/// parallel coordinates, slice and contour plots).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Parameters {
    pub metric: String,
    pub goal: Goal,
    pub axes: Vec<Axis>,
    /// With `?since=`: only the trials changed after that revision (the reader merges them by
    /// `index` into what it has), unless `full`.
    pub trials: Vec<Coordinates>,
    /// The revision these trials are as of (also the answer's `ETag`, unquoted): the next `since`.
    /// Empty where no store stands behind the data.
    #[serde(default)]
    pub revision: String,
    /// `true`: `trials` holds every trial (no `since`, or one this server cannot answer from);
    /// `false`: only those changed.
    #[serde(default = "every")]
    pub full: bool,
}

/// One parameter as an axis. Numeric axes run from `min` to `max` (on a log scale when `log`);
/// a categorical axis has one position per label, `0..labels.len()`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Axis {
    pub name: String,
    pub kind: ParameterType,
    pub log: bool,
    pub min: f64,
    pub max: f64,
    /// The categories in the spec's order (categorical only; empty otherwise).
    pub labels: Vec<String>,
}

/// One trial's coordinates: `values[i]` on `axes[i]` (a categorical's label index), `null` when
/// the trial has no value for it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Coordinates {
    pub trial: String,
    pub index: u32,
    pub phase: TrialPhase,
    pub objective: Option<f64>,
    pub values: Vec<Option<f64>>,
}

fn scalar_text(s: &Scalar) -> String {
    match s {
        Scalar::Number(n) => n.to_string(),
        Scalar::Text(t) => t.clone(),
    }
}

fn axis(p: &ParameterSpec) -> Axis {
    let numbers: Vec<f64> =
        p.values.iter().filter_map(|v| if let Scalar::Number(n) = v { Some(*n) } else { None }).collect();
    let (labels, min, max) = match p.kind {
        ParameterType::Categorical => {
            let labels: Vec<String> = p.values.iter().map(scalar_text).collect();
            let top = labels.len().saturating_sub(1) as f64;
            (labels, 0.0, top)
        }
        ParameterType::Discrete => {
            let lo = numbers.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = numbers.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            (Vec::new(), lo, hi)
        }
        ParameterType::Double | ParameterType::Int => {
            (Vec::new(), p.min.unwrap_or_default(), p.max.unwrap_or_default())
        }
    };
    Axis { name: p.name.clone(), kind: p.kind, log: p.scale == Scale::Log, min, max, labels }
}

impl Axis {
    /// Where `value` lies on this axis: the number itself, or a categorical's label index.
    pub fn position(&self, value: &ParamValue) -> Option<f64> {
        if self.kind == ParameterType::Categorical {
            let text = value.to_string();
            let found = self.labels.iter().position(|l| *l == text).or_else(|| {
                let number = match value {
                    ParamValue::Int(i) => Some(*i as f64),
                    ParamValue::Float(f) => Some(*f),
                    ParamValue::Text(_) => None,
                }?;
                self.labels.iter().position(|l| l.parse::<f64>().ok() == Some(number))
            });
            return found.map(|i| i as f64);
        }
        match value {
            ParamValue::Int(i) => Some(*i as f64),
            ParamValue::Float(f) => Some(*f),
            ParamValue::Text(t) => t.parse().ok(),
        }
    }

    /// `position` mapped onto `[0, 1]` (log axes in log space), clamped.
    pub fn unit(&self, position: f64) -> f64 {
        let (lo, hi, x) = if self.log && self.min > 0.0 && position > 0.0 {
            (self.min.ln(), self.max.ln(), position.ln())
        } else {
            (self.min, self.max, position)
        };
        if hi > lo { ((x - lo) / (hi - lo)).clamp(0.0, 1.0) } else { 0.5 }
    }
}

/// The axes of `experiment`'s space and the coordinates of `trials` (in trial order).
pub fn parameters(experiment: &Experiment, trials: &[Trial]) -> Parameters {
    let axes = axes(experiment);
    let coordinates = trials.iter().map(|t| coordinates(&axes, t)).collect();
    parameters_of(experiment, axes, coordinates)
}

/// The axes of `experiment`'s space, one per parameter in the spec's order.
pub fn axes(experiment: &Experiment) -> Vec<Axis> {
    experiment.spec.parameters.iter().map(axis).collect()
}

/// One trial's place on `axes`: the projection a reader keeps of each trial as it reads them one
/// at a time (then [`parameters_of`]).
pub fn coordinates(axes: &[Axis], t: &Trial) -> Coordinates {
    Coordinates {
        trial: t.name.clone(),
        index: t.index,
        phase: t.phase,
        objective: t.objective,
        values: axes.iter().map(|a| t.parameters.get(&a.name).and_then(|v| a.position(v))).collect(),
    }
}

/// The parameters plot from `axes` (of [`axes`]) and every trial's [`coordinates`] (any order;
/// answered in trial order).
pub fn parameters_of(experiment: &Experiment, axes: Vec<Axis>, mut trials: Vec<Coordinates>) -> Parameters {
    trials.sort_by_key(|c| c.index);
    let objective = &experiment.spec.objective;
    Parameters {
        metric: objective.metric.clone(),
        goal: objective.goal,
        axes,
        trials,
        revision: String::new(),
        full: true,
    }
}

/// `GET …/plots/intermediate`: each trial's learning curve (its objective metric by step).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Intermediate {
    pub metric: String,
    /// With `?since=`: only the curves of trials changed after that revision (the reader merges
    /// them by `index` into what it has), unless `full`.
    pub curves: Vec<Curve>,
    /// The revision these curves are as of (also the answer's `ETag`, unquoted): the next `since`.
    /// Empty where no store stands behind the data.
    #[serde(default)]
    pub revision: String,
    /// `true`: `curves` holds every trial's curve (no `since` was given, or it was not one this
    /// server can answer from: of another process, or too old); `false`: only those changed.
    #[serde(default = "every")]
    pub full: bool,
}

fn every() -> bool {
    true
}

/// One trial's reports of the objective metric, in the order reported.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Curve {
    pub trial: String,
    pub index: u32,
    pub phase: TrialPhase,
    /// `[step, value]`; a report without a step counts as the next one after the previous.
    pub points: Vec<[f64; 2]>,
}

/// The curve of `trial` from its observations of `metric` (the latest attempt's only: an earlier
/// attempt's values were superseded when the trial was re-run).
pub fn curve(trial: &Trial, metric: &str, observations: &[Observation]) -> Curve {
    let last_attempt = observations.iter().map(|o| o.attempt).max().unwrap_or(0);
    let mut previous: Option<f64> = None;
    let points = observations
        .iter()
        .filter(|o| o.metric == metric && o.attempt == last_attempt && o.value.is_finite())
        .map(|o| {
            let step = o.step.map_or_else(|| previous.map_or(1.0, |p| p + 1.0), |s| s as f64);
            previous = Some(step);
            [step, o.value]
        })
        .collect();
    Curve { trial: trial.name.clone(), index: trial.index, phase: trial.phase, points }
}

#[cfg(test)]
mod tests;
