//! Watch responses: a chunked stream of newline-delimited `{"type":..,"object":..}` events.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::{Instant, Interval};

use super::errors::ApiError;
use super::meta;
use super::resources::ResourceType;
use super::selector::Selectors;
use super::store::{EventType, Record, Store};

/// How often a watch that allows bookmarks gets a BOOKMARK with the latest resourceVersion.
const BOOKMARK_EVERY: Duration = Duration::from_secs(2);

/// An object as served for `rt` (the stored object, with the requested apiVersion).
pub fn out(rt: &ResourceType, obj: &Value) -> Value {
    let mut v = obj.clone();
    v["apiVersion"] = json!(rt.api_version());
    v
}

fn line(v: &Value) -> Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

fn bookmark(rt: &ResourceType, rv: u64, initial_end: bool) -> Bytes {
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    line(
        &json!({"type": "BOOKMARK", "object": {"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": metadata}}),
    )
}

struct Watch {
    rt: ResourceType,
    res: String,
    ns: Option<String>,
    sel: Selectors,
    queue: VecDeque<Bytes>,
    rx: mpsc::UnboundedReceiver<Arc<Record>>,
    last_rv: u64,
    deadline: Instant,
    bookmarks: bool,
    tick: Interval,
}

impl Watch {
    /// The event this change is for this watch, if any (selector transitions become ADDED/DELETED).
    fn event(&self, rec: &Record) -> Option<Bytes> {
        if rec.res != self.res || self.ns.as_deref().is_some_and(|ns| meta::ns_of(&rec.object) != ns) {
            return None;
        }
        let now = self.sel.matches(&rec.object);
        let typ = match rec.kind {
            EventType::Added | EventType::Deleted => now.then_some(rec.kind.as_str()),
            EventType::Modified => match (rec.old.as_ref().is_some_and(|o| self.sel.matches(o)), now) {
                (true, true) => Some("MODIFIED"),
                (false, true) => Some("ADDED"),
                (true, false) => Some("DELETED"),
                (false, false) => None,
            },
        }?;
        Some(line(&json!({"type": typ, "object": out(&self.rt, &rec.object)})))
    }

    async fn next(mut self) -> Option<(Result<Bytes, Infallible>, Self)> {
        loop {
            if let Some(b) = self.queue.pop_front() {
                return Some((Ok(b), self));
            }
            tokio::select! {
                rec = self.rx.recv() => {
                    let rec = rec?;
                    self.last_rv = rec.rv;
                    if let Some(b) = self.event(&rec) {
                        self.queue.push_back(b);
                    }
                }
                _ = tokio::time::sleep_until(self.deadline) => return None,
                _ = self.tick.tick(), if self.bookmarks => {
                    let b = bookmark(&self.rt, self.last_rv, false);
                    self.queue.push_back(b);
                }
            }
        }
    }
}

fn stream_response(body: Body) -> Response {
    ([(CONTENT_TYPE, "application/json")], body).into_response()
}

/// `GET ...?watch=true`: events after `resourceVersion` (or the current state as ADDED when it
/// is absent or "0", or when `sendInitialEvents=true`), then live changes until `timeoutSeconds`.
pub fn watch_response(
    store: &Arc<Store>,
    rt: ResourceType,
    ns: Option<String>,
    q: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let sel = Selectors::parse(q.get("labelSelector").map(String::as_str), q.get("fieldSelector").map(String::as_str))
        .map_err(ApiError::bad_request)?;
    let send_initial = q.get("sendInitialEvents").is_some_and(|v| v == "true");
    let from = match q.get("resourceVersion").map(String::as_str) {
        None | Some("") => None,
        Some(_) if send_initial => None,
        Some(rv) => {
            Some(rv.parse::<u64>().map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv}")))?)
        }
    };
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|v| v == "true" || v == "1");
    let timeout = q.get("timeoutSeconds").and_then(|t| t.parse::<u64>().ok()).unwrap_or(1800);
    let res = rt.qualified();
    let start = match store.watch_start(&res, ns.as_deref(), from) {
        Ok(s) => s,
        Err(e) if e.code == 410 => {
            // As the API server does: a 200 stream with one ERROR event (the watcher then relists).
            let b = line(&json!({"type": "ERROR", "object": e.to_status()}));
            return Ok(stream_response(Body::from(b)));
        }
        Err(e) => return Err(e),
    };
    let mut w = Watch {
        rt: rt.clone(),
        res,
        ns,
        sel,
        queue: VecDeque::new(),
        rx: start.rx,
        last_rv: start.rv,
        deadline: Instant::now() + Duration::from_secs(timeout),
        bookmarks,
        tick: tokio::time::interval_at(Instant::now() + BOOKMARK_EVERY, BOOKMARK_EVERY),
    };
    for obj in start.initial.iter().filter(|o| w.sel.matches(o)) {
        w.queue.push_back(line(&json!({"type": "ADDED", "object": out(&rt, obj)})));
    }
    for rec in &start.replay {
        if let Some(b) = w.event(rec) {
            w.queue.push_back(b);
        }
    }
    if send_initial && bookmarks {
        w.queue.push_back(bookmark(&rt, start.rv, true));
    }
    let stream = futures::stream::unfold(w, Watch::next);
    Ok(stream_response(Body::from_stream(stream)))
}
