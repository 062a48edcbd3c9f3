//! What the search sees of the trials.

use crate::search::{Outcome, Past};
use crate::spec::{ExperimentSpec, Goal};
use crate::trial::{Trial, TrialPhase};

/// Every trial as the search sees it: values oriented so that lower is better, failures as
/// failures, and everything else (queued, running, stopped, interrupted) as pending.
///
/// An early-stopped trial is seen as what it is, a value reached at a step, with the value it
/// had reached (its best so far, read with the strategy): the rule stops only trials that trail
/// the others at the same step, so that partial value is a pessimistic but honest reading of its
/// region, and the Bayesian model learns to leave the region rather than re-proposing it as if it
/// were untried (`pending`) or broken (`failed`, which the model would treat as infeasible).
pub fn history(spec: &ExperimentSpec, trials: &[Trial]) -> Vec<Past> {
    trials.iter().map(|t| past(spec, t)).collect()
}

/// One trial as the search sees it (see [`history`]).
pub fn past(spec: &ExperimentSpec, t: &Trial) -> Past {
    let sign = if spec.objective.goal == Goal::Maximize { -1.0 } else { 1.0 };
    Past {
        parameters: t.parameters.clone(),
        outcome: match (t.phase, t.objective) {
            (TrialPhase::Succeeded | TrialPhase::EarlyStopped, Some(v)) => Outcome::Loss(sign * v),
            (TrialPhase::Failed, _) => Outcome::Failed,
            _ => Outcome::Pending,
        },
    }
}
