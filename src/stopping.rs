//! Early-stopping rules: whether a running trial's latest report of the objective stops it, as a
//! pure function of every trial's reports (deterministic: the same reports, the same decision).
//!
//! ```text
//! every trial's (step, value) reports ──Rule::judge(trial)──▶ None (go on) | Decision{step, reason}
//! ```
//! Only reports that carry a step (`step`/`epoch` on a line, `step` in a push or a report) take
//! part; each trial's latest attempt counts. The experiment core consults the rule on each report
//! and stops the trial; the decision is then the trial's, stored with it.
//!
//! **median** (Google Vizier's median stopping rule, the one Katib's medianstop describes): a trial
//! that reported at step `s ≥ startStep` is stopped when its best value over its reports up to `s`
//! is strictly worse than the median of the running averages up to `s` (the mean of each one's
//! reports with step ≤ `s`) of the *completed* (succeeded) trials that reported by `s`, once at
//! least `minTrialsRequired` of them did. As in Optuna's MedianPruner, early-stopped and failed
//! trials are not in the median, and it is evaluated at every step from the warm-up on (Katib
//! computes one median from each completed trial's first `startStep` values instead).
//!
//! **asha** (Li et al. 2020, asynchronous successive halving, used as a stopping rule as Ray Tune
//! does): rungs at `minResource·eta^k` steps, below `maxResource` when given. When a trial's
//! reports first reach a rung (its first report at a step ≥ the rung), its value there (the
//! objective read with the experiment's strategy over its reports up to that one) is ranked among
//! the values of every trial that reached that rung so far, itself included (the caller hands a
//! stopped trial's reports up to its stop only, `experiment::Reports::decide`): it goes on only if
//! it is in the top `max(1, ⌊n/eta⌋)` of those `n` (ties go on), else it is stopped, e.g.
//! `asha: rung 9, not in top 1/3 of 7`. Rungs below `gracePeriod` stop nothing. The first trials to
//! reach a rung are promoted while the rung is thin: that is the asynchronous rule (no trial waits
//! for a rung to fill).

use crate::spec::{Goal, Objective, StoppingSettings, Strategy};

/// One report of the objective at a step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub step: i64,
    pub value: f64,
}

/// One trial's reports of the objective (its latest attempt), in the order they came.
#[derive(Clone, Copy, Debug)]
pub struct Curve<'a> {
    pub trial: u32,
    /// Whether the trial succeeded (only those make the median).
    pub completed: bool,
    pub points: &'a [Point],
}

/// A stop: the step of the report that decided it and the rule's reason (stored with the trial).
pub use crate::trial::EarlyStop as Decision;

/// A rule with its settings, for an objective.
#[derive(Clone, Debug)]
pub struct Rule {
    settings: StoppingSettings,
    goal: Goal,
    strategy: Strategy,
}

impl Rule {
    pub fn new(settings: StoppingSettings, objective: &Objective) -> Self {
        Self { settings, goal: objective.goal, strategy: objective.strategy() }
    }

