//! Serving the router over TCP with the bounds a shared server needs: a deadline for each
//! request's headers, a cap on connections served at once (more are closed as they arrive), and
//! a graceful shutdown that waits a bounded time for the requests in flight; optionally over TLS
//! that the server terminates itself (`--tls-cert`/`--tls-key`, rustls).
//!
//! ```text
//! accept ──▶ permit? ──no──▶ close
//!              │yes
//!              ▼
//!   (TLS handshake, within the header deadline)
//!              ▼
//!   hyper (header deadline, HTTP/1 and 2) ──▶ router (body deadline, body limit) ──▶ handlers
//! ```

use std::path::Path;
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

/// The TLS a server terminates: a PEM certificate chain (the server's first) and its PEM private
/// key, offered with HTTP/2 and HTTP/1.1. Errors name the flag and what is wrong with the file.
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("--tls-cert {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", cert.display()));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("--tls-key {}: {e}", key.display()))?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| format!("--tls-cert and --tls-key do not make a pair: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves the API on `listener` until `shutdown` resolves, over TLS when `tls` is given. Small
/// JSON answers go out at once (TCP_NODELAY): without it Nagle's algorithm and delayed ACKs add
/// ~40 ms to every call.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<ApiState>,
    bounds: Bounds,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state).layer(tower_http::timeout::RequestBodyTimeoutLayer::new(bounds.body_timeout));
    let permits = Arc::new(Semaphore::new(bounds.max_connections));
    let graceful = GracefulShutdown::new();
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
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
        let (service, http, watcher) = (TowerToHyperService::new(app.clone()), http.clone(), graceful.watcher());
        let Some(tls) = tls.clone() else {
            let connection =
                watcher.watch(http.serve_connection_with_upgrades(TokioIo::new(tcp), service).into_owned());
            tokio::spawn(async move {
                let _ = connection.await;
                drop(permit);
            });
            continue;
        };
        tokio::spawn(async move {
            // The handshake counts against the header deadline: a client that opens a connection
            // and says nothing holds it no longer than one that sends no headers.
            if let Ok(Ok(stream)) = tokio::time::timeout(bounds.header_timeout, tls.accept(tcp)).await {
                let served = http.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
                let _ = watcher.watch(served).await;
            }
            drop(permit);
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN_LIMIT, graceful.shutdown()).await;
    Ok(())
}
