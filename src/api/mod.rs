//! The REST API (axum): experiments, their trials and leaderboard, ask/tell and pushed metrics,
//! plot-ready data (`plots`); and the dashboard that reads it (`ui`).
//!
//! ```text
//! HTTP ──▶ auth (server token; push routes: the trial's own token) ──▶ handler ──▶ store
//!                                                                        (intent)   │
//!                                               controller (follows the store) ◀────┘
//! ```
//! Handlers read the store and record intent in it; they never run trials. Ask/tell runs the
//! search in-process (pure and fast) under a per-experiment lock.

mod asktell;
mod early;
mod error;
mod experiments;
mod health;
pub mod kube_trials;
pub mod openapi;
mod plots;
mod promote;
mod serve;
mod trials;
pub mod types;
mod ui;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::Response;
use tokio::sync::Mutex;

pub use asktell::warm;
pub use error::{ApiError, Result};
pub use serve::{Bounds, serve, tls_config};

use crate::store::{ExperimentRecord, Store};
use crate::token::TrialSecret;
use crate::trial::Trial;

/// The largest request body accepted (an experiment document is a few kB).
pub const BODY_LIMIT: usize = 1 << 20;

/// Every route: method, path (axum syntax), summary. The OpenAPI document is built from this list.
pub const ROUTES: &[(&str, &str, &str)] = &[
    ("get", "/healthz", "Liveness"),
    ("get", "/readyz", "Readiness: the store is open and the controller runs"),
    ("get", "/metrics", "Prometheus metrics"),
    ("get", "/api/v1/openapi.json", "This document"),
    ("post", "/api/v1/experiments", "Create an experiment (JSON or YAML body)"),
    ("get", "/api/v1/experiments", "List experiments"),
    ("get", "/api/v1/experiments/{name}", "An experiment with its status"),
    ("delete", "/api/v1/experiments/{name}", "Stop an experiment's trials, then remove its records"),
    ("post", "/api/v1/experiments/{name}/stop", "Stop an experiment"),
    ("post", "/api/v1/experiments/{name}/resume", "Resume an experiment, optionally with a larger maxTrials"),
    ("get", "/api/v1/experiments/{name}/leaderboard", "Trials ranked by the objective (Accept: text/csv for CSV)"),
    ("get", "/api/v1/experiments/{name}/trials", "Every trial"),
    ("get", "/api/v1/experiments/{name}/trials/{trial}", "One trial"),
    ("get", "/api/v1/experiments/{name}/trials/{trial}/observations", "Every value a trial reported"),
    (
        "get",
        "/api/v1/experiments/{name}/trials/{trial}/logs",
        "A trial's output (follow=true streams it; tail=N: its last N lines)",
    ),
    ("post", "/api/v1/experiments/{name}/suggestions", "Ask: new trials for an external experiment"),
    ("post", "/api/v1/experiments/{name}/trials/{trial}/complete", "Tell: a trial's final metrics or failure"),
    (
        "post",
        "/api/v1/experiments/{name}/trials/{trial}/report",
        "Report: an external trial's values at a step; answers shouldStop",
    ),
    (
        "post",
        "/api/v1/experiments/{name}/trials/{trial}/metrics",
        "Push metrics (the trial's own token); answers shouldStop",
    ),
    ("post", "/api/v1/experiments/{name}/promote", "Promote a trial (the best when none is named) to serving"),
    ("post", "/api/v1/experiments/{name}/rollback", "Serve an earlier version again"),
    ("get", "/api/v1/experiments/{name}/promotions", "The promotion history and what is served"),
    ("get", "/api/v1/experiments/{name}/plots/history", "Plot data: each trial's objective and the best so far"),
    (
        "get",
        "/api/v1/experiments/{name}/plots/parameters",
        "Plot data: the parameter axes and each trial's coordinates (parallel coordinates, slices, contours)",
    ),
    (
        "get",
        "/api/v1/experiments/{name}/plots/importance",
        "Plot data: each parameter's importance (first-order fANOVA over binned marginals)",
    ),
    ("get", "/api/v1/experiments/{name}/plots/intermediate", "Plot data: each trial's objective metric by step"),
];

