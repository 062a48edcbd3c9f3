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

use super::types::{AskRequest, PushAnswer, PushRequest, Suggestion, Suggestions, TellAnswer, TellRequest};
use super::{ApiError, ApiState, Result, bearer, blocking};
use crate::experiment::{self, Told};
use crate::metrics::Tally;
use crate::search::{self, Past, Search};
use crate::space::Assignment;
use crate::spec::{ExecutorKind, ExperimentSpec};
use crate::store::{Changes, MAX_OBSERVATIONS};
use crate::store::{Durability, ExperimentRecord};
use crate::token::Holder;
use crate::trial::{Observation, Trial, TrialPhase};

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

/// An external experiment's search between asks, the trials it last saw, and the suggestion it
/// prepared after the latest tell.
///
/// A tell starts computing the next suggestion at once (in the background, for the history the
/// tell left), so the client's next ask finds it ready: the model work overlaps the client's own
/// (reading the answer, asking again). An ask uses a prepared suggestion only when it was made for
/// exactly the ask's history and count, so what a client gets is what the search would have
/// computed on the spot; the same seed and history give the same suggestions either way. After an
/// ask, the search does ahead what it can before the result arrives ([`Search::anticipate`]).
///
/// The trials, and the history the search sees of them, are kept between requests; a subscription
/// to the experiment's trial writes says which were written since (by this server's asks and
/// tells, by other clients' tells, by the deadline review), and only those are read again. So an
/// ask costs the same at 1,000 trials as at 100,000, however many clients write between asks.
#[derive(Default)]
pub struct Asker {
    pub(super) search: Option<Box<dyn Search>>,
    known: Option<Known>,
    pub(super) prepared: Option<Prepared>,
}

/// The experiment's trials and their history, kept current by reading again those written since.
struct Known {
    /// Made before the first read, so no write is missed.
    changes: Changes<u32>,
    /// Whether each trial (by index) is still open: all an ask needs of the trial besides its past.
    open: Vec<bool>,
    /// `history(spec, trials)`, entry for entry.
    history: Vec<Past>,
}

impl Known {
    fn read(state: &ApiState, spec: &ExperimentSpec, name: &str) -> Result<Self> {
        let changes = state.store.watch_trials(name);
        let (mut open, mut history) = (Vec::new(), Vec::new());
        let read = state.store.for_each_trial(name, |t| {
            open.push(!t.phase.is_finished());
            history.push(experiment::past(spec, &t));
        });
        read.map_err(ApiError::internal(format!("read trials of {name}")))?;
        Ok(Self { changes, open, history })
    }

    /// Reads again the trials written since the last look.
    fn catch_up(&mut self, state: &ApiState, spec: &ExperimentSpec, name: &str) -> Result<()> {
        for index in self.changes.take() {
            let read = state.store.trial(name, index).map_err(ApiError::internal(format!("read trial {index}")))?;
            let Some(trial) = read else { continue };
            let at = trial.index as usize;
            let (open, past) = (!trial.phase.is_finished(), experiment::past(spec, &trial));
            if at < self.open.len() {
                (self.open[at], self.history[at]) = (open, past);
            } else {
                // Trials are numbered densely from 0; a gap (never made by tuna) is filled as closed.
                self.open.resize(at, false);
                self.history.resize(at, Past { parameters: Default::default(), outcome: search::Outcome::Failed });
                self.open.push(open);
                self.history.push(past);
            }
        }
        Ok(())
    }
}

pub(super) struct Prepared {
    history: Vec<Past>,
    count: usize,
    picked: Vec<Assignment>,
}

impl Asker {
    /// The experiment's trials, current, with their history: read once, then caught up.
    fn known(&mut self, state: &ApiState, spec: &ExperimentSpec, name: &str) -> Result<&mut Known> {
        let known = match self.known.take() {
            Some(k) => k,
            None => Known::read(state, spec, name)?,
        };
        let known = self.known.insert(known);
        known.catch_up(state, spec, name)?;
        Ok(known)
    }

