//! `/api/v1/experiments/{name}/plots/*`: plot-ready JSON (`crate::plots`), the one source of the
//! dashboard's charts and of `tuna plot`'s files.
//!
//! ```text
//! store (experiment, trials, observations) ──▶ plots::{history, parameters, importance, curve} ──▶ JSON
//! ```

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};

use super::{ApiError, ApiState, Result};
use crate::plots::{self, History, Importance, Intermediate, Parameters};
use crate::store::ExperimentRecord;
use crate::trial::Trial;

pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/api/v1/experiments/{name}/plots/history", get(history))
        .route("/api/v1/experiments/{name}/plots/parameters", get(parameters))
        .route("/api/v1/experiments/{name}/plots/importance", get(importance))
        .route("/api/v1/experiments/{name}/plots/intermediate", get(intermediate))
}

fn read(state: &ApiState, name: &str) -> Result<(ExperimentRecord, Vec<Trial>)> {
    let record = state.experiment(name)?;
    let trials = state.store.trials(name).map_err(ApiError::internal(format!("read trials of {name}")))?;
    Ok((record, trials))
}

async fn history(State(state): State<Arc<ApiState>>, Path(name): Path<String>) -> Result<Json<History>> {
    let (record, trials) = read(&state, &name)?;
    Ok(Json(plots::history(&record.experiment, &trials)))
}

async fn parameters(State(state): State<Arc<ApiState>>, Path(name): Path<String>) -> Result<Json<Parameters>> {
    let (record, trials) = read(&state, &name)?;
    Ok(Json(plots::parameters(&record.experiment, &trials)))
}

async fn importance(State(state): State<Arc<ApiState>>, Path(name): Path<String>) -> Result<Json<Importance>> {
    let (record, trials) = read(&state, &name)?;
    Ok(Json(plots::importance(&plots::parameters(&record.experiment, &trials))))
}

async fn intermediate(State(state): State<Arc<ApiState>>, Path(name): Path<String>) -> Result<Json<Intermediate>> {
    let (record, trials) = read(&state, &name)?;
    let metric = record.experiment.spec.objective.metric.clone();
    let mut curves = Vec::with_capacity(trials.len());
    for trial in &trials {
        let observations = state
            .store
            .observations(&name, trial.index)
            .map_err(ApiError::internal(format!("read observations of {}", trial.name)))?;
        curves.push(plots::curve(trial, &metric, &observations));
    }
    Ok(Json(Intermediate { metric, curves }))
}