/// An external experiment's search, created on its first ask; the lock makes asks take turns.
type AskSlot = Arc<Mutex<asktell::Asker>>;

/// What every handler shares.
pub struct ApiState {
    pub store: Store,
    /// The token every `/api` call needs, when set.
    pub token: Option<String>,
    pub secret: TrialSecret,
    /// GPUs the local executor can hand out (a spec asking for more is invalid).
    pub gpu_capacity: usize,
    /// Set once the controller runs.
    pub ready: AtomicBool,
    /// Why promote and rollback are refused here, when they are: no promoter carries them out
    /// (the dashboard of a `tuna run --ui`). A request would otherwise wait, then stay recorded.
    pub no_promoter: Option<String>,
    /// Where and as whom Kubernetes experiments submitted here run (none, unless configured).
    pub kube_trials: kube_trials::TrialPolicy,
    /// Each experiment's step reports, kept between the reports judged by its early-stopping rule.
    reports: early::ReportCache,
    /// One search per external experiment, kept between asks (warm state, one asker at a time).
    asks: std::sync::Mutex<HashMap<String, AskSlot>>,
    /// Failed authentications in the current second (the server token, trial tokens).
    failures: std::sync::Mutex<(Instant, u32)>,
}

/// Failed authentications answered per second before the rest get 429: a guesser is slowed to a
/// crawl, while a misconfigured client still sees its 401/403.
const FAILED_AUTH_PER_SECOND: u32 = 20;

impl ApiState {
    pub fn new(store: Store, token: Option<String>, secret: TrialSecret, gpu_capacity: usize) -> Self {
        Self {
            store,
            token,
            secret,
            gpu_capacity,
            ready: AtomicBool::new(false),
            no_promoter: None,
            kube_trials: kube_trials::TrialPolicy::default(),
            reports: Default::default(),
            asks: Default::default(),
            failures: std::sync::Mutex::new((Instant::now(), 0)),
        }
    }

    /// Counts a failed authentication; `Err(429)` once this second's allowance is spent.
    fn failed_auth(&self) -> Result<()> {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let (since, count) = &mut *failures;
        if since.elapsed() >= std::time::Duration::from_secs(1) {
            (*since, *count) = (Instant::now(), 0);
        }
        *count += 1;
        if *count > FAILED_AUTH_PER_SECOND {
            return Err(ApiError::TooManyRequests("too many failed authentications; retry in a second".into()));
        }
        Ok(())
    }

    fn ask_slot(&self, name: &str) -> AskSlot {
        let mut asks = self.asks.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(asks.entry(name.to_string()).or_default())
    }

    fn forget_search(&self, name: &str) {
        self.asks.lock().unwrap_or_else(|e| e.into_inner()).remove(name);
        self.reports.0.lock().unwrap_or_else(|e| e.into_inner()).remove(name);
    }

    fn experiment(&self, name: &str) -> Result<ExperimentRecord> {
        let read = self.store.experiment(name).map_err(ApiError::internal(format!("read experiment {name}")))?;
        read.ok_or_else(|| {
            // A custom resource's experiment is `namespace/name`: name the ones the caller may mean.
            let suffix = format!("/{name}");
            let names = self.store.experiment_names().unwrap_or_default();
            let near: Vec<String> = names.into_iter().filter(|n| n.ends_with(&suffix)).collect();
            let hint = match near.as_slice() {
                [] => String::new(),
                many => format!("; an Experiment resource's is namespace/name: {}", many.join(", ")),
            };
            ApiError::NotFound(format!("no experiment named {name}{hint}"))
        })
    }

