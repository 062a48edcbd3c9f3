//! The budget and parallelism rules, as pure functions of counts: what to do next, and how many
//! trials an ask may hand out.

use crate::spec::{EndReason, ExperimentPhase, ExperimentSpec};

/// What the experiment looks like right now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Created trials waiting to start (new, or re-queued after an interruption).
    pub queued: u32,
    pub running: u32,
    pub succeeded: u32,
    pub failed: u32,
    /// Trials stopped by the early-stopping rule: ended, not failed.
    pub early_stopped: u32,
    /// Trials created so far, in any phase.
    pub created: u32,
    /// Whether a trial reached the objective's target.
    pub goal_reached: bool,
    /// Whether the search has run out of new points.
    pub exhausted: bool,
}

impl Counts {
    /// Trials with their outcome: what maxTrials counts.
    pub fn ended(&self) -> u32 {
        self.succeeded + self.failed + self.early_stopped
    }
}

/// The limits from the spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_trials: u32,
    pub parallel_trials: u32,
    pub max_failed_trials: u32,
}

impl Limits {
    pub fn of(spec: &ExperimentSpec) -> Self {
        Self {
            max_trials: spec.max_trials,
            parallel_trials: spec.parallel_trials,
            max_failed_trials: spec.max_failed_trials,
        }
    }
}

/// What a running experiment is asked to do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Halt {
    #[default]
    Run,
    /// Stop: running trials are stopped, the experiment is `Stopped` until resumed.
    Stop,
    /// The controller is going away: running trials are interrupted and re-queued on its return.
    Interrupt,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Start this many trials: queued ones first, then new suggestions.
    Launch(u32),
    /// Wait for a running trial to end.
    Wait,
    /// End the experiment (its phase is `reason.phase()`); running trials are stopped first when
    /// `stop_running`, else waited for.
    Finish { reason: EndReason, stop_running: bool },
}

/// The next step. A halt comes first, then failures, the goal and the budget. An experiment
/// whose budget or space ran out with no trial succeeded has failed (`NoTrialSucceeded`), whatever
/// `maxFailedTrials` allows.
pub fn next_step(c: Counts, l: Limits, halt: Halt, exhausted: &EndReason) -> Step {
    let finish = |reason, stop_running| Step::Finish { reason, stop_running };
    match halt {
        Halt::Stop => return finish(EndReason::StoppedByUser, true),
        Halt::Interrupt => return finish(EndReason::ControllerShutdown, true),
        Halt::Run => {}
    }
    let unless_none_succeeded = |reason| if c.succeeded == 0 { EndReason::NoTrialSucceeded } else { reason };
    if c.failed > l.max_failed_trials {
        return finish(EndReason::TooManyFailures, true);
    }
    if c.goal_reached {
        return finish(EndReason::GoalReached, true);
    }
    if c.ended() >= l.max_trials {
        return finish(unless_none_succeeded(EndReason::MaxTrialsReached), false);
    }
    let startable = c.queued + if c.exhausted { 0 } else { l.max_trials.saturating_sub(c.created) };
    let free_slots = l.parallel_trials.saturating_sub(c.running);
    if free_slots > 0 && startable > 0 {
        return Step::Launch(free_slots.min(startable));
    }
    if c.running > 0 {
        return Step::Wait;
    }
    if c.exhausted {
        return finish(unless_none_succeeded(exhausted.clone()), false);
    }
    // Nothing runs and nothing may start, yet the budget is not spent: say so instead of hanging.
    finish(EndReason::Stalled, false)
}

/// How many new trials an ask for `count` may hand out, given how many trials exist and how many
/// of them are open: never more than maxTrials in all, nor more than parallelTrials open at once;
/// none once the experiment ended or was stopped.
pub fn room_for(spec: &ExperimentSpec, phase: ExperimentPhase, count: usize, trials: usize, open: usize) -> usize {
    if phase.is_closed() {
        return 0;
    }
    count
        .min((spec.max_trials as usize).saturating_sub(trials))
        .min((spec.parallel_trials as usize).saturating_sub(open))
}
