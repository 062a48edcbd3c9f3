//! The experiment's status, always derived from its trials (never counted separately, so it cannot
//! drift from them), and every change of its phase, each checked against the phase machine.

use std::collections::BTreeSet;

use jiff::Timestamp;

use super::plan::Counts;
use crate::leaderboard::cause;
use crate::spec::{BestTrial, EndReason, ExperimentPhase, ExperimentSpec, ExperimentStatus, TrialCounts};
use crate::trial::{Trial, TrialPhase, parameters_json};

/// How many failures the end message of a failed experiment quotes.
const QUOTED_FAILURES: usize = 3;

/// What the plan needs: `active` trials are running (or handed to a task that will run them).
pub fn counts(spec: &ExperimentSpec, trials: &[Trial], active: &BTreeSet<u32>, exhausted: bool) -> Counts {
    let objective = &spec.objective;
    let mut c = Counts { created: trials.len() as u32, exhausted, running: active.len() as u32, ..Default::default() };
    for t in trials {
        match t.phase {
            TrialPhase::Pending if !active.contains(&t.index) => c.queued += 1,
            TrialPhase::Succeeded => c.succeeded += 1,
            TrialPhase::Failed => c.failed += 1,
            TrialPhase::EarlyStopped => c.early_stopped += 1,
            _ => {}
        }
        c.goal_reached |= t.phase == TrialPhase::Succeeded && t.objective.is_some_and(|v| objective.reaches_target(v));
    }
    c
}

/// The best succeeded trial; ties go to the earlier one.
pub fn best<'a>(spec: &ExperimentSpec, trials: &'a [Trial]) -> Option<&'a Trial> {
    trials.iter().fold(None, |best, t| if beats(spec, t, best) { Some(t) } else { best })
}

/// Whether `t` takes the place of `best`: it succeeded with a better value, or the same value as an
/// earlier trial (so the best does not depend on the order trials are looked at).
pub(super) fn beats(spec: &ExperimentSpec, t: &Trial, best: Option<&Trial>) -> bool {
    let Some(v) = t.objective.filter(|_| t.phase == TrialPhase::Succeeded) else { return false };
    match best.and_then(|b| b.objective.map(|o| (o, b.index))) {
        None => true,
        Some((b, index)) => spec.objective.better(v, b) || (v == b && t.index < index),
    }
}

/// The count a trial in `phase` adds to (an active trial counts as running whatever its phase).
pub(super) fn slot(counts: &mut TrialCounts, phase: TrialPhase, active: bool) -> &mut u32 {
    match phase {
        _ if active => &mut counts.running,
        TrialPhase::Pending => &mut counts.pending,
        TrialPhase::Running => &mut counts.running,
        TrialPhase::Succeeded => &mut counts.succeeded,
        TrialPhase::Failed => &mut counts.failed,
        TrialPhase::Stopped => &mut counts.stopped,
        TrialPhase::Interrupted => &mut counts.interrupted,
        TrialPhase::EarlyStopped => &mut counts.early_stopped,
    }
}

/// The best trial as the status shows it.
pub(super) fn best_trial(t: &Trial) -> BestTrial {
    BestTrial {
        name: t.name.clone(),
        objective: t.objective.unwrap_or_default(),
        parameters: parameters_json(&t.parameters),
    }
}

/// Recomputes trial counts and the best trial.
pub fn refresh(status: &mut ExperimentStatus, spec: &ExperimentSpec, trials: &[Trial], active: &BTreeSet<u32>) {
    let mut counts = TrialCounts::default();
    for t in trials {
        *slot(&mut counts, t.phase, active.contains(&t.index)) += 1;
    }
    status.trials = counts;
    status.best_trial = best(spec, trials).map(best_trial);
}

/// Moves to `phase` when the phase machine allows it; returns whether it did.
fn move_to(status: &mut ExperimentStatus, phase: ExperimentPhase) -> bool {
    let legal = status.phase.can_move_to(phase);
    if legal {
        status.phase = phase;
    }
    legal
}

/// The experiment starts (or goes on) running: the reason of an earlier end is cleared.
pub fn begin(status: &mut ExperimentStatus, now: Timestamp) -> bool {
    if !move_to(status, ExperimentPhase::Running) {
        return false;
    }
    status.reason = None;
    status.message = None;
    status.completion_time = None;
    status.start_time.get_or_insert_with(|| now.to_string());
    true
}

