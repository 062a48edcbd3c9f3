//! A trial: one assignment run once (or re-run after a loss outside it), its phase and its results.
//!
//! ```text
//! Pending ──▶ Running ──▶ Succeeded | Failed | Stopped | EarlyStopped
//!    ▲           │
//!    └─ Interrupted ◀─┘   (the controller died or was stopped; re-queued on the next start)
//! ```
//! `EarlyStopped`: the early-stopping rule stopped it (`Trial::early_stop` says at which step and
//! why). Not a failure; it counts toward maxTrials, keeps every observation, and is never re-run.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::space::Assignment;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum TrialPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Stopped,
    Interrupted,
    /// Stopped by the experiment's early-stopping rule: final, not a failure.
    EarlyStopped,
}

impl TrialPhase {
    /// Whether the trial has a final outcome.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Stopped | Self::EarlyStopped)
    }

    /// The legal moves of the phase machine.
    pub fn can_move_to(self, next: TrialPhase) -> bool {
        use TrialPhase::*;
        matches!(
            (self, next),
            (Pending, Running | Stopped | Failed | Interrupted | EarlyStopped)
                | (Running, Succeeded | Failed | Stopped | Interrupted | Pending | EarlyStopped)
                | (Interrupted, Pending | EarlyStopped)
                | (Stopped, Pending)
        )
    }
}

crate::wire_strings! {
    /// Why a trial failed, was stopped or waits (`reason`), written as the strings the store and the
    /// API have always carried.
    pub enum TrialReason {
        /// The program exited with a code other than 0.
        NonZeroExit => "NonZeroExit",
        /// A signal tuna did not send ended it.
        Killed => "Killed",
        /// It ended well but never reported the objective metric.
        MetricsUnavailable => "MetricsUnavailable",
        /// It ran longer than `spec.trial.timeout` (or, for ask/tell, got no result within it).
        TimedOut => "TimedOut",
        /// The program could not be started.
        StartFailed => "StartFailed",
        /// A user stopped the experiment.
        StoppedByUser => "StoppedByUser",
        /// Another trial reached the objective's target.
        ExperimentGoalReached => "ExperimentGoalReached",
        /// The experiment failed (too many failures) while this trial ran.
        TooManyFailures => "TooManyFailures",
        /// The controller died while it ran; re-queued.
        ControllerLost => "ControllerLost",
        /// The controller shut down while it ran; re-queued on its return.
        ControllerShutdown => "ControllerShutdown",
        /// The early-stopping rule stopped it (the trial's `earlyStop` says where and why).
        EarlyStopped => "EarlyStopped",
        ;
        /// A reason given from outside: a client's tell, or why the cluster keeps it waiting
        /// (`Unschedulable`, …).
        Other
    }
}

/// A string on the wire: one of the named reasons, or another (a client's own, on a tell).
impl schemars::JsonSchema for TrialReason {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "TrialReason".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let named: Vec<&str> = Self::NAMED.iter().map(TrialReason::as_str).collect();
        let description =
            format!("Why the trial failed, was stopped or waits: {}, or a client's own", named.join(", "));
        schemars::json_schema!({"type": "string", "description": description})
    }
}

/// How one attempt's process ended, as the executor saw it.
#[derive(Clone, Debug, PartialEq)]
pub enum Exit {
    Code(i32),
    /// Killed by a signal that tuna did not send.
    Signal(i32),
    TimedOut,
    /// Stopped on request (before or after it started).
    Stopped,
    /// The program could not be started.
    StartFailed(String),
}

/// The end of one attempt: how it exited and the last lines it wrote to stderr.
#[derive(Clone, Debug, PartialEq)]
pub struct Finished {
    pub exit: Exit,
    /// The last lines the trial wrote to stderr, for the failure message.
    pub stderr_tail: Vec<String>,
}

/// A trial as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Trial {
    pub experiment: String,
    pub name: String,
    /// The trial's number in its experiment, from 0; its place in the search's history.
    pub index: u32,
    pub parameters: Assignment,
    pub phase: TrialPhase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<TrialReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The objective value read with the experiment's strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective: Option<f64>,
    /// The step at which the objective value was reported (with `strategy: min`/`max`, possibly
    /// earlier than `last_step`: then the ranked value is not the final model's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective_step: Option<i64>,
    /// The highest step the trial's final attempt reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_step: Option<i64>,
    /// The last value of every metric the trial reported.
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    /// How many times the trial has been started.
    #[serde(default)]
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The process (group) id while running locally, so a restarted controller can clean up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// What tells the process with `pid` from a later one given the same PID (after it ended, or
    /// after a reboot): a restarted controller kills the group only when they match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_stamp: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<u32>,
    pub created_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    /// Where the trial's files (logs, output) live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    /// The early-stopping rule's decision, stored as soon as it is made: the attempt then ends
    /// `EarlyStopped` however it exits, and a resume never runs the trial again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_stop: Option<EarlyStop>,
}

