//! The experiment's status, always derived from its trials (never counted separately, so it cannot
//! drift from them).

use jiff::Timestamp;

use super::Run;
use crate::spec::{BestTrial, ExperimentPhase, TrialCounts};
use crate::store::ExperimentRecord;
use crate::trial::{TrialPhase, parameters_json};

/// Recomputes trial counts and the best trial.
pub(super) fn refresh<E>(record: &mut ExperimentRecord, run: &Run<E>) {
    let status = record.experiment.status.get_or_insert_with(Default::default);
    let mut counts = TrialCounts::default();
    for t in &run.trials {
        let slot = match t.phase {
            _ if run.active.contains(&t.index) => &mut counts.running,
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
    status.best_trial = run.best().map(|t| BestTrial {
        name: t.name.clone(),
        objective: t.objective.unwrap_or_default(),
        parameters: parameters_json(&t.parameters),
    });
}

/// Writes the final phase, reason and a message a person can act on.
pub(super) fn finish<E>(record: &mut ExperimentRecord, run: &Run<E>, phase: ExperimentPhase, reason: &str) {
    refresh(record, run);
    let spec = &run.ctx.spec;
    let status = record.experiment.status.get_or_insert_with(Default::default);
    let c = &status.trials;
    let message = match reason {
        "TooManyFailures" => {
            let last = run.trials.iter().rev().find(|t| t.phase == TrialPhase::Failed);
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
            format!("every point of the search space was tried ({} trials)", run.trials.len())
        }
        "Stalled" => "no trial is running and none may start; this is a bug, please report it".to_string(),
        _ => format!("stopped with {} trials ended; run again to resume", c.succeeded + c.failed),
    };
    status.phase = phase;
    status.reason = Some(reason.to_string());
    status.message = Some(message);
    if phase != ExperimentPhase::Stopped {
        status.completion_time = Some(Timestamp::now().to_string());
    }
}
