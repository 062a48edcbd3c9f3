//! Local serving: the promoted version runs as a managed process behind a small switching proxy on
//! the experiment's serving port, so a new version takes over with no moment without a ready
//! server.
//!
//! ```text
//! clients ──▶ proxy :port ──▶ backend vN (127.0.0.1:ephemeral)      restarted with backoff if it dies
//! promote vN+1: start backend, wait for readinessPath, switch the proxy, drain, stop vN
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio::process::Command;
use tokio::sync::{Mutex, watch};
use tracing::{info, warn};

use crate::spec::ServeSpec;
use crate::trial::substitute;

/// How long a new version may take to answer its readiness path.
const READY_WITHIN: Duration = Duration::from_secs(30);
/// How long the old version keeps running after the switch, for requests already sent to it.
const DRAIN: Duration = Duration::from_millis(500);
/// Restart backoff for a crashed server: doubling from the first, capped at the second.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(30));

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to listen on serving port {port}")]
    Listen {
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to find a free port for the serving process")]
    FreePort(#[source] std::io::Error),
    #[error("version {version} did not answer {path} within {READY_WITHIN:?} (the previous version keeps serving)")]
    NotReady { version: String, path: String },
    #[error("spec.promotion.serve.command is empty")]
    NoCommand,
}

/// One running version: its port and the handle that stops it.
struct Backend {
    port: u16,
    version: String,
    stop: watch::Sender<bool>,
}

/// An experiment's proxy and current backend.
struct Endpoint {
    port: u16,
    target: Arc<AtomicU16>,
    current: Option<Backend>,
}

/// Every locally served experiment of this process.
#[derive(Default)]
pub struct ServingManager {
    endpoints: Mutex<HashMap<String, Endpoint>>,
}

impl ServingManager {
    /// Serves `model_dir` as `version` of `experiment`; returns the URL clients use.
    /// The server program starts in `workdir` (where the experiment's trials start).
    pub async fn switch(
        &self,
        experiment: &str,
        version: &str,
        model_dir: &Path,
        workdir: &Path,
        serve: &ServeSpec,
    ) -> Result<String, Error> {
        let mut endpoints = self.endpoints.lock().await;
        if !endpoints.contains_key(experiment) {
            let endpoint = open_proxy(serve.port.unwrap_or(0)).await?;
            endpoints.insert(experiment.to_string(), endpoint);
        }
        let backend = start_backend(version, model_dir, workdir, serve).await?;
        let endpoint = endpoints.get_mut(experiment).ok_or(Error::NoCommand)?;
        endpoint.target.store(backend.port, Ordering::Release);
        info!(experiment, version, port = endpoint.port, "serving switched");
        if let Some(old) = endpoint.current.replace(backend) {
            tokio::spawn(async move {
                tokio::time::sleep(DRAIN).await;
                let _ = old.stop.send(true);
                info!(version = %old.version, "previous version stopped");
            });
        }
        Ok(format!("http://127.0.0.1:{}", endpoint.port))
    }

    /// Stops every server (on shutdown).
    pub async fn stop_all(&self) {
        for (_, endpoint) in self.endpoints.lock().await.drain() {
            if let Some(backend) = endpoint.current {
                let _ = backend.stop.send(true);
            }
        }
    }
}

async fn open_proxy(port: u16) -> Result<Endpoint, Error> {
    let listener =
        tokio::net::TcpListener::bind(("127.0.0.1", port)).await.map_err(|source| Error::Listen { port, source })?;
    let port = listener.local_addr().map_err(|source| Error::Listen { port, source })?.port();
    let target = Arc::new(AtomicU16::new(0));
    let app = Router::new().fallback(forward).with_state((Arc::clone(&target), http_client()));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(Endpoint { port, target, current: None })
}

/// Sends one request on to the current backend.
async fn forward(State((target, client)): State<(Arc<AtomicU16>, reqwest::Client)>, request: Request) -> Response {
    let port = target.load(Ordering::Acquire);
    if port == 0 {
        return (StatusCode::SERVICE_UNAVAILABLE, "no version is being served yet").into_response();
    }
    let (parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let Ok(body) = axum::body::to_bytes(body, 64 << 20).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response();
    };
    let mut outgoing = client.request(parts.method, format!("http://127.0.0.1:{port}{path}")).body(body);
    for (name, value) in parts.headers.iter().filter(|(n, _)| *n != axum::http::header::HOST) {
        outgoing = outgoing.header(name, value);
    }
    match outgoing.send().await {
        Ok(answer) => {
            let mut response = Response::builder().status(answer.status());
            for (name, value) in answer.headers() {
                response = response.header(name, value);
            }
            response
                .body(Body::from_stream(answer.bytes_stream()))
                .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
        }
        Err(e) => (StatusCode::BAD_GATEWAY, format!("the serving process did not answer: {e}")).into_response(),
    }
}

async fn start_backend(version: &str, model_dir: &Path, workdir: &Path, serve: &ServeSpec) -> Result<Backend, Error> {
    if serve.command.is_empty() {
        return Err(Error::NoCommand);
    }
    let port = free_port().map_err(Error::FreePort)?;
    let lookup = |name: &str| match name {
        "modelDir" => Some(model_dir.display().to_string()),
        "port" => Some(port.to_string()),
        "version" => Some(version.to_string()),
        _ => None,
    };
    let command: Vec<String> = serve.command.iter().map(|c| substitute(c, &lookup)).collect();
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(keep_running(command, workdir.to_path_buf(), pid_file(model_dir), stopped));
    let path = serve.readiness_path.clone().unwrap_or_else(|| "/healthz".into());
    if !ready(port, &path).await {
        let _ = stop.send(true);
        return Err(Error::NotReady { version: version.into(), path });
    }
    Ok(Backend { port, version: version.into(), stop })
}

/// Runs the server until stopped, restarting it with backoff whenever it exits on its own.
async fn keep_running(command: Vec<String>, dir: std::path::PathBuf, pids: PathBuf, mut stop: watch::Receiver<bool>) {
    let mut backoff = BACKOFF.0;
    loop {
        let Some((program, args)) = command.split_first() else { return };
        let mut child =
            match Command::new(program).args(args).current_dir(&dir).kill_on_drop(true).process_group(0).spawn() {
                Ok(child) => child,
                Err(e) => {
                    warn!(error = %e, "failed to start the serving process");
                    return;
                }
            };
        let pid = child.id();
        remember(&pids, pid, true);
        let stopped = tokio::select! {
            status = child.wait() => {
                warn!(?status, "the serving process exited; restarting in {backoff:?}");
                false
            }
            _ = stop.wait_for(|s| *s) => true,
        };
        remember(&pids, pid, false);
        if stopped {
            let _ = child.kill().await;
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        backoff = (backoff * 2).min(BACKOFF.1);
    }
}

/// A plain-HTTP client to the local model server. reqwest is built with rustls but no provider
/// of its own (`rustls-no-provider`), so ring is installed first, as `client::Client` does.
fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn ready(port: u16, path: &str) -> bool {
    let client = http_client();
    let url = format!("http://127.0.0.1:{port}{path}");
    let deadline = tokio::time::Instant::now() + READY_WITHIN;
    while tokio::time::Instant::now() < deadline {
        if client.get(&url).send().await.is_ok_and(|r| r.status().is_success()) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Where the process ids of a model's running servers are kept, so that a tuna that was killed
/// before it could stop them ends them when it starts again (`reap_leftovers`).
fn pid_file(model_dir: &Path) -> PathBuf {
    model_dir.with_extension("pids")
}

/// Adds or removes a server's process id in its pid file.
fn remember(file: &Path, pid: Option<u32>, running: bool) {
    let Some(pid) = pid else { return };
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut pids: Vec<String> = text.lines().filter(|l| *l != pid.to_string()).map(String::from).collect();
    if running {
        pids.push(pid.to_string());
    }
    let _ = if pids.is_empty() { std::fs::remove_file(file) } else { std::fs::write(file, pids.join("\n")) };
}

/// Ends the servers a previous tuna left running under `models` (each in its own process group).
pub fn reap_leftovers(models: &Path) {
    let Ok(experiments) = std::fs::read_dir(models) else { return };
    for file in experiments.flatten().filter_map(|e| std::fs::read_dir(e.path()).ok()).flatten().flatten() {
        let path = file.path();
        if path.extension().is_some_and(|e| e == "pids") {
            for pid in std::fs::read_to_string(&path).unwrap_or_default().lines().filter_map(|l| l.parse::<i32>().ok())
            {
                let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
            let _ = std::fs::remove_file(&path);
        }
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
