//! `/api/v1/experiments`: create, list, get, stop, resume, delete.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::types::{DeleteAnswer, Deleted, Deleting, ExperimentList, ExperimentSummary, ResumeRequest};
use super::{ApiError, ApiState, Result, blocking};
use crate::spec::{ExecutorKind, Experiment, ExperimentStatus, Problem};
use crate::store::{Desired, Durability, ExperimentRecord};

/// How long DELETE waits for the controller to stop an experiment's trials and remove it.
const DELETE_WAIT: Duration = Duration::from_secs(30);

pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/api/v1/experiments", post(create).get(list))
        .route("/api/v1/experiments/{name}", get(show).delete(delete))
        .route("/api/v1/experiments/{name}/stop", post(stop))
        .route("/api/v1/experiments/{name}/resume", post(resume))
}

async fn create(State(state): State<Arc<ApiState>>, body: String) -> Result<(StatusCode, Json<Experiment>)> {
    // Parsing and checking a document is CPU work that grows with it, and the store flushes: off
    // the async workers, so a large document never holds up other requests.
    blocking(move || create_now(&state, &body)).await
}

fn create_now(state: &ApiState, body: &str) -> Result<(StatusCode, Json<Experiment>)> {
    let mut experiment = crate::search::parse_document(body).map_err(|e| ApiError::Invalid(e.problems()))?;
    let mut problems = Vec::new();
    if let Some(dir) =
        experiment.spec.trial.working_dir.as_deref().filter(|d| d.starts_with('/') || d.split('/').any(|c| c == ".."))
    {
        problems.push(Problem::new(
            "spec.trial.workingDir",
            format!("{dir:?} must be a relative path below the server's folder (no '..')"),
        ));
    }
    let gpus = experiment.spec.trial.resources.gpu as usize;
    if experiment.spec.executor == ExecutorKind::Local && gpus > state.gpu_capacity {
        problems.push(Problem::new(
            "spec.trial.resources.gpu",
            format!("asks for {gpus} GPU(s) per trial but this server has {}", state.gpu_capacity),
        ));
    }
    problems.extend(state.kube_trials.check(&mut experiment.spec));
    if problems.is_empty() {
        // Local trials run in the server's folder: their folder and program must be there, not
        // only beside the client's spec file (which `tuna submit` has checked already).
        let here = std::env::current_dir().unwrap_or_else(|_| std::path::PathBuf::from("."));
        problems.extend(crate::executor::local::preflight_on_server(&experiment.spec, &here));
    }
    if !problems.is_empty() {
        return Err(ApiError::Invalid(problems));
    }
    let name = experiment.metadata.name.clone().unwrap_or_default();
    let seed = experiment.spec.algorithm.seed.unwrap_or_else(rand::random);
    experiment.status = Some(ExperimentStatus { seed, ..Default::default() });
    let record = ExperimentRecord::new(experiment, None);
    state.forget_search(&name);
    if !state.store.create_experiment(&record).map_err(ApiError::internal(format!("store experiment {name}")))? {
        return Err(ApiError::Conflict(format!(
            "an experiment named {name} exists; delete it first or pick another metadata.name"
        )));
    }
    Ok((StatusCode::CREATED, Json(record.experiment)))
}

async fn list(State(state): State<Arc<ApiState>>) -> Result<Json<ExperimentList>> {
    blocking(move || list_now(&state)).await
}

fn list_now(state: &ApiState) -> Result<Json<ExperimentList>> {
    let records = state.store.experiments().map_err(ApiError::internal("list experiments"))?;
    let experiments = records
        .iter()
        .map(|r| {
            let status = r.experiment.status.clone().unwrap_or_default();
            ExperimentSummary {
                name: r.name().to_string(),
                phase: status.phase,
                algorithm: r.experiment.spec.algorithm.name.to_string(),
                max_trials: r.experiment.spec.max_trials,
                trials: status.trials,
                best_objective: status.best_trial.map(|b| b.objective),
                start_time: status.start_time,
            }
        })
        .collect();
    Ok(Json(ExperimentList { experiments }))
}

async fn show(State(state): State<Arc<ApiState>>, Path(name): Path<String>) -> Result<Json<Experiment>> {
    Ok(Json(state.experiment(&name)?.view()))
}

async fn stop(State(state): State<Arc<ApiState>>, Path(name): Path<String>) -> Result<Json<Experiment>> {
    blocking(move || Ok(Json(desire(&state, &name, |r| r.desired = Desired::Stop)?.view()))).await
}

async fn resume(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    body: String,
) -> Result<Json<Experiment>> {
    blocking(move || resume_now(&state, &name, &body)).await
}

fn resume_now(state: &ApiState, name: &str, body: &str) -> Result<Json<Experiment>> {
    let request: ResumeRequest = if body.trim().is_empty() {
        ResumeRequest::default()
    } else {
        serde_json::from_str(body)
            .map_err(|e| ApiError::bad_request("body", format!("expected {{\"maxTrials\": N}}: {e}")))?
    };
    state.experiment(name)?;
    let created = state.store.trials(name).map_err(ApiError::internal(format!("read trials of {name}")))?.len() as u32;
    if let Some(n) = request.max_trials.filter(|&n| n < created.max(1)) {
        return Err(ApiError::Invalid(vec![Problem::new(
            "maxTrials",
            format!("({n}) is below the {created} trials already created"),
        )]));
    }
    let record = desire(state, name, |r| {
        r.desired = Desired::Run;
        if let Some(n) = request.max_trials {
            r.experiment.spec.max_trials = n;
        }
        if let Some(n) = request.max_failed_trials {
            r.experiment.spec.max_failed_trials = n;
        }
        crate::experiment::reopen(r.experiment.status.get_or_insert_with(Default::default));
        r.exhausted = false;
    })?;
    state.forget_search(name);
    Ok(Json(record.view()))
}

async fn delete(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<DeleteAnswer>)> {
    desire(&state, &name, |r| r.desired = Desired::Delete)?;
    state.forget_search(&name);
    let deadline = tokio::time::Instant::now() + DELETE_WAIT;
    while tokio::time::Instant::now() < deadline {
        if state.store.experiment(&name).map_err(ApiError::internal(format!("read experiment {name}")))?.is_none() {
            return Ok((StatusCode::OK, Json(DeleteAnswer::Deleted(Deleted { deleted: name }))));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let message = "the controller is still stopping its trials".to_string();
    Ok((StatusCode::ACCEPTED, Json(DeleteAnswer::Deleting(Deleting { deleting: name, message }))))
}

/// Records what a user asked for; 404 when there is no such experiment.
fn desire(state: &ApiState, name: &str, change: impl Fn(&mut ExperimentRecord)) -> Result<ExperimentRecord> {
    state
        .store
        .update_experiment(name, Durability::Flushed, change)
        .map_err(ApiError::internal(format!("update experiment {name}")))?
        .ok_or_else(|| ApiError::NotFound(format!("no experiment named {name}")))
}
