//! Verdicts: what became of a trial's attempt (a process that ended, a client's tell, a deadline
//! passed), decided in one place and applied to the trial the same way by every path.

use jiff::Timestamp;

use crate::metrics::Tally;
use crate::spec::{ExperimentSpec, parse_duration};
use crate::trial::{EarlyStop, Exit, Finished, Trial, TrialPhase, TrialReason};

/// The outcome of one attempt.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub phase: TrialPhase,
    pub reason: Option<TrialReason>,
    pub message: String,
    /// Run the trial again (lost for a reason outside it, with retries left).
    pub retry: bool,
}

impl Verdict {
    fn new(phase: TrialPhase, reason: Option<TrialReason>, message: String) -> Self {
        Self { phase, reason, message, retry: false }
    }

    fn failed(reason: TrialReason, message: String) -> Self {
        Self::new(TrialPhase::Failed, Some(reason), message)
    }

    /// Writes the verdict into `trial` (its final phase, reason, message and end time).
    pub fn conclude(self, trial: &mut Trial, now: Timestamp) {
        trial.move_to(self.phase);
        trial.reason = self.reason.filter(|_| self.phase != TrialPhase::Succeeded);
        trial.message = (!self.message.is_empty()).then_some(self.message);
        trial.finished_at = Some(now);
        trial.pid = None;
        trial.pid_stamp = None;
    }
}

/// Judges an attempt from how its process ended and what it reported; `stop` is the cause of a
/// stop tuna asked for, if it did, and `early_stop` the early-stopping rule's decision on the
/// trial, if there is one. A trial stopped because the controller is going away is `Interrupted`
/// (re-queued on its return), not `Stopped`. A trial the rule stopped is `EarlyStopped` however
/// its attempt ended (killed by the stop, or exited by itself on `shouldStop`), unless it never
/// started.
pub fn judge(
    spec: &ExperimentSpec,
    finished: &Finished,
    tally: &Tally,
    attempts: u32,
    stop: Option<&TrialReason>,
    early_stop: Option<&EarlyStop>,
) -> Verdict {
    let metric = &spec.objective.metric;
    let tail = finished.stderr_tail.join("\n");
    let mut verdict = match &finished.exit {
        Exit::Code(0) if tally.value(metric, spec.objective.strategy()).is_some() => {
            Verdict::new(TrialPhase::Succeeded, None, String::new())
        }
        Exit::Code(0) => {
            Verdict::failed(TrialReason::MetricsUnavailable, missing(metric, tally, "exited 0 but never reported"))
        }
        Exit::Code(code) => Verdict::failed(TrialReason::NonZeroExit, format!("exit code {code}{}", with_tail(&tail))),
        Exit::Signal(signal) => Verdict {
            retry: attempts <= spec.trial.retries,
            ..Verdict::failed(TrialReason::Killed, format!("killed by signal {signal}{}", with_tail(&tail)))
        },
        Exit::TimedOut => Verdict::failed(
            TrialReason::TimedOut,
            format!("ran longer than spec.trial.timeout ({})", spec.trial.timeout.as_deref().unwrap_or("?")),
        ),
        Exit::StartFailed(message) => Verdict::failed(TrialReason::StartFailed, message.clone()),
        Exit::Stopped if stop == Some(&TrialReason::ControllerShutdown) => {
            Verdict::new(TrialPhase::Interrupted, stop.cloned(), String::new())
        }
        Exit::Stopped => Verdict::new(TrialPhase::Stopped, None, String::new()),
    };
    if let Some(decision) = early_stop.filter(|_| !matches!(finished.exit, Exit::StartFailed(_))) {
        return early_stopped(decision);
    }
    if verdict.reason.is_none() && verdict.phase != TrialPhase::Succeeded {
        verdict.reason = stop.cloned();
    }
    verdict
}

/// The verdict on a trial the early-stopping rule stopped.
pub fn early_stopped(decision: &EarlyStop) -> Verdict {
    Verdict::new(TrialPhase::EarlyStopped, Some(TrialReason::EarlyStopped), decision.message())
}

