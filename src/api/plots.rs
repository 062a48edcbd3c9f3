//! `/api/v1/experiments/{name}/plots/*`: plot-ready JSON (`crate::plots`), the one source of the
//! dashboard's charts and of `tuna plot`'s files.
//!
//! ```text
//! store.revision(name) ─ If-None-Match equal? ──▶ 304, nothing read
//!                      └▶ store (experiment, trials one at a time, observations)
//!                           ──▶ plots::{history, parameters, importance, curve} ──▶ JSON + ETag
//! {intermediate,parameters}?since=REV ──▶ store.changed_since(name, REV) ──▶ only those trials' curves
//! ```
//! Every plot answer carries the experiment's revision as its `ETag` (see `store::Revision`: it
//! changes with every write of the experiment, its trials or observations). A poller that sends it
//! back in `If-None-Match` gets `304 Not Modified` and an empty body while nothing changed, and the
//! server reads no trial. The curves (every observation of every trial) and the parameters (each
//! trial's coordinates) also answer `?since=REV` with only the trials changed after REV, which the
//! reader merges by index; the history and importance are recomputed whole when anything changed
//! (a trial's objective moves every later best-so-far, and the importance is a fit over all
//! trials), so they take no `since`.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiState, Result, blocking};
use crate::plots::{self, Intermediate};
use crate::store::{Changed, ExperimentRecord, MalformedRevision, Revision};

pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/api/v1/experiments/{name}/plots/history", get(history))
        .route("/api/v1/experiments/{name}/plots/parameters", get(parameters))
        .route("/api/v1/experiments/{name}/plots/importance", get(importance))
        .route("/api/v1/experiments/{name}/plots/intermediate", get(intermediate))
}

/// The `ETag` of a revision (an entity tag is quoted).
fn etag(revision: Revision) -> HeaderValue {
    // A revision prints as hex digits, a dash and digits: always a valid header value.
    HeaderValue::from_str(&format!("\"{revision}\"")).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}

/// Whether the caller's `If-None-Match` names `revision` (or is `*`): its copy is current.
/// Weak tags compare equal to strong ones, as RFC 9110 has `If-None-Match` compare them.
fn unchanged(headers: &HeaderMap, revision: Revision) -> bool {
    let ours = format!("\"{revision}\"");
    headers.get_all(header::IF_NONE_MATCH).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(
        |tag| {
            let tag = tag.trim();
            tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == ours
        },
    )
}

/// A plot answer: the JSON with its revision as `ETag`. `no-cache`: a cache may keep it but must
/// ask again (with the tag) before using it, since trials move on.
fn tagged(revision: Revision, body: impl Serialize) -> Response {
    with_tag(Json(body).into_response(), revision)
}

fn not_modified(revision: Revision) -> Response {
    with_tag(StatusCode::NOT_MODIFIED.into_response(), revision)
}

