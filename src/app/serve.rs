//! `tuna serve`: the API and the controller over one store, with graceful shutdown.
//!
//! ```text
//! listen ──▶ (--watch-crds) hold the leader Lease ──▶ controller, promoter, CR reconciler; ready
//! SIGTERM or Lease lost ──▶ stop accepting, finish in-flight requests ──▶ interrupt every
//!             experiment (local trials end, Kubernetes trials run on; Interrupted, re-queued or
//!             re-attached on the next start) ──▶ release the Lease
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::{Context, bail};
use kube::Api;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::api::kube_trials::TrialPolicy;
use crate::api::{self, ApiState};
use crate::config::{Config, ServeConfig};
use crate::controller::crd::watch_crds;
use crate::controller::lease::Candidate;
use crate::controller::{Controller, TrialApi, supervise};
use crate::executor::{Dispatch, KubeExecutor, LocalExecutor};
use crate::promote::Promoter;
use crate::token::TrialSecret;

pub async fn serve(config: &Config, serve: &ServeConfig) -> anyhow::Result<ExitCode> {
    if !serve.listen.ip().is_loopback() && config.token.is_none() && !serve.insecure_no_auth {
        bail!(
            "refusing to listen on {} without a token: anyone who reaches it could run commands here. \
             Set --token (or TUNA_TOKEN), listen on 127.0.0.1, or pass --insecure-no-auth",
            serve.listen
        );
    }
    if let Some(why) = config.token.as_deref().and_then(crate::token::weak_api_token) {
        bail!(
            "refusing to start with --token (TUNA_TOKEN): {why}. On Kubernetes: kubectl -n tuna-system \
             create secret generic tuna-token --from-literal=token=\"$(openssl rand -hex 32)\""
        );
    }
    let tls = match (&serve.tls_cert, &serve.tls_key) {
        (Some(cert), Some(key)) => Some(api::tls_config(cert, key).map_err(anyhow::Error::msg)?),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let data_dir = std::path::absolute(config.data_dir()).context("failed to resolve the data dir")?;
    let store = super::open_store(&data_dir)?;
    // The experiment gauges start from the stored records, read once; writes move them after.
    store.experiments().context("failed to read the experiments")?.iter().for_each(|r| r.instrument());
    let secret = TrialSecret::load_or_create(&data_dir.join("secret")).context("failed to load the trial secret")?;
    let gpus = super::gpus(config)?;
    let listener = tokio::net::TcpListener::bind(serve.listen)
        .await
        .with_context(|| format!("failed to listen on {}", serve.listen))?;
    let address = listener.local_addr().context("failed to read the listening address")?;
    let mut state = ApiState::new(store.clone(), config.token.clone(), secret.clone(), gpus.len());
    let trial_namespace = serve.trial_namespace.clone().or_else(|| serve.namespace.first().cloned());
    state.kube_trials =
        TrialPolicy { namespace: trial_namespace.clone(), service_accounts: serve.trial_service_accounts.clone() };
    let state = Arc::new(state);
    let cluster = match super::cluster::client().await {
        Ok(found) => Some(found),
        Err(e) if serve.watch_crds => return Err(e.context("--watch-crds needs a cluster")),
        Err(e) => {
            info!("no Kubernetes cluster: {e:#}; experiments with executor kubernetes cannot start");
            None
        }
    };
    let kube = cluster.as_ref().map(|(client, default)| {
        // Jobs without a namespace of their own (API experiments) go to the trial namespace.
        KubeExecutor::new(client.clone(), trial_namespace.clone().unwrap_or_else(|| default.clone()))
    });
    let executor = Dispatch { local: LocalExecutor::new(gpus), kube };
    let advertised = serve.advertise_url.clone().unwrap_or_else(|| base_url(scheme, address));
    let controller = Controller::new(store.clone(), Arc::new(executor), data_dir.clone())
        .with_api(TrialApi { base_url: advertised, secret });

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut stopping = shutdown_rx.clone();
    let bounds = api::Bounds {
        header_timeout: std::time::Duration::from_secs(serve.header_timeout),
        body_timeout: std::time::Duration::from_secs(serve.body_timeout),
        max_connections: serve.max_connections,
    };
    let server = tokio::spawn(api::serve(listener, Arc::clone(&state), bounds, tls, async move {
        let _ = stopping.wait_for(|s| *s).await;
    }));
    eprintln!("tuna serving on {scheme}://{address} (data dir {})", data_dir.display());
    // With custom resources, controllers compete for a Lease: only its holder runs experiments,
    // and it is ready (for its Service) only once it holds it.
    let candidate = match (&cluster, serve.watch_crds) {
        (Some((client, default)), true) => {
            let namespace = serve.namespace.first().cloned().unwrap_or_else(|| default.clone());
            Some(Candidate::new(Api::namespaced(client.clone(), &namespace), leader_identity(&data_dir)))
        }
        _ => None,
    };
    if let Some(candidate) = &candidate {
        tokio::select! {
            () = candidate.acquire() => info!(identity = candidate.identity(), "holding the leader Lease"),
            () = super::wait_for_interrupt() => {
                let _ = shutdown_tx.send(true);
                server.await.context("the HTTP server task failed")?.context("the HTTP server failed")?;
                eprintln!("tuna stopped");
                return Ok(ExitCode::SUCCESS);
            }
        }
    }
    let supervisor = tokio::spawn(supervise(Arc::new(controller), shutdown_rx.clone()));
    let mut promoter = Promoter::new(store.clone(), &data_dir);
    if let Some((client, default)) = &cluster {
        promoter = promoter.with_cluster(client.clone(), trial_namespace.clone().unwrap_or_else(|| default.clone()));
    }
    let promoter = tokio::spawn(Arc::new(promoter).run(shutdown_rx.clone()));
    let crds = match (&cluster, serve.watch_crds) {
        (Some((client, default)), true) => {
            let namespaces = match (serve.all_namespaces, serve.namespace.is_empty()) {
                (true, _) => None,
                (false, true) => Some(vec![default.clone()]),
                (false, false) => Some(serve.namespace.clone()),
            };
            Some(tokio::spawn(watch_crds(client.clone(), store, namespaces, shutdown_rx.clone())))
        }
        _ => None,
    };
    // Ready only once every open ask/tell experiment can answer its first ask at full speed.
    let warming = Arc::clone(&state);
    let warmed = tokio::task::spawn_blocking(move || api::warm(&warming)).await;
    match warmed {
        Ok(Ok(n)) if n > 0 => info!(experiments = n, "ask/tell experiments warmed"),
        Ok(Ok(_)) => {}
        Ok(Err(e)) => warn!(error = %e, "failed to warm the ask/tell experiments; their first asks will be slower"),
        Err(e) => warn!(error = %e, "warming the ask/tell experiments crashed"),
    }
    state.ready.store(true, Ordering::Release);
    let lost = async {
        match &candidate {
            Some(candidate) => candidate.hold().await,
            None => std::future::pending().await,
        }
    };
    let lost = tokio::select! {
        () = super::wait_for_interrupt() => false,
        () = lost => true,
    };
    info!("shutting down: no new requests, interrupting running trials");
    state.ready.store(false, Ordering::Release);
    let _ = shutdown_tx.send(true);
    server.await.context("the HTTP server task failed")?.context("the HTTP server failed")?;
    supervisor.await.context("the controller task failed")?.context("the controller failed")?;
    promoter.await.context("the promoter failed")?;
    if let Some(crds) = crds {
        crds.await.context("the custom resource watcher failed")?;
    }
    if let Some(candidate) = &candidate {
        candidate.release().await;
    }
    if lost {
        bail!("lost the leader Lease to another controller; stopped so that only one runs experiments");
    }
    eprintln!("tuna stopped");
    Ok(ExitCode::SUCCESS)
}

/// Who this controller is to the Lease: the pod (HOSTNAME) and its data dir, so a restarted
/// container of the same pod takes its own Lease back at once, and two servers on one host differ.
fn leader_identity(data_dir: &std::path::Path) -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "tuna".into());
    let hash = data_dir
        .to_string_lossy()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("{host}-{:08x}", hash as u32)
}

/// The URL local trials use to reach this server (loopback when listening on every address).
fn base_url(scheme: &str, address: SocketAddr) -> String {
    if address.ip().is_unspecified() {
        format!("{scheme}://127.0.0.1:{}", address.port())
    } else {
        format!("{scheme}://{address}")
    }
}
