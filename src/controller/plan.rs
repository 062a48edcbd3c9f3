//! The controller's decision, as a pure function of counts: what to do next.

use crate::spec::ExperimentPhase;

/// What the experiment looks like right now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Created trials waiting to start (new, or re-queued after an interruption).
    pub queued: u32,
    pub running: u32,
    pub succeeded: u32,
    pub failed: u32,
    /// Trials created so far, in any phase.
    pub created: u32,
    /// Whether a trial reached the objective's target.
    pub goal_reached: bool,
    /// Whether the search has run out of new points.
    pub exhausted: bool,
}

/// The limits from the spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_trials: u32,
    pub parallel_trials: u32,
    pub max_failed_trials: u32,
}

impl Limits {
    pub fn of(spec: &crate::spec::ExperimentSpec) -> Self {
        Self {
            max_trials: spec.max_trials,
            parallel_trials: spec.parallel_trials,
            max_failed_trials: spec.max_failed_trials,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Start this many trials: queued ones first, then new suggestions.
    Launch(u32),
    /// Wait for a running trial to end.
    Wait,
    /// End the experiment; running trials are stopped when `stop_running`.
    Finish { phase: ExperimentPhase, reason: &'static str, stop_running: bool },
}

/// The next step. Failures are checked first, then the goal, then the budget.
pub fn next_step(c: Counts, l: Limits, exhausted_reason: &'static str) -> Step {
    use ExperimentPhase::{Failed, Succeeded};
    if c.failed > l.max_failed_trials {
        return Step::Finish { phase: Failed, reason: "TooManyFailures", stop_running: true };
    }
    if c.goal_reached {
        return Step::Finish { phase: Succeeded, reason: "GoalReached", stop_running: true };
    }
    if c.succeeded + c.failed >= l.max_trials {
        return Step::Finish { phase: Succeeded, reason: "MaxTrialsReached", stop_running: false };
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
        return Step::Finish { phase: Succeeded, reason: exhausted_reason, stop_running: false };
    }
    // Nothing runs and nothing may start, yet the budget is not spent: say so instead of hanging.
    Step::Finish { phase: Failed, reason: "Stalled", stop_running: false }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { max_trials: 10, parallel_trials: 3, max_failed_trials: 2 };

    #[test]
    fn launches_up_to_the_parallel_limit_and_never_past_max_trials() {
        let c = Counts { created: 0, ..Default::default() };
        assert_eq!(next_step(c, LIMITS, "X"), Step::Launch(3));
        let c = Counts { created: 9, running: 1, succeeded: 8, ..Default::default() };
        assert_eq!(next_step(c, LIMITS, "X"), Step::Launch(1));
        let c = Counts { created: 10, running: 2, succeeded: 8, ..Default::default() };
        assert_eq!(next_step(c, LIMITS, "X"), Step::Wait);
    }

    #[test]
    fn queued_trials_start_even_when_every_trial_is_created() {
        let c = Counts { created: 10, queued: 2, succeeded: 8, ..Default::default() };
        assert_eq!(next_step(c, LIMITS, "X"), Step::Launch(2));
    }

    #[test]
    fn ends_on_failures_goal_budget_and_exhaustion_in_that_order() {
        let c = Counts { failed: 3, goal_reached: true, running: 1, created: 5, ..Default::default() };
        assert!(matches!(
            next_step(c, LIMITS, "X"),
            Step::Finish { reason: "TooManyFailures", stop_running: true, .. }
        ));
        let c = Counts { goal_reached: true, running: 1, created: 5, ..Default::default() };
        assert!(matches!(next_step(c, LIMITS, "X"), Step::Finish { reason: "GoalReached", .. }));
        let c = Counts { succeeded: 8, failed: 2, created: 10, ..Default::default() };
        assert!(matches!(next_step(c, LIMITS, "X"), Step::Finish { reason: "MaxTrialsReached", .. }));
        let c = Counts { succeeded: 4, created: 4, exhausted: true, ..Default::default() };
        assert!(matches!(next_step(c, LIMITS, "GridExhausted"), Step::Finish { reason: "GridExhausted", .. }));
    }

    #[test]
    fn an_exhausted_search_waits_for_its_running_trials_first() {
        let c = Counts { succeeded: 4, running: 2, created: 6, exhausted: true, ..Default::default() };
        assert_eq!(next_step(c, LIMITS, "GridExhausted"), Step::Wait);
    }
}
