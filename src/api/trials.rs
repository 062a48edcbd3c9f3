//! Reading an experiment's trials: the leaderboard, each trial, its observations and its logs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::stream;
use jiff::Timestamp;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::types::{ObservationList, TrialList, TrialView};
use super::{ApiError, ApiState, Result, blocking};
use crate::leaderboard;
use crate::store::Changed;

/// How often a followed log is checked for new output.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/api/v1/experiments/{name}/leaderboard", get(board))
        .route("/api/v1/experiments/{name}/trials", get(list))
        .route("/api/v1/experiments/{name}/trials/{trial}", get(show))
        .route("/api/v1/experiments/{name}/trials/{trial}/observations", get(observations))
        .route("/api/v1/experiments/{name}/trials/{trial}/logs", get(logs))
}

#[derive(Deserialize)]
struct BoardQuery {
    top: Option<usize>,
}

async fn board(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    Query(query): Query<BoardQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let wants_csv = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/csv"));
    // Ranking every trial (without `top`, or with fewer succeeded) is CPU work: off the workers.
    blocking(move || board_now(&state, &name, query.top, wants_csv)).await
}

fn board_now(state: &ApiState, name: &str, top: Option<usize>, wants_csv: bool) -> Result<Response> {
    let record = state.experiment(name)?;
    let failed = || ApiError::internal(format!("read trials of {name}"));
    let goal = record.experiment.spec.objective.goal;
    // The top N through the ranking kept on write when N trials succeeded; else every trial.
    let best = match top {
        Some(n) => state.store.ranked(name, goal, n).map_err(failed())?.filter(|best| best.len() == n),
        None => None,
    };
    let trials = match best {
        Some(best) => best,
        None => state.store.trials(name).map_err(failed())?,
    };
    let board = leaderboard::rank(&record.experiment, &trials, top, Timestamp::now());
    Ok(if wants_csv {
        ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], board.csv(&record.experiment)).into_response()
    } else {
        Json(board).into_response()
    })
}

/// The most items one page holds, and how many when the request does not say.
const PAGE_MAX: usize = 10_000;
const PAGE_DEFAULT: usize = 1_000;

/// `?after=CURSOR&limit=N`: a page of a long list (the cursor is the previous page's `next`).
#[derive(Deserialize)]
struct PageQuery<C> {
    after: Option<C>,
    limit: Option<usize>,
}

impl<C> PageQuery<C> {
    fn limit(&self) -> Result<usize> {
        match self.limit {
            Some(n) if n == 0 || n > PAGE_MAX => {
                Err(ApiError::bad_request("limit", format!("must be from 1 to {PAGE_MAX}")))
            }
            Some(n) => Ok(n),
            None => Ok(PAGE_DEFAULT),
        }
    }
}

async fn list(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    Query(page): Query<PageQuery<u32>>,
    Query(since): Query<super::plots::SinceQuery>,
) -> Result<Json<TrialList>> {
    let limit = page.limit()?;
    let since = since.since()?;
    blocking(move || {
        state.experiment(&name)?;
        // Taken before anything is read: what is read is at least this new (see store::revision).
        let revision = state.store.revision(&name);
        let read_error = || ApiError::internal(format!("read trials of {name}"));
        if let Some(since) = since.filter(|_| page.after.is_none()) {
            let (revision, changed) = state.store.changed_since(&name, since);
            if let Changed::Trials(indexes) = changed {
                let trials = state.store.trials_at(&name, &indexes).map_err(read_error())?;
                let (revision, full) = (Some(revision.to_string()), Some(false));
                return Ok(Json(TrialList { trials, next: None, revision, full }));
            }
        }
        let (trials, next) = state.store.trials_page(&name, page.after, limit).map_err(read_error())?;
        let full = since.map(|_| true);
        Ok(Json(TrialList { trials, next, revision: Some(revision.to_string()), full }))
    })
    .await
}

async fn show(
    State(state): State<Arc<ApiState>>,
    Path((name, trial)): Path<(String, String)>,
) -> Result<Json<TrialView>> {
    let trial = state.trial(&name, &trial)?;
    let output_dir = trial.dir.as_ref().map(|d| format!("{d}/output"));
    let duration_seconds = trial.duration_seconds(Timestamp::now());
    Ok(Json(TrialView { trial, output_dir, duration_seconds }))
}

async fn observations(
    State(state): State<Arc<ApiState>>,
    Path((name, trial)): Path<(String, String)>,
    Query(page): Query<PageQuery<u64>>,
) -> Result<Json<ObservationList>> {
    let limit = page.limit()?;
    blocking(move || {
        let trial = state.trial(&name, &trial)?;
        let read = state.store.observations_page(&name, trial.index, page.after, limit);
        let (observations, next) = read.map_err(ApiError::internal(format!("read observations of {}", trial.name)))?;
        Ok(Json(ObservationList { trial: trial.name, observations, next }))
    })
    .await
}

#[derive(Deserialize)]
struct LogQuery {
    #[serde(default)]
    follow: bool,
    /// `stdout` (default) or `stderr`.
    stream: Option<String>,
    /// Only the last N lines (read from the end of the file: the cost does not grow with the log).
    tail: Option<usize>,
}

