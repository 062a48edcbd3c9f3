//! Liveness, readiness, Prometheus metrics and the OpenAPI document.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{ApiError, ApiState, Result, blocking};
use crate::trial::TrialPhase;

pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route("/api/v1/openapi.json", get(openapi))
}

async fn openapi(State(state): State<Arc<ApiState>>) -> Json<serde_json::Value> {
    Json(super::openapi::document(state.token.is_some()))
}

async fn ready(State(state): State<Arc<ApiState>>) -> impl IntoResponse {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    }
}

/// The API's histograms plus gauges from the experiments' statuses at scrape time (each status
/// carries its trial counts, kept by the controller as trials change): a scrape reads one record
/// per experiment, never a trial.
async fn metrics(State(state): State<Arc<ApiState>>) -> Result<impl IntoResponse> {
    blocking(move || metrics_now(&state)).await
}

fn metrics_now(state: &ApiState) -> Result<impl IntoResponse + use<>> {
    let mut registry = Registry::with_prefix("tuna");
    registry.register("api_request_duration_seconds", "API request durations", state.metrics.requests.clone());
    registry.register("suggestion_duration_seconds", "Time to compute suggestions", state.metrics.suggestions.clone());
    let experiments = Family::<Vec<(String, String)>, Gauge>::default();
    let trials = Family::<Vec<(String, String)>, Gauge>::default();
    for record in state.store.experiments().map_err(ApiError::internal("list experiments"))? {
        let status = record.experiment.status.unwrap_or_default();
        experiments.get_or_create(&vec![("phase".into(), format!("{:?}", status.phase))]).inc();
        let c = &status.trials;
        for (phase, n) in [
            (TrialPhase::Pending, c.pending),
            (TrialPhase::Running, c.running),
            (TrialPhase::Succeeded, c.succeeded),
            (TrialPhase::Failed, c.failed),
            (TrialPhase::Stopped, c.stopped),
            (TrialPhase::Interrupted, c.interrupted),
            (TrialPhase::EarlyStopped, c.early_stopped),
        ] {
            trials.get_or_create(&vec![("phase".into(), format!("{phase:?}"))]).inc_by(i64::from(n));
        }
    }
    for phase in [TrialPhase::Succeeded, TrialPhase::Failed] {
        let _ = trials.get_or_create(&vec![("phase".into(), format!("{phase:?}"))]);
    }
    registry.register("experiments", "Experiments by phase", experiments);
    registry.register("trials", "Trials by phase", trials);
    let mut text = String::new();
    encode(&mut text, &registry)
        .map_err(|e| ApiError::Internal { doing: "encode metrics".into(), source: Box::new(e) })?;
    Ok(([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text))
}
