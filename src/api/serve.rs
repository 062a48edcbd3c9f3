//! Serving the router over TCP with the bounds a shared server needs: a deadline for each
//! request's headers, a cap on connections served at once (more are closed as they arrive), and
//! a graceful shutdown that waits a bounded time for the requests in flight.
//!
//! ```text
//! accept ──▶ permit? ──no──▶ close
//!              │yes
//!              ▼
//!   hyper (header deadline, HTTP/1 and 2) ──▶ router (body deadline, body limit) ──▶ handlers
//! ```

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::sync::Semaphore;
use tracing::warn;

use super::{ApiState, router};

/// How long a shutdown waits for the requests in flight (a followed log never ends by itself).
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// What one client may take of the server.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// Time to send a request's headers.
    pub header_timeout: Duration,
    /// Time to send a request's body (then 408).
    pub body_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Default for Bounds {
    fn default() -> Self {
        Self { header_timeout: Duration::from_secs(10), body_timeout: Duration::from_secs(30), max_connections: 1024 }
    }
}

/// Serves the API on `listener` until `shutdown` resolves. Small JSON answers go out at once
/// (TCP_NODELAY): without it Nagle's algorithm and delayed ACKs add ~40 ms to every call.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<ApiState>,
    bounds: Bounds,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state).layer(tower_http::timeout::RequestBodyTimeoutLayer::new(bounds.body_timeout));
    let permits = Arc::new(Semaphore::new(bounds.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = Builder::new(TokioExecutor::new());
    http.http1().timer(TokioTimer::new()).header_read_timeout(bounds.header_timeout);
    tokio::pin!(shutdown);
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    warn!(error = %e, "failed to accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            drop(tcp); // over the limit: closed at once, costing nothing
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let connection = graceful.watch(http.serve_connection_with_upgrades(TokioIo::new(tcp), service).into_owned());
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN_LIMIT, graceful.shutdown()).await;
    Ok(())
}