/// How far from a log's end `?tail=N` reads: enough for the lines a page shows, whatever the size.
const TAIL_WINDOW: u64 = 256 * 1024;

/// The last `lines` lines of the file at `path` (within its last `TAIL_WINDOW` bytes).
async fn tail_of(path: &std::path::Path, lines: usize) -> Vec<u8> {
    let Ok(mut file) = tokio::fs::File::open(path).await else { return Vec::new() };
    let length = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let start = length.saturating_sub(TAIL_WINDOW);
    let mut bytes = Vec::new();
    if file.seek(std::io::SeekFrom::Start(start)).await.is_err() || file.read_to_end(&mut bytes).await.is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    // A window that starts mid-file starts mid-line: that first piece is not a line.
    let whole = if start > 0 { &all[1.min(all.len())..] } else { &all[..] };
    let kept = &whole[whole.len().saturating_sub(lines)..];
    kept.iter().flat_map(|l| [l.as_bytes(), b"\n"]).flatten().copied().collect()
}

/// A trial's output as text; with `follow=true` the response stays open until the trial ends.
async fn logs(
    State(state): State<Arc<ApiState>>,
    Path((name, trial)): Path<(String, String)>,
    Query(query): Query<LogQuery>,
) -> Result<Response> {
    let record = state.trial(&name, &trial)?;
    let file = match query.stream.as_deref().unwrap_or("stdout") {
        "stdout" => "stdout.log",
        "stderr" => "stderr.log",
        other => return Err(ApiError::bad_request("stream", format!("{other:?} is not stdout or stderr"))),
    };
    // The folder comes from the store, never from the request.
    let path = record.dir.as_ref().map(|d| PathBuf::from(d).join(file));
    let content_type = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
    if let (Some(lines), false) = (query.tail, query.follow) {
        let body = match &path {
            Some(p) => tail_of(p, lines).await,
            None => Vec::new(),
        };
        return Ok((content_type, body).into_response());
    }
    if !query.follow {
        // Streamed from disk in chunks: a download costs the same memory whatever the log's size.
        let file = match &path {
            Some(p) => tokio::fs::File::open(p).await.ok(),
            None => None,
        };
        return Ok(match file {
            Some(file) => (content_type, Body::from_stream(tokio_util::io::ReaderStream::new(file))).into_response(),
            None => (content_type, Vec::new()).into_response(),
        });
    }
    let follow = Follow { state, experiment: name, trial, file, path, offset: 0, done: false };
    let body = stream::unfold(follow, |mut f| async move {
        let chunk = f.next_chunk().await?;
        Some((Ok::<_, std::io::Error>(chunk), f))
    });
    Ok((content_type, Body::from_stream(body)).into_response())
}

/// A log being followed: new bytes as they are written, until the trial has finished.
struct Follow {
    state: Arc<ApiState>,
    experiment: String,
    trial: String,
    file: &'static str,
    path: Option<PathBuf>,
    offset: u64,
    done: bool,
}

impl Follow {
    async fn next_chunk(&mut self) -> Option<Vec<u8>> {
        loop {
            if self.done {
                return None;
            }
            let trial = self.state.trial(&self.experiment, &self.trial).ok();
            let finished = trial.as_ref().is_none_or(|t| t.phase.is_finished());
            if self.path.is_none() {
                self.path = trial.and_then(|t| t.dir).map(|d| PathBuf::from(d).join(self.file));
            }
            let chunk = self.read_new().await;
            if !chunk.is_empty() {
                return Some(chunk);
            }
            if finished {
                self.done = true;
                return None;
            }
            tokio::time::sleep(FOLLOW_POLL).await;
        }
    }

    async fn read_new(&mut self) -> Vec<u8> {
        let Some(path) = &self.path else { return Vec::new() };
        let Ok(mut file) = tokio::fs::File::open(path).await else { return Vec::new() };
        let mut chunk = Vec::new();
        if file.seek(std::io::SeekFrom::Start(self.offset)).await.is_ok() && file.read_to_end(&mut chunk).await.is_ok()
        {
            self.offset += chunk.len() as u64;
        }
        chunk
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_tail_is_the_last_lines_and_never_a_line_cut_by_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short.log");
        std::fs::write(&short, "one\ntwo\nthree\nfour\n").unwrap();
        assert_eq!(tail_of(&short, 2).await, b"three\nfour\n");
        assert_eq!(tail_of(&short, 10).await, b"one\ntwo\nthree\nfour\n");
        let long = dir.path().join("long.log");
        let lines: Vec<String> = (0..40_000).map(|i| format!("line {i:05}")).collect();
        std::fs::write(&long, lines.join("\n") + "\n").unwrap();
        let tail = String::from_utf8(tail_of(&long, 3).await).unwrap();
        assert_eq!(tail, "line 39997\nline 39998\nline 39999\n");
        let window = String::from_utf8(tail_of(&long, usize::MAX).await).unwrap();
        assert!(window.lines().all(|l| l.len() == "line 00000".len()), "no cut line at the window's start");
        assert!(tail_of(&dir.path().join("missing.log"), 3).await.is_empty());
    }
}
