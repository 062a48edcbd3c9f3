//! Liveness, readiness, Prometheus metrics and the OpenAPI document.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use super::{ApiError, ApiState, Result};

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

/// The instruments as they stand: counters and gauges moved as things happen (see
/// `crate::instruments`). The handler is given no state on purpose: a scrape cannot read the store,
/// however many trials it holds.
async fn metrics() -> Result<impl IntoResponse> {
    let text = crate::instruments::global()
        .encode()
        .map_err(|e| ApiError::Internal { doing: "encode metrics".into(), source: Box::new(e) })?;
    Ok(([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text))
}