/// An early-stopping decision: the step of the report that decided it and the rule's reason
/// (`asha: rung 9, not in top 1/3 of 7`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EarlyStop {
    pub step: i64,
    pub reason: String,
}

impl EarlyStop {
    /// `at step 9: asha: rung 9, not in top 1/3 of 7`.
    pub fn message(&self) -> String {
        format!("at step {}: {}", self.step, self.reason)
    }
}

impl Trial {
    /// A new pending trial.
    pub fn new(experiment: &str, index: u32, parameters: Assignment, now: Timestamp) -> Self {
        Self {
            experiment: experiment.to_string(),
            name: trial_name(experiment, index),
            index,
            parameters,
            phase: TrialPhase::Pending,
            reason: None,
            message: None,
            objective: None,
            objective_step: None,
            last_step: None,
            metrics: BTreeMap::new(),
            attempts: 0,
            exit_code: None,
            pid: None,
            pid_stamp: None,
            gpus: Vec::new(),
            created_at: now,
            started_at: None,
            finished_at: None,
            dir: None,
            early_stop: None,
        }
    }

    /// Moves to `next` when the phase machine allows it; returns whether it moved.
    pub fn move_to(&mut self, next: TrialPhase) -> bool {
        let legal = self.phase.can_move_to(next);
        if legal {
            self.phase = next;
        }
        legal
    }

    /// Whether the objective was read at an earlier step than the trial's last: the value ranked is
    /// not that of the model the trial saved at its end.
    pub fn ranked_before_end(&self) -> bool {
        matches!((self.objective_step, self.last_step), (Some(at), Some(last)) if at < last)
    }

    /// Seconds from start to finish (or to `now` while running).
    pub fn duration_seconds(&self, now: Timestamp) -> Option<f64> {
        let start = self.started_at?;
        let end = self.finished_at.unwrap_or(now);
        Some((end.as_millisecond() - start.as_millisecond()) as f64 / 1000.0)
    }
}

/// `quickstart-0007`: the experiment's name and the trial's number.
pub fn trial_name(experiment: &str, index: u32) -> String {
    format!("{experiment}-{index:04}")
}

/// One reported metric value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Observation {
    /// The attempt of the trial that reported it (from 1).
    #[serde(default)]
    pub attempt: u32,
    pub metric: String,
    pub value: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<i64>,
    pub time: Timestamp,
}

/// Replaces every `${name}` in `template` with `lookup(name)`; unknown names are left as they are.
pub fn substitute(template: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                let name = &after[..end];
                match lookup(name) {
                    Some(v) => out.push_str(&v),
                    None => out.push_str(&rest[start..start + 3 + end]),
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The parameters as a JSON object (for `TUNA_PARAMS` and the leaderboard).
pub fn parameters_json(parameters: &Assignment) -> serde_json::Value {
    serde_json::to_value(parameters).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitution_replaces_known_names_and_keeps_unknown_ones() {
        let lookup = |n: &str| (n == "lr").then(|| "0.1".to_string());
        assert_eq!(substitute("--lr=${lr} ${x} $${lr}", &lookup), "--lr=0.1 ${x} $0.1");
        assert_eq!(substitute("open ${lr", &lookup), "open ${lr");
    }

    #[test]
    fn trial_reasons_keep_their_wire_strings() {
        for reason in TrialReason::NAMED {
            let text = serde_json::to_string(&reason).unwrap();
            assert_eq!(&serde_json::from_str::<TrialReason>(&text).unwrap(), reason);
        }
        assert_eq!(serde_json::to_string(&TrialReason::ExperimentGoalReached).unwrap(), "\"ExperimentGoalReached\"");
        let told: TrialReason = serde_json::from_str("\"OutOfMemory\"").unwrap();
        assert_eq!(told, TrialReason::Other("OutOfMemory".into()));
    }

    #[test]
    fn phase_machine_allows_requeue_only_from_interrupted_or_stopped() {
        use TrialPhase::*;
        assert!(Pending.can_move_to(Running));
        assert!(Interrupted.can_move_to(Pending));
        assert!(!Succeeded.can_move_to(Pending));
        assert!(!Failed.can_move_to(Running));
        let mut t = Trial::new("e", 0, Assignment::new(), Timestamp::UNIX_EPOCH);
        assert!(!t.move_to(Succeeded));
        assert!(t.move_to(Running) && t.move_to(Succeeded));
        assert_eq!(t.name, "e-0000");
    }
}
