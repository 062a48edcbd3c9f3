//! The cluster as the trials see it: per namespace, one watch of tuna's trial Jobs and one of their
//! pods, kept in memory (kube-runtime reflectors) and shared by every trial running there. A trial
//! looks at its Job and pods in these caches when something changed (or on a short tick, for its
//! deadlines), never by asking the API server: requests grow with namespaces, not with trials.
//!
//! ```text
//! API server ══watch Jobs (tuna.dev/experiment)══▶ reflector ─┐
//!            ══watch Pods (tuna.dev/experiment)══▶ reflector ─┼─▶ changed (a counter) ─▶ every trial
//!                                                             │        in the namespace looks again
//! trial ─▶ Namespace::job(name), pods_of(name) ◀──────────────┘        at its Job and pods
//! ```
//! A watch that fails is retried with kube-runtime's backoff and relists. A Job not in the cache
//! yet (just created, or the watch still listing) is waited for; one that was there and is gone
//! was deleted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use tokio::sync::watch;
use tracing::warn;

use super::job::EXPERIMENT_LABEL;

/// The labels the Job controller puts on a Job's pods: the Job's UID (not its name, which a
/// replaced Job shares); the first since Kubernetes 1.27, the second before (and still, beside it).
const CONTROLLER_UID_LABELS: [&str; 2] = ["batch.kubernetes.io/controller-uid", "controller-uid"];

/// The watches of every namespace a trial has run in.
pub struct Watches {
    client: Client,
    namespaces: Mutex<HashMap<String, Arc<Namespace>>>,
}

/// One namespace's trial Jobs and pods, as last seen.
pub struct Namespace {
    jobs: Store<Job>,
    pods: Store<Pod>,
    namespace: String,
    changed: watch::Receiver<u64>,
}

impl Watches {
    pub fn new(client: Client) -> Self {
        Self { client, namespaces: Mutex::default() }
    }

    /// The namespace's caches, its watches started on first use (they run for the executor's life).
    pub fn namespace(&self, namespace: &str) -> Arc<Namespace> {
        let mut namespaces = self.namespaces.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = namespaces.entry(namespace.to_string());
        Arc::clone(entry.or_insert_with(|| Arc::new(Namespace::start(self.client.clone(), namespace))))
    }
}

impl Namespace {
    fn start(client: Client, namespace: &str) -> Self {
        let (tx, changed) = watch::channel(0u64);
        let tx = Arc::new(tx);
        let jobs = reflect::<Job>(Api::namespaced(client.clone(), namespace), Arc::clone(&tx));
        let pods = reflect::<Pod>(Api::namespaced(client, namespace), tx);
        Self { jobs, pods, namespace: namespace.to_string(), changed }
    }

    /// A subscription to "something changed in this namespace's trial Jobs or pods".
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changed.clone()
    }

    /// The Job of this name, as last seen.
    pub fn job(&self, name: &str) -> Option<Arc<Job>> {
        self.jobs.get(&ObjectRef::new(name).within(&self.namespace))
    }

    /// The pods of the Job with this UID, as last seen.
    pub fn pods_of(&self, job_uid: &str) -> Vec<Arc<Pod>> {
        self.pods.state_filter(|pod| {
            let labels = pod.meta().labels.as_ref();
            labels.and_then(|l| CONTROLLER_UID_LABELS.iter().find_map(|k| l.get(*k))).is_some_and(|u| u == job_uid)
        })
    }
}

/// Starts a reflector of tuna's objects of one kind in `api`'s namespace; every event bumps `tx`.
fn reflect<K>(api: Api<K>, tx: Arc<watch::Sender<u64>>) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let config = watcher::Config::default().labels(EXPERIMENT_LABEL);
    let stream = watcher(api, config).default_backoff().reflect(writer);
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            if let Err(e) = event {
                warn!(kind = %K::kind(&()), error = %e, "watching the trials' objects failed; retrying");
            }
            tx.send_modify(|n| *n = n.wrapping_add(1));
        }
    });
    reader
}