    /// Whether `trial`'s latest report stops it; `all` is every trial's curve (the trial's own
    /// among them or not: it is recognised by its index).
    pub fn judge(&self, trial: &Curve<'_>, all: &[Curve<'_>]) -> Option<Decision> {
        let (last, earlier) = trial.points.split_last()?;
        let others = all.iter().filter(|c| c.trial != trial.trial);
        match self.settings {
            StoppingSettings::Median { min_trials_required, start_step } => {
                self.median(trial.points, last.step, others, min_trials_required as usize, start_step)
            }
            StoppingSettings::Asha { min_resource, reduction_factor, max_resource, grace_period, brackets } => {
                let brackets = brackets.max(1);
                let bracket = trial.trial % brackets;
                let first = min_resource.saturating_mul(i64::from(reduction_factor).saturating_pow(bracket));
                let before = earlier.iter().map(|p| p.step).max().unwrap_or(i64::MIN);
                let rungs = rungs(first, reduction_factor, max_resource, last.step);
                let peers = others.filter(|c| c.trial % brackets == bracket);
                let named = if brackets > 1 { format!("bracket {bracket}, ") } else { String::new() };
                rungs.into_iter().filter(|r| *r > before && *r <= last.step && *r >= grace_period).find_map(|rung| {
                    let mine = self.rung_value(trial.points, rung)?;
                    let reached: Vec<f64> = peers.clone().filter_map(|c| self.rung_value(c.points, rung)).collect();
                    let n = reached.len() + 1;
                    let keep = (n / reduction_factor as usize).max(1);
                    let rank = 1 + reached.iter().filter(|v| self.better(**v, mine)).count();
                    (rank > keep).then(|| Decision {
                        step: last.step,
                        reason: format!("asha: {named}rung {rung}, not in top 1/{reduction_factor} of {n}"),
                    })
                })
            }
        }
    }

    fn median<'a>(
        &self,
        points: &[Point],
        step: i64,
        others: impl Iterator<Item = &'a Curve<'a>>,
        min_trials: usize,
        start_step: i64,
    ) -> Option<Decision> {
        if step < start_step {
            return None;
        }
        let best = points.iter().filter(|p| p.step <= step).map(|p| p.value).reduce(|a, b| self.best_of(a, b))?;
        let mut averages: Vec<f64> =
            others.filter(|c| c.completed).filter_map(|c| running_average(c.points, step)).collect();
        if averages.len() < min_trials.max(1) {
            return None;
        }
        let median = median(&mut averages);
        self.better(median, best).then(|| Decision {
            step,
            reason: format!(
                "median: best {} by step {step} is worse than the median {} of {} completed trials' running averages",
                shown(best),
                shown(median),
                averages.len()
            ),
        })
    }

    /// A curve's value at `rung`: the objective read with the strategy over its reports up to its
    /// first one at or past the rung; `None` when it has not reached the rung.
    fn rung_value(&self, points: &[Point], rung: i64) -> Option<f64> {
        let at = points.iter().position(|p| p.step >= rung)?;
        let upto = points[..=at].iter().map(|p| p.value);
        match self.strategy {
            Strategy::Latest => Some(points[at].value),
            Strategy::Max => upto.reduce(f64::max),
            Strategy::Min => upto.reduce(f64::min),
        }
    }

    /// Whether `a` is strictly better than `b`.
    fn better(&self, a: f64, b: f64) -> bool {
        match self.goal {
            Goal::Maximize => a > b,
            Goal::Minimize => a < b,
        }
    }

    fn best_of(&self, a: f64, b: f64) -> f64 {
        if self.better(b, a) { b } else { a }
    }
}

/// A value in a reason people read: 6 significant digits (`0.633333`, `1.5e-9`), as the
/// leaderboard shows numbers (`leaderboard::number`, a module of this row, which this one may not
/// name).
fn shown(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return v.to_string();
    }
    let trim =
        |s: &str| if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s.into() };
    let magnitude = v.abs().log10().floor() as i32;
    if (-4..15).contains(&magnitude) {
        return trim(&format!("{v:.*}", (5 - magnitude).max(0) as usize));
    }
    let text = format!("{v:.5e}");
    match text.split_once('e') {
        Some((mantissa, exponent)) => format!("{}e{exponent}", trim(mantissa)),
        None => text,
    }
}

/// The rungs up to `upto`: `min·eta^k`, below `max` when given.
pub fn rungs(min: i64, eta: u32, max: Option<i64>, upto: i64) -> Vec<i64> {
    let mut out = Vec::new();
    let mut rung = min.max(1);
    while rung <= upto && max.is_none_or(|m| rung < m) {
        out.push(rung);
        rung = rung.saturating_mul(i64::from(eta.max(2)));
    }
    out
}

/// The mean of the values reported at steps up to `step`; `None` when there is none.
fn running_average(points: &[Point], step: i64) -> Option<f64> {
    let upto: Vec<f64> = points.iter().filter(|p| p.step <= step).map(|p| p.value).collect();
    (!upto.is_empty()).then(|| upto.iter().sum::<f64>() / upto.len() as f64)
}

/// The median (the mean of the two middle values for an even count), as Python's `statistics.median`.
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 }
}

#[cfg(test)]
#[path = "stopping_tests.rs"]
mod tests;
