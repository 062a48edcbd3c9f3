//! Early stopping in the core: each trial's reports of the objective at a step (its latest
//! attempt's), and the rule's decision on a trial's latest report. One function for every path:
//! the experiment loop (output lines), the push route and the ask/tell report route.
//!
//! ```text
//! observations (objective, with a step) ──Reports::add──▶ curves ──Reports::decide(trial)──▶ EarlyStop?
//! ```

use std::collections::BTreeMap;

use crate::spec::ExperimentSpec;
use crate::stopping::{Curve, Point, Rule};
use crate::trial::{EarlyStop, Observation, Trial, TrialPhase};

/// Every trial's step reports of the objective, from its latest attempt.
#[derive(Clone, Debug, Default)]
pub struct Reports {
    /// By trial: the attempt the points are from, and the points in the order they came.
    by_trial: BTreeMap<u32, (u32, Vec<Point>)>,
}

impl Reports {
    /// Every trial's stored observations (of its last attempt: `trial.attempts`).
    pub fn of(spec: &ExperimentSpec, trials: &[Trial], mut observations: impl FnMut(u32) -> Vec<Observation>) -> Self {
        let mut reports = Reports::default();
        if spec.stopping().is_none() {
            return reports;
        }
        for t in trials {
            let attempt = t.attempts;
            let kept: Vec<Observation> = observations(t.index).into_iter().filter(|o| o.attempt == attempt).collect();
            reports.add(spec, t.index, &kept);
        }
        reports
    }

    /// Takes in a trial's new observations; returns whether one was a step report of the
    /// objective. A later attempt's reports replace an earlier one's.
    pub fn add(&mut self, spec: &ExperimentSpec, trial: u32, observations: &[Observation]) -> bool {
        let mut added = false;
        for o in observations.iter().filter(|o| o.metric == spec.objective.metric) {
            let Some(step) = o.step else { continue };
            let (attempt, points) = self.by_trial.entry(trial).or_insert((o.attempt, Vec::new()));
            if o.attempt > *attempt {
                (*attempt, *points) = (o.attempt, Vec::new());
            } else if o.attempt < *attempt {
                continue;
            }
            points.push(Point { step, value: o.value });
            added = true;
        }
        added
    }

    /// Puts `trial`'s reports from `attempt` (every one it made: its stored observations) in
    /// place of what was kept for it.
    pub fn set(&mut self, spec: &ExperimentSpec, trial: u32, attempt: u32, observations: &[Observation]) {
        self.by_trial.remove(&trial);
        let kept: Vec<Observation> = observations.iter().filter(|o| o.attempt == attempt).cloned().collect();
        self.add(spec, trial, &kept);
    }

    /// Forgets the reports of each trial that has started a later attempt since (a retry that has
    /// not reported yet has no reports: a full read would find none of that attempt).
    pub fn retire(&mut self, trials: &[Trial]) {
        self.by_trial.retain(|&i, (attempt, _)| trials.get(i as usize).is_none_or(|t| t.attempts <= *attempt));
    }

    /// The rule's decision on `index`'s latest report, given every trial (`None`: it goes on, or
    /// the experiment has no rule). A stopped trial's reports count up to the step it was stopped
    /// at: those it made while the stop was landing (kept, like every observation) do not make it
    /// a member of later rungs, so decisions do not depend on how fast a stop lands.
    pub fn decide(&self, spec: &ExperimentSpec, trials: &[Trial], index: u32) -> Option<EarlyStop> {
        let rule = Rule::new(spec.stopping()?, &spec.objective);
        let trial = |i: u32| trials.get(i as usize);
        let curves: Vec<Curve<'_>> = self
            .by_trial
            .iter()
            .map(|(&i, (_, points))| {
                let completed = trial(i).is_some_and(|t| t.phase == TrialPhase::Succeeded);
                let until = trial(i).and_then(|t| t.early_stop.as_ref()).map(|d| d.step);
                let kept = until.map_or(points.len(), |step| points.iter().take_while(|p| p.step <= step).count());
                Curve { trial: i, completed, points: &points[..kept] }
            })
            .collect();
        let mine = curves.iter().find(|c| c.trial == index)?;
        rule.judge(mine, &curves)
    }
}

#[cfg(test)]
#[path = "early_tests.rs"]
mod tests;