/// Back to `Pending` (resumed, or its budget raised), to be run again.
pub fn reopen(status: &mut ExperimentStatus) -> bool {
    if !status.phase.is_closed() || !move_to(status, ExperimentPhase::Pending) {
        return false;
    }
    status.reason = None;
    status.message = None;
    status.completion_time = None;
    true
}

/// A status that is failed from the start (an invalid or conflicting custom resource).
pub fn refused(reason: EndReason, message: String) -> ExperimentStatus {
    ExperimentStatus {
        phase: ExperimentPhase::Failed,
        reason: Some(reason),
        message: Some(message),
        ..Default::default()
    }
}

/// Ends with `reason` and a message of the loop's own (a controller error, a stop with nothing
/// running); returns whether the phase machine allowed it.
pub fn end_with(status: &mut ExperimentStatus, reason: EndReason, message: String, now: Timestamp) -> bool {
    if !move_to(status, reason.phase()) {
        return false;
    }
    status.reason = Some(reason);
    status.message = Some(message);
    if status.phase.is_finished() {
        status.completion_time = Some(now.to_string());
    }
    true
}

/// Writes the final counts, phase, reason and a message a person can act on.
pub fn finish(
    status: &mut ExperimentStatus,
    spec: &ExperimentSpec,
    trials: &[Trial],
    reason: EndReason,
    now: Timestamp,
) {
    refresh(status, spec, trials, &BTreeSet::new());
    let message = end_message(status, spec, trials, &reason);
    end_with(status, reason, message, now);
}

fn end_message(status: &ExperimentStatus, spec: &ExperimentSpec, trials: &[Trial], reason: &EndReason) -> String {
    let c = &status.trials;
    match reason {
        EndReason::TooManyFailures => format!(
            "{} trials failed, more than spec.maxFailedTrials ({}); the last: {}",
            c.failed,
            spec.max_failed_trials,
            last_failures(trials, 1)
        ),
        EndReason::NoTrialSucceeded => format!(
            "no trial succeeded ({} of {} ended, {} failed{}); the last failures: {}",
            c.succeeded + c.failed + c.early_stopped,
            spec.max_trials,
            c.failed,
            stopped_early(c),
            last_failures(trials, QUOTED_FAILURES)
        ),
        EndReason::GoalReached => format!(
            "{} reached {} = {} (target {})",
            status.best_trial.as_ref().map_or("a trial", |b| b.name.as_str()),
            spec.objective.metric,
            status.best_trial.as_ref().map_or(f64::NAN, |b| b.objective),
            spec.objective.target.unwrap_or(f64::NAN)
        ),
        EndReason::MaxTrialsReached => format!(
            "{} of {} trials ended ({} succeeded, {} failed{})",
            c.succeeded + c.failed + c.early_stopped,
            spec.max_trials,
            c.succeeded,
            c.failed,
            stopped_early(c)
        ),
        EndReason::GridExhausted | EndReason::SearchSpaceExhausted => {
            format!("every point of the search space was tried ({} trials)", trials.len())
        }
        EndReason::Stalled => "no trial is running and none may start; this is a bug, please report it".to_string(),
        EndReason::ControllerShutdown => {
            "the controller shut down; the experiment resumes when it starts again".to_string()
        }
        EndReason::StoppedByUser
        | EndReason::ControllerError
        | EndReason::InvalidSpec
        | EndReason::NameConflict
        | EndReason::Other(_) => format!("stopped with {} trials ended; resume it to go on", c.succeeded + c.failed),
    }
}

/// `, 5 stopped early` when the early-stopping rule stopped any.
fn stopped_early(c: &TrialCounts) -> String {
    if c.early_stopped == 0 { String::new() } else { format!(", {} stopped early", c.early_stopped) }
}

/// The last `n` failed trials, latest first, each with its one-line cause:
/// `e-0002 (NonZeroExit: exit code 2: boom)`.
fn last_failures(trials: &[Trial], n: usize) -> String {
    let quoted: Vec<String> = trials
        .iter()
        .rev()
        .filter(|t| t.phase == TrialPhase::Failed)
        .take(n)
        .map(|t| format!("{} ({})", t.name, cause(t).unwrap_or_else(|| "no reason given".into())))
        .collect();
    quoted.join("; ")
}
