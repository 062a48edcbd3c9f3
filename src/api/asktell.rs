//! Ask/tell for `executor: external` experiments, and metrics pushed by running trials.
//!
//! Ask creates trials (stored before they are returned, never more than `maxTrials` in all); tell
//! records a trial's final metrics or its failure. A push carries the trial's own token
//! (`TUNA_TRIAL_TOKEN`), which is good for that trial only, and only while it runs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{ApiError, ApiState, Result, bearer};
use crate::controller::history;
use crate::metrics::Tally;
use crate::search;
use crate::space::Assignment;
use crate::spec::{ExecutorKind, ExperimentPhase};
use crate::store::Durability;
use crate::trial::{Observation, Trial, TrialPhase, reason};

/// The most suggestions one ask returns.
const MAX_ASK: usize = 1000;

pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/api/v1/experiments/{name}/suggestions", post(ask))
        .route("/api/v1/experiments/{name}/trials/{trial}/complete", post(tell))
}

/// Pushes authenticate with the trial's token, not the server's, so they sit outside `authorize`.
pub fn push_routes() -> Router<Arc<ApiState>> {
    Router::new().route("/api/v1/experiments/{name}/trials/{trial}/metrics", post(push))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AskRequest {
    #[serde(default = "one")]
    count: usize,
}

fn one() -> usize {
    1
}

#[derive(Serialize)]
struct Suggestion {
    name: String,
    parameters: Assignment,
}

async fn ask(State(state): State<Arc<ApiState>>, Path(name): Path<String>, body: String) -> Result<Json<Value>> {
    let request: AskRequest = parse_body(&body, r#"{"count": N}"#)?;
    if request.count == 0 || request.count > MAX_ASK {
        return Err(ApiError::bad_request("count", format!("must be between 1 and {MAX_ASK}")));
    }
    let slot = state.ask_slot(&name);
    let mut search = slot.lock().await;
    let record = state.experiment(&name)?;
    let spec = &record.experiment.spec;
    if spec.executor != ExecutorKind::External {
        return Err(ApiError::Conflict(format!(
            "experiment {name} runs its own trials (executor: local); suggestions are for executor: external"
        )));
    }
    let status = record.experiment.status.clone().unwrap_or_default();
    let trials = state.store.trials(&name).map_err(ApiError::internal(format!("read trials of {name}")))?;
    let open = !matches!(status.phase, ExperimentPhase::Succeeded | ExperimentPhase::Failed | ExperimentPhase::Stopped);
    // Never more than maxTrials in all, nor more than parallelTrials open at once.
    let open_now = trials.iter().filter(|t| !t.phase.is_finished()).count();
    let wanted = request
        .count
        .min((spec.max_trials as usize).saturating_sub(trials.len()))
        .min((spec.parallel_trials as usize).saturating_sub(open_now));
    if !open || wanted == 0 {
        return Ok(Json(json!({ "trials": [] })));
    }
    let started = Instant::now();
    let search = match search.as_mut() {
        Some(s) => s,
        None => search.insert(search::build(spec, status.seed).map_err(|e| ApiError::Conflict(e.to_string()))?),
    };
    let fresh = search.suggest(&history(spec, &trials), wanted).map_err(|e| ApiError::Conflict(e.to_string()))?;
    let labels = vec![("algorithm".to_string(), spec.algorithm.name.clone())];
    state.metrics.suggestions.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
    if fresh.len() < wanted {
        state
            .store
            .update_experiment(&name, Durability::Flushed, |r| r.exhausted = true)
            .map_err(ApiError::internal(format!("update experiment {name}")))?;
    }
    let now = Timestamp::now();
    let mut out = Vec::with_capacity(fresh.len());
    for (i, parameters) in fresh.into_iter().enumerate() {
        let mut trial = Trial::new(&name, (trials.len() + i) as u32, parameters, now);
        trial.move_to(TrialPhase::Running);
        trial.attempts = 1;
        trial.started_at = Some(now);
        state.store.put_trial(&trial).map_err(ApiError::internal(format!("store trial {}", trial.name)))?;
        out.push(Suggestion { name: trial.name, parameters: trial.parameters });
    }
    Ok(Json(json!({ "trials": out })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TellRequest {
    #[serde(default)]
    metrics: BTreeMap<String, f64>,
    /// Where the trial's model is (`s3://…`, a path on a shared volume).
    artifact: Option<String>,
    /// `succeeded` (default) or `failed`.
    state: Option<String>,
    reason: Option<String>,
}

async fn tell(
    State(state): State<Arc<ApiState>>,
    Path((name, trial_name)): Path<(String, String)>,
    body: String,
) -> Result<Json<Value>> {
    let request: TellRequest =
        parse_body(&body, r#"{"metrics": {"name": value}} or {"state": "failed", "reason": "…"}"#)?;
    let record = state.experiment(&name)?;
    let spec = &record.experiment.spec;
    if spec.executor != ExecutorKind::External {
        return Err(ApiError::Conflict(format!(
            "experiment {name} runs its own trials; only executor: external trials are completed by clients"
        )));
    }
    let mut trial = open_trial(&state, &name, &trial_name)?;
    let attempt = trial.attempts.max(1);
    record_metrics(&state, &trial, attempt, &request.metrics, None)?;
    record_artifact(&state, &trial, request.artifact.as_deref())?;
    let observations = state
        .store
        .observations(&name, trial.index)
        .map_err(ApiError::internal(format!("read observations of {trial_name}")))?;
    let tally = Tally::of_attempt(&observations, attempt);
    trial.metrics = tally.latest();
    trial.objective = tally.value(&spec.objective.metric, spec.objective.strategy());
    let (phase, why, message) = match request.state.as_deref() {
        None | Some("succeeded") if trial.objective.is_some() => (TrialPhase::Succeeded, None, None),
        None | Some("succeeded") => (
            TrialPhase::Failed,
            Some(reason::METRICS_UNAVAILABLE.to_string()),
            Some(format!("completed without {}", spec.objective.metric)),
        ),
        Some("failed") => (TrialPhase::Failed, Some(request.reason.clone().unwrap_or_else(|| "Failed".into())), None),
        Some(other) => return Err(ApiError::bad_request("state", format!("{other:?} is not succeeded or failed"))),
    };
    trial.move_to(phase);
    trial.reason = why;
    trial.message = message;
    trial.finished_at = Some(Timestamp::now());
    state.store.put_trial(&trial).map_err(ApiError::internal(format!("store trial {trial_name}")))?;
    Ok(Json(json!({ "name": trial.name, "phase": trial.phase, "objective": trial.objective })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PushRequest {
    #[serde(default)]
    metrics: BTreeMap<String, f64>,
    step: Option<i64>,
    /// Where the trial's model is (`s3://…`, a path on a shared volume).
    artifact: Option<String>,
}

async fn push(
    State(state): State<Arc<ApiState>>,
    Path((name, trial_name)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Result<Json<Value>> {
    let Some(token) = bearer(&headers) else {
        return Err(ApiError::Unauthorized("a push needs `Authorization: Bearer $TUNA_TRIAL_TOKEN`".into()));
    };
    if !state.secret.verify(&name, &trial_name, token) {
        return Err(ApiError::Forbidden(format!("this token is not trial {trial_name}'s")));
    }
    let request: PushRequest = parse_body(&body, r#"{"metrics": {"name": value}, "step": N}"#)?;
    let trial = open_trial(&state, &name, &trial_name)?;
    // A trial pushes only once started; if the start is not recorded yet, this is its next attempt.
    let attempt = if trial.phase == TrialPhase::Pending { trial.attempts + 1 } else { trial.attempts };
    record_metrics(&state, &trial, attempt, &request.metrics, request.step)?;
    record_artifact(&state, &trial, request.artifact.as_deref())?;
    Ok(Json(json!({ "shouldStop": false })))
}

/// A trial that may still report (404 when missing, 409 when finished).
fn open_trial(state: &ApiState, name: &str, trial: &str) -> Result<Trial> {
    let trial = state.trial(name, trial)?;
    if trial.phase.is_finished() {
        return Err(ApiError::Conflict(format!(
            "trial {} has finished ({:?}); it takes no more metrics",
            trial.name, trial.phase
        )));
    }
    Ok(trial)
}

fn record_metrics(
    state: &ApiState,
    trial: &Trial,
    attempt: u32,
    metrics: &BTreeMap<String, f64>,
    step: Option<i64>,
) -> Result<()> {
    if let Some((metric, _)) = metrics.iter().find(|(_, v)| !v.is_finite()) {
        return Err(ApiError::bad_request(format!("metrics.{metric}"), "must be a finite number"));
    }
    let time = Timestamp::now();
    let observations: Vec<Observation> = metrics
        .iter()
        .map(|(metric, &value)| Observation { attempt, metric: metric.clone(), value, step, time })
        .collect();
    state
        .store
        .add_observations(&trial.experiment, trial.index, &observations)
        .and_then(|()| state.store.flush_observations())
        .map_err(ApiError::internal(format!("store metrics of {}", trial.name)))
}

fn record_artifact(state: &ApiState, trial: &Trial, uri: Option<&str>) -> Result<()> {
    let Some(uri) = uri else { return Ok(()) };
    if uri.trim().is_empty() || uri.len() > 2048 {
        return Err(ApiError::bad_request("artifact", "must be a URI of at most 2048 characters"));
    }
    state
        .store
        .set_artifact(&trial.experiment, trial.index, uri)
        .map_err(ApiError::internal(format!("store the artifact of {}", trial.name)))
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &str, shape: &str) -> Result<T> {
    let text = if body.trim().is_empty() { "{}" } else { body };
    serde_json::from_str(text).map_err(|e| ApiError::bad_request("body", format!("expected {shape}: {e}")))
}
