//! Experiments whose trials a client runs (`executor: external`): an ask creates trials, a tell
//! judges one, and a periodic review fails the trials past their deadline and ends the experiment
//! by the same rules as a loop that runs its own trials.

use std::collections::BTreeSet;

use jiff::Timestamp;

use super::plan::{Halt, Limits, Step, next_step};
use super::status::counts;
use super::verdict::expired;
use crate::space::Assignment;
use crate::spec::{EndReason, ExperimentSpec};
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

/// What one review of an external experiment decided.
#[derive(Debug, Default, PartialEq)]
pub struct Review {
    /// The trials (by index) that failed for want of a result in time; already concluded in the
    /// trials given to `review`, to be saved.
    pub expired: Vec<u32>,
    /// The open trials: those handed out and not told.
    pub open: BTreeSet<u32>,
    /// The end, when it has come.
    pub end: Option<EndReason>,
}

/// Fails the open trials past `spec.trial.timeout` and decides whether the experiment ends.
/// Open trials count as running; an ask/tell experiment never launches anything itself.
pub fn review(spec: &ExperimentSpec, trials: &mut [Trial], exhausted: bool, halt: Halt, now: Timestamp) -> Review {
    let mut review = Review::default();
    for trial in trials.iter_mut() {
        if let Some(verdict) = expired(spec, trial, now) {
            verdict.conclude(trial, now);
            review.expired.push(trial.index);
        }
    }
    review.open = trials.iter().filter(|t| !t.phase.is_finished()).map(|t| t.index).collect();
    let exhausted_reason = crate::search::exhausted_reason(&spec.algorithm.name);
    review.end = match halt {
        Halt::Interrupt => None,
        Halt::Run | Halt::Stop => {
            match next_step(counts(spec, trials, &review.open, exhausted), Limits::of(spec), halt, &exhausted_reason) {
                Step::Finish { reason, .. } => Some(reason),
                Step::Launch(_) | Step::Wait => None,
            }
        }
    };
    review
}
