//! Container logs: a growing buffer per container run, and the `pods/{name}/log` endpoint
//! (plain or `follow=true`, streaming until the container ends).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;

use super::errors::ApiError;
use super::meta;
use super::resources::PODS;
use super::routes::App;

/// The combined stdout+stderr of one container run.
#[derive(Clone)]
pub struct LogBuf {
    data: Arc<Mutex<Vec<u8>>>,
    /// (bytes so far, closed)
    tx: Arc<watch::Sender<(usize, bool)>>,
}

impl LogBuf {
    pub fn new() -> Self {
        let (tx, _) = watch::channel((0, false));
        LogBuf { data: Arc::new(Mutex::new(Vec::new())), tx: Arc::new(tx) }
    }

    pub fn append(&self, bytes: &[u8]) {
        let len = {
            let mut d = self.data.lock().unwrap_or_else(|e| e.into_inner());
            d.extend_from_slice(bytes);
            d.len()
        };
        self.tx.send_modify(|s| s.0 = len);
    }

    /// No more output will come (the pipe reached end of file).
    pub fn close(&self) {
        self.tx.send_modify(|s| s.1 = true);
    }

    /// Waits until the log is closed.
    pub async fn closed(&self) {
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(|s| s.1).await;
    }

    pub fn is_closed(&self) -> bool {
        self.tx.borrow().1
    }

    pub fn snapshot(&self) -> Vec<u8> {
        self.data.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.snapshot()).into_owned()
    }

    fn slice_from(&self, offset: usize) -> Vec<u8> {
        let d = self.data.lock().unwrap_or_else(|e| e.into_inner());
        d.get(offset..).map(<[u8]>::to_vec).unwrap_or_default()
    }

    /// The bytes from `offset` on, as they come, ending when the log is closed.
    pub fn follow(&self, offset: usize) -> impl futures::Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
        let me = self.clone();
        let rx = self.tx.subscribe();
        futures::stream::unfold((me, rx, offset), |(me, mut rx, offset)| async move {
            loop {
                let (len, closed) = *rx.borrow_and_update();
                if len > offset {
                    let chunk = me.slice_from(offset);
                    let next = offset + chunk.len();
                    return Some((Ok(Bytes::from(chunk)), (me, rx, next)));
                }
                if closed || rx.changed().await.is_err() {
                    return None;
                }
            }
        })
    }
}

/// Offset of the start of the last `n` lines.
fn tail_offset(data: &[u8], n: usize) -> usize {
    let mut seen = 0;
    let end = if data.last() == Some(&b'\n') { data.len() - 1 } else { data.len() };
    for i in (0..end).rev() {
        if data[i] == b'\n' {
            seen += 1;
            if seen == n {
                return i + 1;
            }
        }
    }
    if n == 0 { data.len() } else { 0 }
}

/// `GET /api/v1/namespaces/{ns}/pods/{name}/log`
pub fn log_response(app: &App, ns: &str, name: &str, q: &HashMap<String, String>) -> Result<Response, ApiError> {
    let rt = app.store.rt(PODS);
    let pod = app.store.get(PODS, ns, name).ok_or_else(|| ApiError::not_found(&rt, name))?;
    let names: Vec<String> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(String::from))
        .collect();
    let container = match q.get("container") {
        Some(c) if !c.is_empty() => c.clone(),
        _ if names.len() == 1 => names[0].clone(),
        _ => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                names.join(" ")
            )));
        }
    };
    if !names.contains(&container) {
        return Err(ApiError::bad_request(format!("container {container} is not valid for pod {name}")));
    }
    let text = |b: Body| ([(CONTENT_TYPE, "text/plain")], b).into_response();
    if names.first() != Some(&container) {
        // Only the first container really runs in the fake kubelet.
        return Ok(text(Body::empty()));
    }
    let previous = q.get("previous").is_some_and(|v| v == "true");
    let Some(log) = app.kubelet.log_for(&meta::uid_of(&pod), previous) else {
        let msg = if previous {
            format!("previous terminated container \"{container}\" in pod \"{name}\" not found")
        } else {
            format!("container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating")
        };
        return Err(ApiError::bad_request(msg));
    };
    let data = log.snapshot();
    let start = q.get("tailLines").and_then(|n| n.parse().ok()).map_or(0, |n| tail_offset(&data, n));
    if q.get("follow").is_some_and(|v| v == "true" || v == "1") {
        return Ok(text(Body::from_stream(log.follow(start))));
    }
    let mut out = data[start..].to_vec();
    if let Some(limit) = q.get("limitBytes").and_then(|n| n.parse::<usize>().ok()) {
        out.truncate(limit);
    }
    Ok(text(Body::from(out)))
}