    /// A trial by its name (`<experiment>-<number>`; for `namespace/name`, also `name-<number>`).
    fn trial(&self, name: &str, trial: &str) -> Result<Trial> {
        let missing = || ApiError::NotFound(format!("experiment {name} has no trial named {trial}"));
        let short = crate::spec::name_in_namespace(name);
        let index: u32 = [name, short]
            .iter()
            .find_map(|prefix| trial.strip_prefix(prefix)?.strip_prefix('-')?.parse().ok())
            .ok_or_else(missing)?;
        self.store
            .trial(name, index)
            .map_err(ApiError::internal(format!("read trial {trial}")))?
            .filter(|t| t.name == trial || crate::spec::name_in_namespace(&t.name) == trial)
            .ok_or_else(missing)
    }
}

#[cfg(test)]
impl ApiState {
    /// The token a trial's open attempt was given (as the push route checks it).
    pub(crate) fn trial_token(&self, experiment: &str, trial: &str) -> String {
        let record = self.experiment(experiment).unwrap_or_else(|e| panic!("{e}"));
        let t = self.trial(experiment, trial).unwrap_or_else(|e| panic!("{e}"));
        let attempt = if t.phase == crate::trial::TrialPhase::Pending { t.attempts + 1 } else { t.attempts };
        let holder = crate::token::Holder { experiment, incarnation: record.uid(), trial, attempt };
        self.secret.token(&holder)
    }
}

/// The whole API, ready to serve or to call with `oneshot` in tests.
pub fn router(state: Arc<ApiState>) -> Router {
    let api = Router::new()
        .merge(experiments::routes())
        .merge(trials::routes())
        .merge(asktell::routes())
        .merge(early::routes())
        .merge(promote::routes())
        .merge(plots::routes())
        .route_layer(middleware::from_fn_with_state(Arc::clone(&state), authorize));
    Router::new()
        .merge(api)
        .merge(asktell::push_routes())
        .merge(health::routes())
        .merge(ui::routes())
        .fallback(|| async { ApiError::NotFound("no such route; see /api/v1/openapi.json".into()) })
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(error::one_shape))
        .layer(middleware::from_fn(measure))
        .with_state(state)
}

/// Checks the server token on every `/api` route except pushes (which carry the trial's token).
async fn authorize(State(state): State<Arc<ApiState>>, request: Request, next: Next) -> Result<Response> {
    if let Some(expected) = &state.token {
        match bearer(request.headers()) {
            None => {
                state.failed_auth()?;
                return Err(ApiError::Unauthorized(
                    "this server needs `Authorization: Bearer <token>` (tuna --token)".into(),
                ));
            }
            Some(given) if !constant_time_eq(given.as_bytes(), expected.as_bytes()) => {
                state.failed_auth()?;
                return Err(ApiError::Unauthorized("the bearer token is not this server's token".into()));
            }
            Some(_) => {}
        }
    }
    Ok(next.run(request).await)
}

/// Records every request's duration by route template, method and status class.
async fn measure(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_string();
    let method = request.method().to_string();
    let start = Instant::now();
    let response = next.run(request).await;
    crate::instruments::global().request(&route, &method, response.status().as_u16(), start.elapsed().as_secs_f64());
    response
}

/// Runs a handler's store work on the blocking pool: sled's reads may wait for the disk, its
/// flushes always do (an fsync per acknowledged write), and a scan, a ranking, a model fit or a
/// document's checks is CPU work; on an async worker any of them would hold up every request that
/// worker serves (`/healthz` included).
///
/// Measured against the alternatives (`benches/server_load.py`, 2 cores shared with 50 client
/// threads): running ask and tell on the worker itself gave a 50-client p50 of 9.6 ms against
/// 32 ms here, since each hop to the pool waits for the scheduler on a busy machine; and
/// `block_in_place`, as fast as that, spread each request's allocations over ever-new threads, and
/// glibc's per-thread arenas kept what they freed: 329 MB at 100,000 trials against 221 MB here.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::Internal { doing: "answer the request".into(), source: Box::new(e) })?
}

fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers.get(AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod harness;
#[cfg(test)]
mod tests;
