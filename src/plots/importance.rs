//! Parameter importance: how much of the objective's variance each parameter explains alone.
//!
//! ```text
//! succeeded trials ──▶ per parameter: bins of its axis ──▶ mean objective per bin
//!     importance(p) = Σ_bins n_b (mean_b − mean)² / Σ_trials (y − mean)²      (η², in [0, 1])
//! ```
//! This is the first-order term of a functional ANOVA (fANOVA) decomposition estimated from the
//! trials' own binned marginals rather than from a fitted random forest: cheap (one pass per
//! parameter), model-free and the same for every algorithm. Interactions are not attributed to
//! either parameter, so the shares need not sum to 1 before normalizing. Numeric axes (discrete
//! ones too) get `clamp(⌊√n⌋, 2, 10)` equal-width bins (in log space on log axes); a categorical
//! parameter gets one bin per category. With few trials η² is biased upwards (more bins than support),
//! which is why the bin count grows only with √n.

use serde::{Deserialize, Serialize};

use super::{Axis, Parameters};
use crate::spec::ParameterType;
use crate::trial::TrialPhase;

/// The method's name as answered and shown.
pub const IMPORTANCE_METHOD: &str =
    "first-order fANOVA on binned marginals: the share of the objective's variance explained by each parameter alone";

/// `GET …/plots/importance`: each parameter's importance, most important first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Importance {
    pub method: String,
    /// How many succeeded trials the estimate rests on.
    pub trials: usize,
    pub parameters: Vec<ParameterImportance>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ParameterImportance {
    pub name: String,
    /// The share of the variance this parameter explains alone (η², from 0 to 1).
    pub explained: f64,
    /// `explained` normalized over the parameters (they sum to 1 when any explains something).
    pub importance: f64,
}

/// The fewest and most bins of a numeric axis.
const MIN_BINS: usize = 2;
const MAX_BINS: usize = 10;

/// Which bin `position` falls in on `axis`.
fn bin(axis: &Axis, position: f64, bins: usize) -> usize {
    match axis.kind {
        ParameterType::Categorical => position.round().max(0.0) as usize,
        _ => ((axis.unit(position) * bins as f64) as usize).min(bins - 1),
    }
}

/// The importance of every parameter over the succeeded trials of `data`.
pub fn importance(data: &Parameters) -> Importance {
    let rows: Vec<(&[Option<f64>], f64)> = data
        .trials
        .iter()
        .filter(|t| t.phase == TrialPhase::Succeeded)
        .filter_map(|t| t.objective.filter(|v| v.is_finite()).map(|y| (t.values.as_slice(), y)))
        .collect();
    let n = rows.len();
    let mean = rows.iter().map(|(_, y)| y).sum::<f64>() / n.max(1) as f64;
    let total: f64 = rows.iter().map(|(_, y)| (y - mean).powi(2)).sum();
    let bins = ((n as f64).sqrt() as usize).clamp(MIN_BINS, MAX_BINS);
    let mut parameters: Vec<ParameterImportance> = data
        .axes
        .iter()
        .enumerate()
        .map(|(i, axis)| {
            let explained = if total > 0.0 { between_bins(axis, i, &rows, mean, bins) / total } else { 0.0 };
            ParameterImportance { name: axis.name.clone(), explained, importance: 0.0 }
        })
        .collect();
    let sum: f64 = parameters.iter().map(|p| p.explained).sum();
    for p in &mut parameters {
        p.importance = if sum > 0.0 { p.explained / sum } else { 0.0 };
    }
    parameters.sort_by(|a, b| b.importance.total_cmp(&a.importance).then_with(|| a.name.cmp(&b.name)));
    Importance { method: IMPORTANCE_METHOD.to_string(), trials: n, parameters }
}

/// `Σ_bins n_b (mean_b − mean)²` of axis `i`: the variance between its bins' means. A trial
/// without a value for the parameter falls in a bin of its own.
fn between_bins(axis: &Axis, i: usize, rows: &[(&[Option<f64>], f64)], mean: f64, bins: usize) -> f64 {
    let mut groups: std::collections::BTreeMap<Option<usize>, (f64, usize)> = Default::default();
    for (values, y) in rows {
        let key = values.get(i).copied().flatten().map(|v| bin(axis, v, bins));
        let group = groups.entry(key).or_default();
        group.0 += y;
        group.1 += 1;
    }
    groups.values().map(|(sum, count)| *count as f64 * (sum / *count as f64 - mean).powi(2)).sum()
}
