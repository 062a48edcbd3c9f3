//! The experiment's phase, its legal moves, and the typed reason it is in its phase.
//!
//! ```text
//! Pending ──▶ Running ──▶ Succeeded | Failed | Stopped
//!    ▲   └──────────────────────┘ (invalid, stopped before it ran)   │
//!    └──────────── resumed, or its budget raised ◀───────────────────┘
//! ```
//! Every change of phase goes through [`ExperimentPhase::can_move_to`] (the experiment core makes
//! them); reasons are an enum written as the strings users and the store have always seen.

use std::fmt;

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

/// Why an experiment is in its phase (`status.reason`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum EndReason {
    /// A trial reached `spec.objective.target`.
    GoalReached,
    /// `spec.maxTrials` trials ended and at least one succeeded.
    MaxTrialsReached,
    /// Grid search tried every point.
    GridExhausted,
    /// A search over a finite space tried every point.
    SearchSpaceExhausted,
    /// The budget or the space ran out and not one trial succeeded: the experiment failed.
    NoTrialSucceeded,
    /// More than `spec.maxFailedTrials` trials failed.
    TooManyFailures,
    /// Nothing runs and nothing may start with budget left (a bug, reported instead of a hang).
    Stalled,
    /// A user stopped it; resuming goes on.
    StoppedByUser,
    /// The controller shut down while it ran; it resumes when the controller starts again.
    ControllerShutdown,
    /// The controller could not go on with it (the cause is in the message).
    ControllerError,
    /// The custom resource's document is not valid.
    InvalidSpec,
    /// A custom resource's name is taken by another experiment.
    NameConflict,
    /// A reason written by another version of tuna, kept as it was.
    Other(String),
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

    pub fn as_str(&self) -> &str {
        use EndReason::*;
        match self {
            GoalReached => "GoalReached",
            MaxTrialsReached => "MaxTrialsReached",
            GridExhausted => "GridExhausted",
            SearchSpaceExhausted => "SearchSpaceExhausted",
            NoTrialSucceeded => "NoTrialSucceeded",
            TooManyFailures => "TooManyFailures",
            Stalled => "Stalled",
            StoppedByUser => "StoppedByUser",
            ControllerShutdown => "ControllerShutdown",
            ControllerError => "ControllerError",
            InvalidSpec => "InvalidSpec",
            NameConflict => "NameConflict",
            Other(text) => text,
        }
    }

    const NAMED: [EndReason; 12] = [
        EndReason::GoalReached,
        EndReason::MaxTrialsReached,
        EndReason::GridExhausted,
        EndReason::SearchSpaceExhausted,
        EndReason::NoTrialSucceeded,
        EndReason::TooManyFailures,
        EndReason::Stalled,
        EndReason::StoppedByUser,
        EndReason::ControllerShutdown,
        EndReason::ControllerError,
        EndReason::InvalidSpec,
        EndReason::NameConflict,
    ];
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<String> for EndReason {
    fn from(text: String) -> Self {
        Self::NAMED.into_iter().find(|r| r.as_str() == text).unwrap_or(EndReason::Other(text))
    }
}

impl From<EndReason> for String {
    fn from(reason: EndReason) -> Self {
        reason.as_str().to_string()
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
            assert_eq!(serde_json::from_str::<EndReason>(&text).unwrap(), reason);
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
