//! Early stopping over HTTP: the answer to a push (`shouldStop`), and the ask/tell `report` route,
//! the equivalent of Optuna's `trial.report()` + `trial.should_prune()`. The decision is the core's
//! (`experiment::Reports::decide`, the same one the experiment loop asks) and it is stored with
//! the trial before the answer goes out, so a crash never undoes it.
//!
//! ```text
//! push (trial token)  ─▶ observations ─▶ decide ─▶ trial.earlyStop saved ─▶ {"shouldStop": true}
//!                                                   (the loop ends the attempt EarlyStopped)
//! report (server token, external) ─▶ observations ─▶ decide ─▶ trial EarlyStopped ─▶ {"shouldStop": true}
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use jiff::Timestamp;

use super::asktell::{observations_of, open_trial, parse_body, prepare};
use super::types::{PushAnswer, ReportRequest};
use super::{ApiError, ApiState, Result};
use crate::experiment::{self, Reports};
use crate::metrics::Tally;
use crate::spec::ExecutorKind;
use crate::store::ExperimentRecord;
use crate::trial::{EarlyStop, Trial};

pub fn routes() -> Router<Arc<ApiState>> {
    Router::new().route("/api/v1/experiments/{name}/trials/{trial}/report", post(report))
}

/// Each experiment's step reports as last judged, kept between reports: judging one report reads
/// that trial's observations only (and every trial's record, for phases and attempts), not every
/// trial's observations. Every step report of an experiment with a rule comes through [`decide`]
/// (pushes and ask/tell reports; a tell carries no step), so what is kept is what a full read
/// would find; it is read in full once per experiment incarnation (a new process, or an
/// experiment deleted and created again under its name).
#[derive(Default)]
pub struct ReportCache(pub(super) Mutex<HashMap<String, Arc<Mutex<Kept>>>>);

/// One experiment's reports, with the incarnation (uid) they were read under.
type Kept = (String, Reports);

/// The early-stopping rule's decision on `trial`'s latest report (its `attempt`), from every
/// trial's reports; `None` when it goes on or the experiment has no rule. `record` is the
/// experiment as the caller read it (its spec and incarnation).
pub(super) fn decide(
    state: &ApiState,
    record: &ExperimentRecord,
    trial: &Trial,
    attempt: u32,
) -> Result<Option<EarlyStop>> {
    let spec = &record.experiment.spec;
    if let Some(decided) = &trial.early_stop {
        return Ok(Some(decided.clone()));
    }
    if spec.stopping().is_none() {
        return Ok(None);
    }
    let name = &trial.experiment;
    let incarnation = record.uid().to_string();
    let trials = state.store.trials(name).map_err(ApiError::internal(format!("read trials of {name}")))?;
    let observations = |index: u32, of: &str| {
        state.store.observations(name, index).map_err(ApiError::internal(format!("read observations of {of}")))
    };
    // One lock per experiment: a full read of one does not hold up another's reports.
    let slot = Arc::clone(state.reports.0.lock().unwrap_or_else(|e| e.into_inner()).entry(name.clone()).or_default());
    let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
    let (kept, reports) = &mut *slot;
    if *kept == incarnation {
        reports.retire(&trials);
        reports.set(spec, trial.index, attempt, &observations(trial.index, &trial.name)?);
    } else {
        let mut read = Reports::default();
        for t in &trials {
            let of = if t.index == trial.index { attempt } else { t.attempts };
            read.set(spec, t.index, of, &observations(t.index, &t.name)?);
        }
        (*kept, *reports) = (incarnation, read);
    }
    Ok(reports.decide(spec, &trials, trial.index))
}

/// Answers a push: a stop is stored with the (still running) trial first; its attempt then ends
/// `EarlyStopped` when the trial exits.
pub(super) fn push_answer(
    state: &ApiState,
    record: &ExperimentRecord,
    trial: &Trial,
    attempt: u32,
) -> Result<PushAnswer> {
    let Some(decision) = decide(state, record, trial, attempt)? else { return Ok(PushAnswer { should_stop: false }) };
    let store = || ApiError::internal(format!("store the early stop of {}", trial.name));
    state
        .store
        .change_trial(&trial.experiment, trial.index, |t| {
            t.early_stop.get_or_insert_with(|| decision.clone());
            Ok::<(), ApiError>(())
        })
        .map_err(store())?;
    Ok(PushAnswer { should_stop: true })
}

/// `POST …/trials/{trial}/report {"step": s, "metrics": {…}}` for `executor: external`: the values
/// are recorded at step `s`; when the rule stops the trial it ends `EarlyStopped` here (with every
/// value it reported) and the answer is `{"shouldStop": true}`: the client stops evaluating it and
/// needs no tell.
async fn report(
    State(state): State<Arc<ApiState>>,
    Path((name, trial_name)): Path<(String, String)>,
    body: String,
) -> Result<Json<PushAnswer>> {
    super::blocking(move || report_now(state, name, trial_name, body)).await
}

fn report_now(state: Arc<ApiState>, name: String, trial_name: String, body: String) -> Result<Json<PushAnswer>> {
    let request: ReportRequest = parse_body(&body, r#"{"step": N, "metrics": {"name": value}}"#)?;
    let record = state.experiment(&name)?;
    let spec = &record.experiment.spec;
    if spec.executor != ExecutorKind::External {
        return Err(ApiError::Conflict(format!(
            "experiment {name} runs its own trials; its trials report by their output or by push, not by report"
        )));
    }
    if request.metrics.is_empty() {
        return Err(ApiError::bad_request("metrics", "is empty; give at least the objective's value at this step"));
    }
    let trial = open_trial(&state, &name, &trial_name)?;
    let attempt = trial.attempts.max(1);
    let now = Timestamp::now();
    let new = observations_of(&request.metrics, attempt, Some(request.step), now)?;
    let store = || ApiError::internal(format!("store the report of {trial_name}"));
    state.store.add_observations(&name, trial.index, &new).map_err(store())?;
    let decision = decide(&state, &record, &trial, attempt)?;
    if let Some(decision) = decision {
        let reported = state.store.observations(&name, trial.index).map_err(store())?;
        let tally = Tally::of_attempt(&reported, attempt);
        let changed = state.store.change_trial(&name, trial.index, |t| {
            if t.phase.is_finished() {
                return Err(ApiError::Conflict(format!("trial {trial_name} has finished ({:?})", t.phase)));
            }
            experiment::record_result(t, spec, &tally);
            t.early_stop = Some(decision.clone());
            experiment::early_stopped(&decision).conclude(t, now);
            Ok(())
        });
        changed.map_err(store())?.transpose()?;
        state.store.flush_writes().map_err(store())?;
        tokio::task::spawn_blocking(move || prepare(&state, &record));
        return Ok(Json(PushAnswer { should_stop: true }));
    }
    state.store.flush_writes().map_err(store())?;
    Ok(Json(PushAnswer { should_stop: false }))
}

#[cfg(test)]
#[path = "early_tests.rs"]
mod tests;
