//! The experiment's status, always derived from its trials (never counted separately, so it cannot
//! drift from them).

use std::collections::HashSet;

use jiff::Timestamp;

use super::plan::Counts;
use crate::spec::{BestTrial, ExperimentPhase, ExperimentSpec, ExperimentStatus, TrialCounts};
use crate::trial::{Trial, TrialPhase, parameters_json};

/// What the plan needs: `active` trials are running (or handed to a task that will run them).
pub fn counts(spec: &ExperimentSpec, trials: &[Trial], active: &HashSet<u32>, exhausted: bool) -> Counts {
    let objective = &spec.objective;
    let mut c = Counts { created: trials.len() as u32, exhausted, running: active.len() as u32, ..Default::default() };
    for t in trials {
        match t.phase {
            TrialPhase::Pending if !active.contains(&t.index) => c.queued += 1,
            TrialPhase::Succeeded => c.succeeded += 1,
            TrialPhase::Failed => c.failed += 1,
            _ => {}
        }
        c.goal_reached |= t.phase == TrialPhase::Succeeded && t.objective.is_some_and(|v| objective.reaches_target(v));
    }
    c
}

/// The best succeeded trial; ties go to the earlier one.
pub fn best<'a>(spec: &ExperimentSpec, trials: &'a [Trial]) -> Option<&'a Trial> {
    let objective = &spec.objective;
    trials.iter().filter(|t| t.phase == TrialPhase::Succeeded).fold(None, |best: Option<&Trial>, t| {
        match (best.and_then(|b| b.objective), t.objective) {
            (_, None) => best,
            (Some(b), Some(v)) if !objective.better(v, b) => best,
            _ => Some(t),
        }
    })
}

/// Recomputes trial counts and the best trial.
pub fn refresh(status: &mut ExperimentStatus, spec: &ExperimentSpec, trials: &[Trial], active: &HashSet<u32>) {
    let mut counts = TrialCounts::default();
    for t in trials {
        let slot = match t.phase {
            _ if active.contains(&t.index) => &mut counts.running,
            TrialPhase::Pending => &mut counts.pending,
            TrialPhase::Running => &mut counts.running,
            TrialPhase::Succeeded => &mut counts.succeeded,
            TrialPhase::Failed => &mut counts.failed,
            TrialPhase::Stopped => &mut counts.stopped,
            TrialPhase::Interrupted => &mut counts.interrupted,
        };
        *slot += 1;
    }
    status.trials = counts;
    status.best_trial = best(spec, trials).map(|t| BestTrial {
        name: t.name.clone(),
        objective: t.objective.unwrap_or_default(),
        parameters: parameters_json(&t.parameters),
    });
}

/// Writes the final phase, reason and a message a person can act on.
pub fn finish(
    status: &mut ExperimentStatus,
    spec: &ExperimentSpec,
    trials: &[Trial],
    phase: ExperimentPhase,
    reason: &str,
) {
    refresh(status, spec, trials, &HashSet::new());
    let c = &status.trials;
    let message = match reason {
        "TooManyFailures" => {
            let last = trials.iter().rev().find(|t| t.phase == TrialPhase::Failed);
            format!(
                "{} trials failed, more than spec.maxFailedTrials ({}); the last: {}",
                c.failed,
                spec.max_failed_trials,
                last.map(|t| format!(
                    "{} ({}): {}",
                    t.name,
                    t.reason.as_deref().unwrap_or("?"),
                    t.message.as_deref().unwrap_or("")
                ))
                .unwrap_or_default()
            )
        }
        "GoalReached" => format!(
            "{} reached {} = {} (target {})",
            status.best_trial.as_ref().map_or("a trial", |b| b.name.as_str()),
            spec.objective.metric,
            status.best_trial.as_ref().map_or(f64::NAN, |b| b.objective),
            spec.objective.target.unwrap_or(f64::NAN)
        ),
        "MaxTrialsReached" => format!(
            "{} of {} trials ended ({} succeeded, {} failed)",
            c.succeeded + c.failed,
            spec.max_trials,
            c.succeeded,
            c.failed
        ),
        "GridExhausted" | "SearchSpaceExhausted" => {
            format!("every point of the search space was tried ({} trials)", trials.len())
        }
        "Stalled" => "no trial is running and none may start; this is a bug, please report it".to_string(),
        "ControllerShutdown" => "the controller shut down; the experiment resumes when it starts again".to_string(),
        _ => format!("stopped with {} trials ended; resume it to go on", c.succeeded + c.failed),
    };
    status.phase = phase;
    status.reason = Some(reason.to_string());
    status.message = Some(message);
    if phase.is_finished() {
        status.completion_time = Some(Timestamp::now().to_string());
    }
}