    /// The experiment's search, built on first use.
    fn search_for(&mut self, spec: &ExperimentSpec, seed: u64) -> Result<&mut Box<dyn Search>> {
        match self.search {
            Some(ref mut s) => Ok(s),
            None => Ok(self.search.insert(search::build(spec, seed).map_err(|e| ApiError::Conflict(e.to_string()))?)),
        }
    }

    /// `count` suggestions for `history`: the prepared ones when they fit, else computed now.
    fn suggest(&mut self, spec: &ExperimentSpec, seed: u64, history: &[Past], count: usize) -> Result<Vec<Assignment>> {
        if let Some(p) = self.prepared.take()
            && p.count == count
            && p.history == history
        {
            return Ok(p.picked);
        }
        let search = self.search_for(spec, seed)?;
        let started = Instant::now();
        let picked = search.suggest(history, count).map_err(|e| ApiError::Conflict(e.to_string()))?;
        crate::instruments::global().suggested(
            &spec.algorithm.name.to_string(),
            "external",
            started.elapsed().as_secs_f64(),
        );
        Ok(picked)
    }
}

/// Readies every open ask/tell experiment for its first ask after a start: its trials read and
/// its search built and caught up (a Bayesian search replays its fits), so the first ask costs
/// what any other does. Run before the server says it is ready.
pub fn warm(state: &ApiState) -> crate::store::Result<usize> {
    let mut warmed = 0;
    for record in state.store.experiments()? {
        let phase = record.experiment.status.as_ref().map(|s| s.phase).unwrap_or_default();
        if record.experiment.spec.executor != ExecutorKind::External || phase.is_closed() {
            continue;
        }
        let (name, spec) = (record.name(), &record.experiment.spec);
        let mut asker = state.ask_slot(name).blocking_lock_owned();
        let Ok(known) = asker.known(state, spec, name) else { continue };
        let history = known.history.clone();
        if let Ok(search) = asker.search_for(spec, seed_of(&record)) {
            search.anticipate(&history);
            warmed += 1;
        }
    }
    Ok(warmed)
}

/// An experiment an ask may serve (`executor: external`).
fn askable(state: &ApiState, name: &str) -> Result<ExperimentRecord> {
    let record = state.experiment(name)?;
    if record.experiment.spec.executor != ExecutorKind::External {
        return Err(ApiError::Conflict(format!(
            "experiment {name} runs its own trials (executor: local); suggestions are for executor: external"
        )));
    }
    Ok(record)
}

/// How many new trials an ask for `count` may hand out (the core's budget and parallelism rule).
fn room_for(record: &ExperimentRecord, count: usize, trials: usize, open: usize) -> usize {
    let phase = record.experiment.status.as_ref().map(|s| s.phase).unwrap_or_default();
    experiment::room_for(&record.experiment.spec, phase, count, trials, open)
}

fn seed_of(record: &ExperimentRecord) -> u64 {
    record.experiment.status.as_ref().map(|s| s.seed).unwrap_or_default()
}

