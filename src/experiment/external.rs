//! Experiments whose trials a client runs (`executor: external`): an ask creates trials, a tell
//! judges one, and a periodic review fails the trials past their deadline and ends the experiment
//! by the same rules as a loop that runs its own trials.

use std::collections::BTreeMap;

use jiff::Timestamp;

use super::plan::{Counts, Halt, Limits, Step, next_step};
use super::status::{beats, best_trial, slot};
use super::verdict::expired;
use crate::space::Assignment;
use crate::spec::{EndReason, ExperimentSpec, ExperimentStatus, TrialCounts};
use crate::trial::{Trial, TrialPhase};

/// The trials an ask hands out, numbered from `first`: running from the moment they are handed
/// out, in their first attempt.
pub fn asked(name: &str, first: usize, assignments: Vec<Assignment>, now: Timestamp) -> Vec<Trial> {
    assignments
        .into_iter()
        .enumerate()
        .map(|(i, parameters)| {
            let mut trial = Trial::new(name, (first + i) as u32, parameters, now);
            trial.move_to(TrialPhase::Running);
            trial.attempts = 1;
            trial.started_at = Some(now);
            trial
        })
        .collect()
}

/// An external experiment's trials as its review keeps them in memory: the open ones whole (their
/// deadlines are judged), and of the closed ones only their phase and the best of them. Memory is
/// one byte per closed trial, not a copy of each, however long the experiment runs.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Every trial's phase, by index (trials are numbered densely from 0; `None` until seen).
    phases: Vec<Option<TrialPhase>>,
    /// The trials not finished, whole.
    open: BTreeMap<u32, Trial>,
    /// The best succeeded trial seen (ties to the earlier).
    best: Option<Trial>,
    goal_reached: bool,
    /// A succeeded trial was written again: the best and the goal must be found from every trial
    /// again (never for an ask/tell trial, whose tell is final; a safeguard, not a path).
    stale: bool,
}

impl Ledger {
    pub fn new(spec: &ExperimentSpec, trials: Vec<Trial>) -> Self {
        let mut ledger = Self::default();
        for trial in trials {
            ledger.put(spec, trial);
        }
        ledger
    }

    /// Takes in a trial as it now is (read again after a write).
    pub fn put(&mut self, spec: &ExperimentSpec, trial: Trial) {
        let at = trial.index as usize;
        if self.phases.len() <= at {
            self.phases.resize(at + 1, None);
        }
        self.stale |= self.phases[at] == Some(TrialPhase::Succeeded);
        self.phases[at] = Some(trial.phase);
        self.goal_reached |=
            trial.phase == TrialPhase::Succeeded && trial.objective.is_some_and(|v| spec.objective.reaches_target(v));
        if beats(spec, &trial, self.best.as_ref()) {
            self.best = Some(trial.clone());
        }
        if trial.phase.is_finished() {
            self.open.remove(&trial.index);
        } else {
            self.open.insert(trial.index, trial);
        }
    }

    /// Whether the ledger must be made again from every trial (see `stale`).
    pub fn stale(&self) -> bool {
        self.stale
    }

    /// The open trials, by index.
    pub fn open(&self) -> impl Iterator<Item = &Trial> {
        self.open.values()
    }

    /// What the plan needs: open trials count as running.
    fn counts(&self, exhausted: bool) -> Counts {
        let mut c = Counts { exhausted, goal_reached: self.goal_reached, ..Default::default() };
        for phase in self.phases.iter().flatten() {
            c.created += 1;
            match phase {
                p if !p.is_finished() => c.running += 1,
                TrialPhase::Succeeded => c.succeeded += 1,
                TrialPhase::Failed => c.failed += 1,
                TrialPhase::EarlyStopped => c.early_stopped += 1,
                _ => {}
            }
        }
        c
    }

    /// Brings `status`'s counts and best trial up to date (open trials count as running).
    pub fn refresh(&self, status: &mut ExperimentStatus) {
        let mut counts = TrialCounts::default();
        for &phase in self.phases.iter().flatten() {
            *slot(&mut counts, phase, !phase.is_finished()) += 1;
        }
        status.trials = counts;
        status.best_trial = self.best.as_ref().map(best_trial);
    }
}

/// What one review of an external experiment decided.
#[derive(Debug, Default, PartialEq)]
pub struct Review {
    /// The trials that failed for want of a result in time, concluded (and taken into the ledger),
    /// to be saved.
    pub expired: Vec<Trial>,
    /// The end, when it has come.
    pub end: Option<EndReason>,
}

/// Fails the open trials past `spec.trial.timeout` and decides whether the experiment ends.
/// Open trials count as running; an ask/tell experiment never launches anything itself.
pub fn review(spec: &ExperimentSpec, ledger: &mut Ledger, exhausted: bool, halt: Halt, now: Timestamp) -> Review {
    let mut review = Review::default();
    for trial in ledger.open() {
        if let Some(verdict) = expired(spec, trial, now) {
            let mut concluded = trial.clone();
            verdict.conclude(&mut concluded, now);
            review.expired.push(concluded);
        }
    }
    for trial in &review.expired {
        ledger.put(spec, trial.clone());
    }
    let exhausted_reason = crate::search::exhausted_reason(&spec.algorithm.name);
    review.end = match halt {
        Halt::Interrupt => None,
        Halt::Run | Halt::Stop => {
            match next_step(ledger.counts(exhausted), Limits::of(spec), halt, &exhausted_reason) {
                Step::Finish { reason, .. } => Some(reason),
                Step::Launch(_) | Step::Wait => None,
            }
        }
    };
    review
}
