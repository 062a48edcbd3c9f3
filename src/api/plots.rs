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

use super::{ApiError, ApiState, Result, blocking};
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

// Each reads every trial (and the curves every observation): store scans and CPU work, so on the
// blocking pool, not on an async worker that also serves every other request.

async fn history(State(state): State<Arc<ApiState>>, Path(name): Path<String>) -> Result<Json<History>> {
    blocking(move || {
        let (record, trials) = read(&state, &name)?;
        Ok(Json(plots::history(&record.experiment, &trials)))
    })
    .await
}

async fn parameters(State(state): State<Arc<ApiState>>, Path(name): Path<String>) -> Result<Json<Parameters>> {
    blocking(move || {
        let (record, trials) = read(&state, &name)?;
        Ok(Json(plots::parameters(&record.experiment, &trials)))
    })
    .await
}

async fn importance(State(state): State<Arc<ApiState>>, Path(name): Path<String>) -> Result<Json<Importance>> {
    blocking(move || {
        let (record, trials) = read(&state, &name)?;
        Ok(Json(plots::importance(&plots::parameters(&record.experiment, &trials))))
    })
    .await
}

async fn intermediate(State(state): State<Arc<ApiState>>, Path(name): Path<String>) -> Result<Json<Intermediate>> {
    blocking(move || intermediate_now(&state, &name)).await
}

fn intermediate_now(state: &ApiState, name: &str) -> Result<Json<Intermediate>> {
    let (record, trials) = read(state, name)?;
    let metric = record.experiment.spec.objective.metric.clone();
    let mut curves = Vec::with_capacity(trials.len());
    for trial in &trials {
        let observations = state
            .store
            .observations(name, trial.index)
            .map_err(ApiError::internal(format!("read observations of {}", trial.name)))?;
        curves.push(plots::curve(trial, &metric, &observations));
    }
    Ok(Json(Intermediate { metric, curves }))
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use serde_json::{Value, json};

    use super::super::harness::Api;

    async fn get(api: &Api, uri: &str) -> (StatusCode, Value) {
        let (status, body) = api.send("GET", uri, "", None).await;
        (status, serde_json::from_slice(&body).unwrap())
    }

    /// An ask/tell experiment with three trials: told 0.5, told 0.2, failed.
    async fn told(api: &Api) -> Vec<f64> {
        let doc = json!({"apiVersion": "tuna.dev/v1alpha1", "kind": "Experiment", "metadata": {"name": "p"},
            "spec": {"objective": {"metric": "value", "goal": "minimize"}, "algorithm": {"name": "random", "seed": 1},
                     "maxTrials": 3, "parallelTrials": 3, "executor": "external",
                     "parameters": [{"name": "x", "type": "double", "min": 0, "max": 1}]}});
        assert_eq!(api.send("POST", "/api/v1/experiments", &doc.to_string(), None).await.0, StatusCode::CREATED);
        let (_, asked) = api.send("POST", "/api/v1/experiments/p/suggestions", r#"{"count": 3}"#, None).await;
        let asked: Value = serde_json::from_slice(&asked).unwrap();
        let xs: Vec<f64> =
            asked["trials"].as_array().unwrap().iter().map(|t| t["parameters"]["x"].as_f64().unwrap()).collect();
        assert_eq!(xs.len(), 3);
        for (trial, body) in [
            ("p-0000", r#"{"metrics": {"value": 0.5}}"#),
            ("p-0001", r#"{"metrics": {"value": 0.2}}"#),
            ("p-0002", r#"{"state": "failed", "reason": "Diverged"}"#),
        ] {
            let uri = format!("/api/v1/experiments/p/trials/{trial}/complete");
            assert_eq!(api.send("POST", &uri, body, None).await.0, StatusCode::OK, "{trial}");
        }
        xs
    }

    #[tokio::test]
    async fn the_plot_routes_answer_the_history_axes_importance_and_curves_of_the_stored_trials() {
        let api = Api::new(None, 1);
        let xs = told(&api).await;
        let (status, history) = get(&api, "/api/v1/experiments/p/plots/history").await;
        assert_eq!(status, StatusCode::OK, "{history}");
        let seen: Vec<(&str, Value)> = history["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["phase"].as_str().unwrap(), p["best"].clone()))
            .collect();
        assert_eq!(seen, [("Succeeded", json!(0.5)), ("Succeeded", json!(0.2)), ("Failed", json!(0.2))]);

        let (_, parameters) = get(&api, "/api/v1/experiments/p/plots/parameters").await;
        assert_eq!(parameters["axes"][0]["name"], "x");
        let placed: Vec<f64> =
            parameters["trials"].as_array().unwrap().iter().map(|t| t["values"][0].as_f64().unwrap()).collect();
        assert_eq!(placed, xs, "each trial where it was asked");

        let (_, importance) = get(&api, "/api/v1/experiments/p/plots/importance").await;
        assert_eq!(importance["trials"], 2, "the failed trial is left out");
        assert!(importance["method"].as_str().unwrap().contains("fANOVA"), "{importance}");

        let (_, intermediate) = get(&api, "/api/v1/experiments/p/plots/intermediate").await;
        assert_eq!(intermediate["metric"], "value");
        assert_eq!(intermediate["curves"].as_array().unwrap().len(), 3, "a curve per trial, empty or not");
    }

    #[tokio::test]
    async fn a_plot_of_a_missing_experiment_is_a_404_with_its_sentence() {
        let api = Api::new(None, 1);
        let (status, body) = get(&api, "/api/v1/experiments/nope/plots/history").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["message"], "no experiment named nope");
    }
}