async fn ask(State(state): State<Arc<ApiState>>, Path(name): Path<String>, body: String) -> Result<Json<Suggestions>> {
    let request: AskRequest = parse_body(&body, r#"{"count": N}"#)?;
    if request.count == 0 || request.count > MAX_ASK {
        return Err(ApiError::bad_request("count", format!("must be between 1 and {MAX_ASK}")));
    }
    // One ask at a time per experiment: the others wait here, as tasks, not as blocked threads.
    let asker = state.ask_slot(&name).lock_owned().await;
    blocking(move || ask_now(state, name, request, asker)).await
}

fn ask_now(
    state: Arc<ApiState>,
    name: String,
    request: AskRequest,
    mut asker: tokio::sync::OwnedMutexGuard<Asker>,
) -> Result<Json<Suggestions>> {
    let record = askable(&state, &name)?;
    let spec = &record.experiment.spec;
    let known = asker.known(&state, spec, &name)?;
    let (existing, open) = (known.open.len(), known.open.iter().filter(|o| **o).count());
    let wanted = room_for(&record, request.count, existing, open);
    if wanted == 0 {
        return Ok(Json(Suggestions { trials: Vec::new() }));
    }
    // Lent to the search for this ask (no copy of every trial's parameters) and given back at once.
    let history = std::mem::take(&mut known.history);
    let fresh = asker.suggest(spec, seed_of(&record), &history, wanted);
    if let Some(known) = asker.known.as_mut() {
        known.history = history;
    }
    let fresh = fresh?;
    if fresh.len() < wanted && asker.search.as_ref().is_none_or(|s| s.exhausts_when_short()) {
        state
            .store
            .update_experiment(&name, Durability::Flushed, |r| r.exhausted = true)
            .map_err(ApiError::internal(format!("update experiment {name}")))?;
    }
    let asked = experiment::asked(&name, existing, fresh, Timestamp::now());
    let stored: crate::store::Result<()> = asked.iter().try_for_each(|trial| state.store.write_trial(trial));
    let costly = asker.search.as_ref().is_some_and(|s| s.costly());
    let mut ahead = None;
    if let Some(known) = asker.known.as_mut() {
        known.open.extend(asked.iter().map(|_| true));
        known.history.extend(asked.iter().map(|t| experiment::past(spec, t)));
        ahead = costly.then(|| known.history.clone());
    }
    if stored.is_err() {
        asker.known = None; // not all were stored: read them again next time
    }
    stored.map_err(ApiError::internal(format!("store the trials of {name}")))?;
    // Stored before they are handed out: a tell after a crash finds its trial.
    state.store.flush_writes().map_err(ApiError::internal(format!("store the trials of {name}")))?;
    if let Some(history) = ahead {
        let state = Arc::clone(&state);
        tokio::task::spawn_blocking(move || anticipate(&state, &name, &history));
    }
    let out = asked.into_iter().map(|t| Suggestion { name: t.name, parameters: t.parameters }).collect();
    Ok(Json(Suggestions { trials: out }))
}

/// Does the work of the suggestion after the next result ahead, while the client evaluates
/// (`history` with the trials just handed out, pending).
fn anticipate(state: &ApiState, name: &str, history: &[Past]) {
    let mut asker = state.ask_slot(name).blocking_lock_owned();
    if let Some(search) = asker.search.as_mut() {
        search.anticipate(history);
    }
}

/// Notes the trial a tell wrote (the count of trial writes after it is `writes`) and computes the
/// suggestion the next single-trial ask will want, while the client is busy (`record` as the tell
/// read it: an ask checks again what it allows).
pub(super) fn prepare(state: &ApiState, record: &ExperimentRecord) {
    let name = record.name();
    let mut asker = state.ask_slot(name).blocking_lock_owned();
    // Only for a search an ask built, so for the experiment as it is now: a slot emptied since
    // the tell read `record` (the experiment deleted and created again, or changed) is left to
    // the next ask. Random and grid suggest in microseconds: preparing would only repeat the
    // ask's reads.
    if !asker.search.as_ref().is_some_and(|s| s.costly()) {
        return;
    }
    let (spec, seed) = (&record.experiment.spec, seed_of(record));
    let Ok(known) = asker.known(state, spec, name) else { return };
    let open = known.open.iter().filter(|o| **o).count();
    if room_for(record, 1, known.open.len(), open) == 0 {
        return;
    }
    let history = known.history.clone();
    if let Ok(picked) = asker.suggest(spec, seed, &history, 1) {
        asker.prepared = Some(Prepared { history, count: 1, picked });
    }
}

async fn tell(
    State(state): State<Arc<ApiState>>,
    Path((name, trial_name)): Path<(String, String)>,
    body: String,
) -> Result<Json<TellAnswer>> {
    blocking(move || tell_now(state, name, trial_name, body)).await
}

fn tell_now(state: Arc<ApiState>, name: String, trial_name: String, body: String) -> Result<Json<TellAnswer>> {
    let request: TellRequest =
        parse_body(&body, r#"{"metrics": {"name": value}} or {"state": "failed", "reason": "…"}"#)?;
    let record = state.experiment(&name)?;
    let spec = &record.experiment.spec;
    if spec.executor != ExecutorKind::External {
        return Err(ApiError::Conflict(format!(
            "experiment {name} runs its own trials; only executor: external trials are completed by clients"
        )));
    }
    let index = open_trial(&state, &name, &trial_name)?.index;
    let said = match request.state.as_deref() {
        None | Some("succeeded") => Told::Succeeded,
        Some("failed") => Told::Failed { reason: request.reason.clone() },
        Some(other) => return Err(ApiError::bad_request("state", format!("{other:?} is not succeeded or failed"))),
    };
    let reported = state
        .store
        .observations(&name, index)
        .map_err(ApiError::internal(format!("read observations of {trial_name}")))?;
    let now = Timestamp::now();
    let mut new = Vec::new();
    // The result is recorded only if the trial is still open when it is written: of two tells
    // racing for one trial, one wins and the other gets 409 (and its metrics are not kept).
    let changed = state.store.change_trial(&name, index, |trial| {
        let open = open_for_metrics(trial)?;
        new = observations_of(&request.metrics, open.attempts.max(1), None, now)?;
        let tally = Tally::of_attempt(&[reported.as_slice(), new.as_slice()].concat(), open.attempts.max(1));
        experiment::record_result(trial, spec, &tally);
        experiment::told(spec, &tally, said.clone()).conclude(trial, now);
        Ok(())
    });
    let store = || ApiError::internal(format!("store trial {trial_name}"));
    let trial = match changed.map_err(store())? {
        None => return Err(ApiError::NotFound(format!("experiment {name} has no trial {trial_name}"))),
        Some(result) => result?,
    };
    state.store.add_observations(&name, index, &new).map_err(store())?;
    record_artifact(&state, &trial, request.artifact.as_deref())?;
    state.store.flush_writes().map_err(store())?;
    let answer = TellAnswer { name: trial.name.clone(), phase: trial.phase, objective: trial.objective };
    // The next suggestion is prepared while the client reads the answer and asks again (started
    // after the flush, which it would otherwise slow).
    tokio::task::spawn_blocking(move || prepare(&state, &record));
    Ok(Json(answer))
}

/// A push: the trial's token is checked (from its headers, against the experiment's incarnation
/// and the trial's open attempt) before its body is read, so a request without the right token
/// costs the server no more than its headers.
async fn push(
    State(state): State<Arc<ApiState>>,
    Path((name, trial_name)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<PushAnswer>> {
    let Some(token) = bearer(&headers) else {
        state.failed_auth()?;
        return Err(ApiError::Unauthorized("a push needs `Authorization: Bearer $TUNA_TRIAL_TOKEN`".into()));
    };
    let not_yours = || ApiError::Forbidden(format!("this token is not that of trial {trial_name}'s running attempt"));
    let (Ok(record), Ok(trial)) = (state.experiment(&name), state.trial(&name, &trial_name)) else {
        state.failed_auth()?;
        return Err(not_yours());
    };
    // A trial pushes only once started; if the start is not recorded yet, this is its next attempt.
    let attempt = if trial.phase == TrialPhase::Pending { trial.attempts + 1 } else { trial.attempts };
    let holder = Holder { experiment: &name, incarnation: record.uid(), trial: &trial_name, attempt };
    if !state.secret.verify(&holder, token) {
        state.failed_auth()?;
        return Err(not_yours());
    }
    open_for_metrics(&trial)?;
    let bytes = axum::body::to_bytes(body, super::BODY_LIMIT)
        .await
        .map_err(|e| ApiError::bad_request("body", format!("could not be read: {e}")))?;
    let text = std::str::from_utf8(&bytes).map_err(|_| ApiError::bad_request("body", "is not UTF-8"))?;
    let request: PushRequest = parse_body(text, r#"{"metrics": {"name": value}, "step": N}"#)?;
    blocking(move || {
        record_metrics(&state, &trial, attempt, &request.metrics, request.step)?;
        record_artifact(&state, &trial, request.artifact.as_deref())?;
        // Only a step report of the objective can change the decision (and judging reads every
        // trial's).
        let objective = &record.experiment.spec.objective.metric;
        let answer = match request.step {
            Some(_) if request.metrics.contains_key(objective) => {
                super::early::push_answer(&state, &record, &trial, attempt)?
            }
            _ => PushAnswer { should_stop: trial.early_stop.is_some() },
        };
        state.store.flush_writes().map_err(ApiError::internal(format!("store metrics of {trial_name}")))?;
        Ok(Json(answer))
    })
    .await
}

/// A trial that may still report (404 when missing, 409 when finished).
pub(super) fn open_trial(state: &ApiState, name: &str, trial: &str) -> Result<Trial> {
    let trial = state.trial(name, trial)?;
    open_for_metrics(&trial)?;
    Ok(trial)
}

/// The trial when it may still report; 409 once it has finished.
fn open_for_metrics(trial: &Trial) -> Result<&Trial> {
    if trial.phase.is_finished() {
        return Err(ApiError::Conflict(format!(
            "trial {} has finished ({:?}); it takes no more metrics",
            trial.name, trial.phase
        )));
    }
    Ok(trial)
}

/// The most metrics one report (push or tell) may carry.
const MAX_METRICS_PER_REPORT: usize = 1000;

/// The metrics of one report as observations of `attempt`; every value must be finite.
pub(super) fn observations_of(
    metrics: &BTreeMap<String, f64>,
    attempt: u32,
    step: Option<i64>,
    time: Timestamp,
) -> Result<Vec<Observation>> {
    if metrics.len() > MAX_METRICS_PER_REPORT {
        return Err(ApiError::bad_request(
            "metrics",
            format!("holds {} metrics; one report may carry at most {MAX_METRICS_PER_REPORT}", metrics.len()),
        ));
    }
    if let Some((metric, _)) = metrics.iter().find(|(_, v)| !v.is_finite()) {
        return Err(ApiError::bad_request(format!("metrics.{metric}"), "must be a finite number"));
    }
    Ok(metrics
        .iter()
        .map(|(metric, &value)| Observation { attempt, metric: metric.clone(), value, step, time })
        .collect())
}

/// Adds the metrics as observations; the caller's `flush_writes` makes them durable, one flush
/// per request.
fn record_metrics(
    state: &ApiState,
    trial: &Trial,
    attempt: u32,
    metrics: &BTreeMap<String, f64>,
    step: Option<i64>,
) -> Result<()> {
    let observations = observations_of(metrics, attempt, step, Timestamp::now())?;
    let kept = state
        .store
        .add_observations(&trial.experiment, trial.index, &observations)
        .map_err(ApiError::internal(format!("store metrics of {}", trial.name)))?;
    if kept < observations.len() {
        return Err(ApiError::bad_request(
            "metrics",
            format!(
                "trial {} has reported {MAX_OBSERVATIONS} values, the most one trial keeps; report less often",
                trial.name
            ),
        ));
    }
    Ok(())
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

pub(super) fn parse_body<T: serde::de::DeserializeOwned>(body: &str, shape: &str) -> Result<T> {
    let text = if body.trim().is_empty() { "{}" } else { body };
    serde_json::from_str(text).map_err(|e| ApiError::bad_request("body", format!("expected {shape}: {e}")))
}
