//! From the history to what the model trains on.
//!
//! ```text
//! history ─▶ finished values (x, y)  ┐
//!            failed (x, worst y seen)├─▶ standardize (and warp) ─▶ nearest ≤ MODEL_LIMIT
//!            pending x  ─────────────┼──────────────── fantasies ──────┐   to the incumbent
//!            foreign values: skipped ┘                                  ▼
//! ```
//! A failed trial enters as the worst value observed so far: the model then sees a bad region
//! there, rather than an unexplored one whose uncertainty would draw the search back to it.

use super::FIT_LIMIT;
use super::kernel::axis_sq_dist;
use super::transform::{Targets, plain, warped};
use crate::search::{Outcome, Past};
use crate::space::Space;

/// The exact GP holds at most this many points (O(n³) fit, O(n²) per acquisition value). Past
/// it, the model is local: the points nearest the incumbent, and the search stays in their box.
pub const MODEL_LIMIT: usize = 150;

/// The usable part of the history, on the unit cube.
#[derive(Clone, Debug, Default)]
pub struct Observations {
    /// Finished points in history order, with their value (`None` when the trial failed).
    pub finished: Vec<(Vec<f64>, Option<f64>)>,
    pub pending: Vec<Vec<f64>>,
    /// Every point of the history, to avoid suggesting one again.
    pub seen: Vec<Vec<f64>>,
}

impl Observations {
    pub fn new(space: &Space, history: &[Past]) -> Self {
        let mut obs = Self::default();
        for past in history {
            // A value outside the space (a removed category, say) cannot be placed: skip it.
            let Some(x) = space.to_unit(&past.parameters) else { continue };
            obs.seen.push(x.clone());
            match past.outcome {
                Outcome::Pending => obs.pending.push(x),
                Outcome::Failed => obs.finished.push((x, None)),
                Outcome::Loss(v) => obs.finished.push((x, Some(v).filter(|v| v.is_finite()))),
            }
        }
        obs
    }

    /// How many finished trials have a value.
    pub fn valued(&self) -> usize {
        self.finished.iter().filter(|(_, v)| v.is_some()).count()
    }
}

/// The model's training set.
#[derive(Clone, Debug, PartialEq)]
pub struct Training {
    /// Inputs, row-major: in history order while they all fit in the fit's head, so the model's
    /// rows can be known before its latest value (`Bayesian::anticipate`); else the nearest the
    /// incumbent first.
    pub x: Vec<f64>,
    /// The values standardized, and also power-transformed (lower is better in both).
    pub plain: Targets,
    pub warped: Targets,
    /// The row of the best value.
    pub best: usize,
    /// The box the search stays in: the whole cube, or the local model's extent.
    pub lower: Vec<f64>,
    pub upper: Vec<f64>,
}

impl Training {
    /// Whether a training set of `rows` points (at most `limit` kept) keeps them in history order.
    pub fn in_history_order(rows: usize, limit: usize) -> bool {
        rows <= limit.min(FIT_LIMIT)
    }

    /// The training set from finished points (`None` without two valued points). Failed points
    /// take the worst value seen; past `limit` points, the nearest to the incumbent are kept.
    pub fn new(finished: &[(Vec<f64>, Option<f64>)], dims: usize, categorical: &[bool], limit: usize) -> Option<Self> {
        let worst = finished.iter().filter_map(|(_, v)| *v).fold(f64::NEG_INFINITY, f64::max);
        if finished.iter().filter(|(_, v)| v.is_some()).count() < 2 {
            return None;
        }
        let raw: Vec<f64> = finished.iter().map(|(_, v)| v.unwrap_or(worst)).collect();
        let (plain_all, warped_all) = (plain(&raw), warped(&raw));
        let best = (0..raw.len()).min_by(|&a, &b| raw[a].total_cmp(&raw[b]).then(a.cmp(&b)))?;
        // Past the fit's head, rows nearest the incumbent first, so any prefix is the most local
        // subset of that size.
        let mut rows: Vec<usize> = (0..raw.len()).collect();
        if !Self::in_history_order(rows.len(), limit) {
            let dist = |i: usize| -> f64 {
                (0..dims).map(|a| axis_sq_dist(finished[i].0[a], finished[best].0[a], categorical[a])).sum()
            };
            let d: Vec<f64> = (0..raw.len()).map(dist).collect();
            rows.sort_by(|&a, &b| d[a].total_cmp(&d[b]).then(a.cmp(&b)));
            rows.truncate(limit);
        }
        let (mut lower, mut upper) = (vec![0.0; dims], vec![1.0; dims]);
        if rows.len() < raw.len() {
            for a in (0..dims).filter(|&a| !categorical[a]) {
                lower[a] = rows.iter().map(|&i| finished[i].0[a]).fold(f64::INFINITY, f64::min);
                upper[a] = rows.iter().map(|&i| finished[i].0[a]).fold(f64::NEG_INFINITY, f64::max);
            }
        }
        let x = rows.iter().flat_map(|&i| finished[i].0.iter().copied()).collect();
        let pick = |t: &Targets| Targets {
            y: rows.iter().map(|&i| t.y[i]).collect(),
            log_slope: rows.iter().map(|&i| t.log_slope[i]).collect(),
        };
        let (plain, warped) = (pick(&plain_all), pick(&warped_all));
        let best = rows.iter().position(|&i| i == best)?;
        Some(Self { x, plain, warped, best, lower, upper })
    }

    pub fn len(&self) -> usize {
        self.plain.y.len()
    }

    /// The values in one presentation.
    pub fn targets(&self, warp: bool) -> &Targets {
        if warp { &self.warped } else { &self.plain }
    }

    /// The inputs and values of the `n` rows nearest the incumbent (every row, when there are no
    /// more than `n`), and those values' log slopes.
    pub fn head(&self, n: usize, dims: usize, warp: bool) -> (&[f64], &[f64], &[f64]) {
        let n = n.min(self.len());
        let t = self.targets(warp);
        (&self.x[..n * dims], &t.y[..n], &t.log_slope[..n])
    }
}