/// What a client said of its trial in a tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Told {
    Succeeded,
    /// Failed, with the client's reason (`Failed` when it gave none).
    Failed {
        reason: Option<String>,
    },
}

/// Judges a tell: a success without the objective metric is a failure.
pub fn told(spec: &ExperimentSpec, tally: &Tally, told: Told) -> Verdict {
    let metric = &spec.objective.metric;
    match told {
        Told::Succeeded if tally.value(metric, spec.objective.strategy()).is_some() => {
            Verdict::new(TrialPhase::Succeeded, None, String::new())
        }
        Told::Succeeded => {
            Verdict::failed(TrialReason::MetricsUnavailable, missing(metric, tally, "completed without"))
        }
        Told::Failed { reason } => Verdict::new(
            TrialPhase::Failed,
            Some(TrialReason::from(reason.as_deref().unwrap_or("Failed"))),
            String::new(),
        ),
    }
}

/// The failure of an open ask/tell trial whose result did not come within `spec.trial.timeout`.
pub fn expired(spec: &ExperimentSpec, trial: &Trial, now: Timestamp) -> Option<Verdict> {
    let limit = spec.trial.timeout.as_deref()?;
    let timeout = parse_duration(limit)?;
    let since = trial.started_at.unwrap_or(trial.created_at);
    let late = !trial.phase.is_finished()
        && now.as_millisecond() - since.as_millisecond() > i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
    late.then(|| Verdict::failed(TrialReason::TimedOut, format!("no result within spec.trial.timeout ({limit})")))
}

/// Copies what the attempt reported into the trial: every metric's latest value, the objective
/// read with the strategy and the steps it and the attempt ended at.
pub fn record_result(trial: &mut Trial, spec: &ExperimentSpec, tally: &Tally) {
    let (metric, strategy) = (&spec.objective.metric, spec.objective.strategy());
    trial.metrics = tally.latest();
    trial.objective = tally.value(metric, strategy);
    trial.objective_step = tally.step_of(metric, strategy);
    trial.last_step = tally.last_step();
}

/// Puts a trial that did not finish (the controller died, or it was stopped) back in the queue;
/// returns whether it was re-queued (a pending one only has its times cleared; a succeeded, failed
/// or early-stopped one is left as it is). A trial the early-stopping rule had stopped before the
/// controller went away ends `EarlyStopped` instead: a decision is never undone.
pub fn requeue(trial: &mut Trial, now: Timestamp) -> bool {
    if matches!(trial.phase, TrialPhase::Succeeded | TrialPhase::Failed | TrialPhase::EarlyStopped) {
        return false;
    }
    if let Some(decision) = trial.early_stop.clone() {
        early_stopped(&decision).conclude(trial, now);
        return false;
    }
    if trial.phase == TrialPhase::Running {
        trial.move_to(TrialPhase::Interrupted);
        trial.reason = Some(TrialReason::ControllerLost);
        trial.message = Some(format!("the controller stopped while the trial ran (at {now}); re-queued"));
    }
    let requeued = trial.phase != TrialPhase::Pending && trial.move_to(TrialPhase::Pending);
    trial.pid = None;
    trial.pid_stamp = None;
    trial.started_at = None;
    trial.finished_at = None;
    requeued
}

/// `exited 0 but never reported val_acc (it reported Val_Acc, loss)`: the metrics that were seen
/// tell a misspelt name from a program that printed nothing.
fn missing(metric: &str, tally: &Tally, lead: &str) -> String {
    let seen: Vec<&str> = tally.names().collect();
    let what = if seen.is_empty() { "no metrics at all".to_string() } else { seen.join(", ") };
    format!("{lead} {metric} (it reported {what})")
}

fn with_tail(tail: &str) -> String {
    if tail.is_empty() { String::new() } else { format!("; stderr ends with:\n{tail}") }
}
