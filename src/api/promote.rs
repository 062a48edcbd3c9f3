//! `/promote`, `/rollback` and `/promotions`: the API records the request in the store; the
//! promoter carries it out and records the outcome, which the call waits for.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::types::{PromoteAnswer, PromoteRequest, PromotionHistory, RollbackRequest};
use super::{ApiError, ApiState, Result};
use crate::store::{Durability, PromotionRequest};

/// How long a promotion call waits for the promoter when it serves locally (a new version must
/// start and become ready) or not at all.
const WAIT: Duration = Duration::from_secs(60);
/// The most a call waits for a Kubernetes rollout: a longer `progressDeadline` still rolls out,
/// and `GET …/promotions` (or the Experiment's status) tells the end.
const MAX_WAIT: Duration = Duration::from_secs(3600);

/// How long a promotion of this experiment may take: on Kubernetes its rollout may use the whole
/// progress deadline, and a failed one a rollback after it, each with the promoter's margin.
fn wait_for(record: &crate::store::ExperimentRecord) -> Duration {
    let spec = &record.experiment.spec;
    if !spec.serves_on_kubernetes() {
        return WAIT;
    }
    let deadline = spec.serve().map_or(crate::spec::ServeSpec::DEFAULT_PROGRESS_DEADLINE, |s| s.progress_deadline());
    (deadline * 2 + WAIT).min(MAX_WAIT)
}

pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/api/v1/experiments/{name}/promote", post(promote))
        .route("/api/v1/experiments/{name}/rollback", post(rollback))
        .route("/api/v1/experiments/{name}/promotions", get(history))
}

async fn promote(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    body: String,
) -> Result<Json<PromoteAnswer>> {
    let request: PromoteRequest = parse(&body, r#"{"trial": "NAME"} (or {} for the best trial)"#)?;
    ask(&state, &name, request.trial, None).await
}

async fn rollback(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    body: String,
) -> Result<Json<PromoteAnswer>> {
    let request: RollbackRequest = parse(&body, r#"{"to": "v1"} (or {} for the previous version)"#)?;
    let to = match &request.to {
        None => 0,
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.trim_start_matches('v').parse().ok()))
            .filter(|n| *n > 0)
            .ok_or_else(|| ApiError::bad_request("to", format!("{v} is not a version such as v1")))?
            as u32,
    };
    ask(&state, &name, None, Some(to)).await
}

/// Records the request, then waits for the promoter's outcome of it.
async fn ask(
    state: &ApiState,
    name: &str,
    trial: Option<String>,
    rollback_to: Option<u32>,
) -> Result<Json<PromoteAnswer>> {
    let current = state.experiment(name)?;
    if let Some(why) = &state.no_promoter {
        return Err(ApiError::Conflict(why.clone()));
    }
    let id = current
        .promotion_request
        .as_ref()
        .map_or(0, |r| r.id)
        .max(current.promotion_outcome.as_ref().map_or(0, |o| o.id))
        + 1;
    let request = PromotionRequest { id, trial, rollback_to, by: "api".into() };
    state
        .store
        .update_experiment(name, Durability::Flushed, |r| r.promotion_request = Some(request.clone()))
        .map_err(ApiError::internal(format!("record a promotion of {name}")))?;
    let wait = wait_for(&current);
    let deadline = tokio::time::Instant::now() + wait;
    while tokio::time::Instant::now() < deadline {
        let record = state.experiment(name)?;
        if let Some(outcome) = record.promotion_outcome.filter(|o| o.id == id) {
            if !outcome.ok {
                return Err(ApiError::Conflict(outcome.message));
            }
            let version = outcome.version.map(|v| format!("v{v}"));
            return Ok(Json(PromoteAnswer { version, message: outcome.message, serving: record.serving }));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Err(ApiError::Conflict(format!(
        "the promotion of {name} is still in progress after {}s; see GET …/promotions",
        wait.as_secs()
    )))
}

async fn history(State(state): State<Arc<ApiState>>, Path(name): Path<String>) -> Result<Json<PromotionHistory>> {
    let record = state.experiment(&name)?;
    let promotions =
        state.store.promotions(&name).map_err(ApiError::internal(format!("read the promotions of {name}")))?;
    Ok(Json(PromotionHistory { experiment: name, serving: record.serving, promotions }))
}

fn parse<T: serde::de::DeserializeOwned + Default>(body: &str, shape: &str) -> Result<T> {
    if body.trim().is_empty() {
        return Ok(T::default());
    }
    serde_json::from_str(body).map_err(|e| ApiError::bad_request("body", format!("expected {shape}: {e}")))
}