fn with_tag(mut response: Response, revision: Revision) -> Response {
    response.headers_mut().insert(header::ETAG, etag(revision));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// Answers with `answer(revision, experiment)`, or 304 when the caller's copy is of this
/// revision. The revision is taken before anything is read (so what is read is at least that
/// new; see `store::revision`), and the experiment is read even for a 304, so a missing one is a
/// 404.
fn conditional(
    state: &ApiState,
    name: &str,
    headers: &HeaderMap,
    answer: impl FnOnce(Revision, ExperimentRecord) -> Result<Response>,
) -> Result<Response> {
    let revision = state.store.revision(name);
    let record = state.experiment(name)?;
    if unchanged(headers, revision) {
        return Ok(not_modified(revision));
    }
    answer(revision, record)
}

/// Reads the experiment's trials one at a time (no list of whole trials is held), keeping
/// `project(trial)` of each.
fn project<T>(state: &ApiState, name: &str, project: impl Fn(&crate::trial::Trial) -> T) -> Result<Vec<T>> {
    let mut kept = Vec::new();
    state
        .store
        .for_each_trial(name, |trial| kept.push(project(&trial)))
        .map_err(ApiError::internal(format!("read trials of {name}")))?;
    Ok(kept)
}

// Each reads every trial (and the curves observations) when something changed: store scans and
// CPU work, so on the blocking pool, not on an async worker that also serves every other request.

async fn history(State(state): State<Arc<ApiState>>, Path(name): Path<String>, headers: HeaderMap) -> Result<Response> {
    blocking(move || {
        conditional(&state, &name, &headers, |revision, record| {
            let points = project(&state, &name, plots::history_point)?;
            Ok(tagged(revision, plots::history_of(&record.experiment, points)))
        })
    })
    .await
}

fn parameters_now(state: &ApiState, name: &str, record: &ExperimentRecord) -> Result<plots::Parameters> {
    let axes = plots::axes(&record.experiment);
    let coordinates = project(state, name, |trial| plots::coordinates(&axes, trial))?;
    Ok(plots::parameters_of(&record.experiment, axes, coordinates))
}

async fn parameters(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    Query(query): Query<SinceQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let since = query.since()?;
    blocking(move || {
        conditional(&state, &name, &headers, |revision, record| {
            let (revision, changed) = changes(&state, &name, revision, since);
            let mut answer = match changed {
                Changed::All => parameters_now(&state, &name, &record)?,
                Changed::Trials(indexes) => {
                    let axes = plots::axes(&record.experiment);
                    let trials = trials_at(&state, &name, &indexes)?;
                    let coordinates = trials.iter().map(|trial| plots::coordinates(&axes, trial)).collect();
                    plots::Parameters { full: false, ..plots::parameters_of(&record.experiment, axes, coordinates) }
                }
            };
            answer.revision = revision.to_string();
            Ok(tagged(revision, answer))
        })
    })
    .await
}

async fn importance(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    blocking(move || {
        conditional(&state, &name, &headers, |revision, record| {
            Ok(tagged(revision, plots::importance(&parameters_now(&state, &name, &record)?)))
        })
    })
    .await
}

/// `?since=`: a revision from an earlier answer's `revision` (or its `ETag`, unquoted).
#[derive(Deserialize)]
pub(super) struct SinceQuery {
    since: Option<String>,
}

impl SinceQuery {
    pub(super) fn since(&self) -> Result<Option<Revision>> {
        match self.since.as_deref().map(|s| s.trim_matches('"')) {
            None | Some("") => Ok(None),
            Some(text) => {
                text.parse().map(Some).map_err(|e: MalformedRevision| ApiError::bad_request("since", e.to_string()))
            }
        }
    }
}

/// The revision to answer as of, and which trials to answer: all without `since`.
fn changes(state: &ApiState, name: &str, revision: Revision, since: Option<Revision>) -> (Revision, Changed) {
    match since {
        Some(since) => state.store.changed_since(name, since),
        None => (revision, Changed::All),
    }
}

/// The trials `indexes` (one absent from the store is left out).
fn trials_at(state: &ApiState, name: &str, indexes: &[u32]) -> Result<Vec<crate::trial::Trial>> {
    state.store.trials_at(name, indexes).map_err(ApiError::internal(format!("read trials of {name}")))
}

async fn intermediate(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    Query(query): Query<SinceQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let since = query.since()?;
    blocking(move || {
        conditional(&state, &name, &headers, |revision, record| {
            let (revision, changed) = changes(&state, &name, revision, since);
            let metric = record.experiment.spec.objective.metric.clone();
            let (curves, full) = match changed {
                Changed::All => (every_curve(&state, &name, &metric)?, true),
                Changed::Trials(indexes) => (curves_of(&state, &name, &metric, &indexes)?, false),
            };
            Ok(tagged(revision, Intermediate { metric, curves, revision: revision.to_string(), full }))
        })
    })
    .await
}

fn curve_of(state: &ApiState, name: &str, metric: &str, trial: &crate::trial::Trial) -> Result<plots::Curve> {
    let observations = state
        .store
        .observations(name, trial.index)
        .map_err(ApiError::internal(format!("read observations of {}", trial.name)))?;
    Ok(plots::curve(trial, metric, &observations))
}

/// Every trial's curve, the trials read one at a time.
fn every_curve(state: &ApiState, name: &str, metric: &str) -> Result<Vec<plots::Curve>> {
    let mut curves = Vec::new();
    let mut failed = None;
    state
        .store
        .for_each_trial(name, |trial| {
            if failed.is_none() {
                match curve_of(state, name, metric, &trial) {
                    Ok(curve) => curves.push(curve),
                    Err(e) => failed = Some(e),
                }
            }
        })
        .map_err(ApiError::internal(format!("read trials of {name}")))?;
    match failed {
        Some(e) => Err(e),
        None => Ok(curves),
    }
}

/// The curves of the trials `indexes` (one absent from the store is left out).
fn curves_of(state: &ApiState, name: &str, metric: &str, indexes: &[u32]) -> Result<Vec<plots::Curve>> {
    trials_at(state, name, indexes)?.iter().map(|trial| curve_of(state, name, metric, trial)).collect()
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
        let asked = api.open_external("p", 3).await;
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

    const PLOTS: [&str; 4] = ["history", "parameters", "importance", "intermediate"];

    fn tag(headers: &axum::http::HeaderMap) -> String {
        headers.get("etag").expect("an ETag").to_str().unwrap().to_string()
    }

    #[tokio::test]
    async fn a_plot_asked_again_with_its_etag_is_a_304_with_no_body_and_reads_no_trial() {
        let api = Api::new(None, 1);
        told(&api).await;
        let mut tags = Vec::new();
        for plot in PLOTS {
            let uri = format!("/api/v1/experiments/p/plots/{plot}");
            let (status, headers, _) = api.get_with(&uri, &[]).await;
            assert_eq!(status, StatusCode::OK, "{plot}");
            let etag = tag(&headers);
            let (status, headers, body) = api.get_with(&uri, &[("if-none-match", &etag)]).await;
            assert_eq!((status, body.len()), (StatusCode::NOT_MODIFIED, 0), "{plot}");
            assert_eq!(tag(&headers), etag, "{plot}");
            let (status, _, _) = api.get_with(&uri, &[("if-none-match", "\"0000000000000000-1\"")]).await;
            assert_eq!(status, StatusCode::OK, "{plot}: another tag is not this one");
            tags.push(etag);
        }
        assert!(tags.windows(2).all(|w| w[0] == w[1]), "one revision per experiment: {tags:?}");

        // A trial whose record no longer decodes, written behind the store's back (no revision):
        // a 304 proves no trial was read, and a read without the tag shows that one would fail.
        api.state.store.corrupt_trial_for_test("p", 1);
        for plot in PLOTS {
            let uri = format!("/api/v1/experiments/p/plots/{plot}");
            let (status, _, _) = api.get_with(&uri, &[("if-none-match", &tags[0])]).await;
            assert_eq!(status, StatusCode::NOT_MODIFIED, "{plot}: nothing read");
            let (status, _, _) = api.get_with(&uri, &[]).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{plot}: reading would have failed");
        }
    }

    #[tokio::test]
    async fn a_write_of_a_trial_changes_the_etag_so_the_old_one_gets_the_new_data() {
        let api = Api::new(None, 1);
        api.open_external("p", 2).await;
        let uri = "/api/v1/experiments/p/plots/history";
        let (_, headers, _) = api.get_with(uri, &[]).await;
        let before = tag(&headers);
        let tell = "/api/v1/experiments/p/trials/p-0000/complete";
        assert_eq!(api.send("POST", tell, r#"{"metrics": {"value": 0.5}}"#, None).await.0, StatusCode::OK);
        let (status, headers, body) = api.get_with(uri, &[("if-none-match", &before)]).await;
        assert_eq!(status, StatusCode::OK);
        assert_ne!(tag(&headers), before);
        let history: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(history["points"][0]["objective"], 0.5);
    }

    #[tokio::test]
    async fn since_answers_only_the_curve_and_coordinates_of_the_trial_that_reported_and_an_unknown_since_everything() {
        let api = Api::new(None, 1);
        api.open_external("p", 3).await;
        let (status, first) = get(&api, "/api/v1/experiments/p/plots/intermediate").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!((first["full"].clone(), first["curves"].as_array().unwrap().len()), (json!(true), 3));
        let revision = first["revision"].as_str().unwrap().to_string();
        let since = format!("/api/v1/experiments/p/plots/intermediate?since={revision}");

        let (_, nothing) = get(&api, &since).await;
        assert_eq!((nothing["full"].clone(), nothing["curves"].clone()), (json!(false), json!([])));

        let report = "/api/v1/experiments/p/trials/p-0001/report";
        let (status, answer) = api.send("POST", report, r#"{"step": 1, "metrics": {"value": 0.4}}"#, None).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&answer));
        let (status, delta) = get(&api, &since).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(delta["full"], false);
        let curves = delta["curves"].as_array().unwrap();
        assert_eq!(curves.len(), 1, "{delta}");
        assert_eq!((curves[0]["trial"].clone(), curves[0]["points"].clone()), (json!("p-0001"), json!([[1.0, 0.4]])));
        assert_ne!(delta["revision"], first["revision"]);

        let (_, axes) = get(&api, &since.replace("intermediate", "parameters")).await;
        let moved: Vec<&str> =
            axes["trials"].as_array().unwrap().iter().map(|t| t["trial"].as_str().unwrap()).collect();
        assert_eq!((axes["full"].clone(), moved), (json!(false), vec!["p-0001"]), "the parameters take since too");
        assert_eq!(axes["axes"][0]["name"], "x", "with the axes, always");

        let (_, again) = get(
            &api,
            &format!("/api/v1/experiments/p/plots/intermediate?since={}", delta["revision"].as_str().unwrap()),
        )
        .await;
        assert_eq!(again["curves"], json!([]), "nothing after the latest");

        let other_process = "/api/v1/experiments/p/plots/intermediate?since=0123456789abcdef-1";
        let (status, all) = get(&api, other_process).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!((all["full"].clone(), all["curves"].as_array().unwrap().len()), (json!(true), 3));

        let (_, every) = get(&api, &other_process.replace("intermediate", "parameters")).await;
        assert_eq!((every["full"].clone(), every["trials"].as_array().unwrap().len()), (json!(true), 3));

        for plot in ["intermediate", "parameters"] {
            let (status, bad) = get(&api, &format!("/api/v1/experiments/p/plots/{plot}?since=yesterday")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert_eq!(bad["error"]["field"], "since", "{bad}");
        }
    }
}
