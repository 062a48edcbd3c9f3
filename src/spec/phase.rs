//! The experiment's phase, its legal moves, and the typed reason it is in its phase.
//!
//! ```text
//! Pending ──▶ Running ──▶ Succeeded | Failed | Stopped
//!    ▲   └──────────────────────┘ (invalid, stopped before it ran)   │
//!    └──────────── resumed, or its budget raised ◀───────────────────┘
//! ```
//! Every change of phase goes through [`ExperimentPhase::can_move_to`] (the experiment core makes
//! them); reasons are an enum written as the strings users and the store have always seen.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ExperimentPhase {
    #[default]
    Pending,
    Running,
    Succeeded,
    Failed,
    Stopped,
}

impl ExperimentPhase {
    /// Whether the experiment has ended for good (a stopped one can be resumed).
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }

    /// Whether the experiment takes no new trials: ended, or stopped until resumed.
    pub fn is_closed(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Stopped)
    }

    /// The legal moves. Staying in a phase is no move (and always allowed).
    pub fn can_move_to(self, next: ExperimentPhase) -> bool {
        use ExperimentPhase::*;
        self == next
            || matches!(
                (self, next),
                (Pending, Running | Failed | Stopped)
                    | (Running, Succeeded | Failed | Stopped)
                    | (Stopped, Running | Pending)
                    | (Succeeded | Failed, Pending)
            )
    }
}

crate::wire_strings! {
    /// Why an experiment is in its phase (`status.reason`).
    pub enum EndReason {
        /// A trial reached `spec.objective.target`.
        GoalReached => "GoalReached",
        /// `spec.maxTrials` trials ended and at least one succeeded.
        MaxTrialsReached => "MaxTrialsReached",
        /// Grid search tried every point.
        GridExhausted => "GridExhausted",
        /// A search over a finite space tried every point.
        SearchSpaceExhausted => "SearchSpaceExhausted",
        /// The budget or the space ran out and not one trial succeeded: the experiment failed.
        NoTrialSucceeded => "NoTrialSucceeded",
        /// More than `spec.maxFailedTrials` trials failed.
        TooManyFailures => "TooManyFailures",
        /// Nothing runs and nothing may start with budget left (a bug, reported instead of a hang).
        Stalled => "Stalled",
        /// A user stopped it; resuming goes on.
        StoppedByUser => "StoppedByUser",
        /// The controller shut down while it ran; it resumes when the controller starts again.
        ControllerShutdown => "ControllerShutdown",
        /// The controller could not go on with it (the cause is in the message).
        ControllerError => "ControllerError",
        /// The custom resource's document is not valid.
        InvalidSpec => "InvalidSpec",
        /// A custom resource's name is taken by another experiment.
        NameConflict => "NameConflict",
        ;
        /// A reason written by another version of tuna, kept as it was.
        Other
    }
}

impl EndReason {
    /// The phase an experiment ending for this reason is in.
    pub fn phase(&self) -> ExperimentPhase {
        use EndReason::*;
        match self {
            GoalReached | MaxTrialsReached | GridExhausted | SearchSpaceExhausted => ExperimentPhase::Succeeded,
            NoTrialSucceeded | TooManyFailures | Stalled | ControllerError | InvalidSpec | NameConflict | Other(_) => {
                ExperimentPhase::Failed
            }
            StoppedByUser => ExperimentPhase::Stopped,
            ControllerShutdown => ExperimentPhase::Running,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_keep_their_wire_strings_both_ways() {
        for reason in EndReason::NAMED {
            let text = serde_json::to_string(&reason).unwrap();
            assert_eq!(text, format!("\"{reason}\""));
            assert_eq!(&serde_json::from_str::<EndReason>(&text).unwrap(), reason);
        }
        let old: EndReason = serde_json::from_str("\"SomethingNew\"").unwrap();
        assert_eq!(old, EndReason::Other("SomethingNew".into()));
        assert_eq!(serde_json::to_string(&old).unwrap(), "\"SomethingNew\"");
    }

    #[test]
    fn an_experiment_moves_only_along_its_phase_machine() {
        use ExperimentPhase::*;
        let all = [Pending, Running, Succeeded, Failed, Stopped];
        let legal = [
            (Pending, Running),
            (Pending, Failed),
            (Pending, Stopped),
            (Running, Succeeded),
            (Running, Failed),
            (Running, Stopped),
            (Stopped, Running),
            (Stopped, Pending),
            (Succeeded, Pending),
            (Failed, Pending),
        ];
        for from in all {
            for to in all {
                let expected = from == to || legal.contains(&(from, to));
                assert_eq!(from.can_move_to(to), expected, "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn an_experiment_whose_trials_all_failed_cannot_end_succeeded() {
        assert_eq!(EndReason::NoTrialSucceeded.phase(), ExperimentPhase::Failed);
        assert_eq!(EndReason::ControllerShutdown.phase(), ExperimentPhase::Running, "an interruption is no end");
    }
}
