//! An in-process fake Kubernetes API server that speaks the real wire format (a real HTTP
//! server on 127.0.0.1), plus a fake kubelet, scheduler and Job controller that really run each
//! pod's first container as a local process. Tests talk to it through an ordinary `kube::Client`.
//!
//! ```ignore
//! mod support;
//! use support::fake_kube::FakeKube;
//! let fake = FakeKube::start().await;
//! let jobs: kube::Api<Job> = kube::Api::default_namespaced(fake.client());
//! ```
//!
//! Served: core/v1 pods (+ `status`, `log`), events, configmaps, secrets, serviceaccounts,
//! services (stored only), namespaces, nodes; batch/v1 jobs; apps/v1 deployments and replicasets
//! (+ `status`); events.k8s.io/v1 events; coordination.k8s.io/v1 leases;
//! apiextensions.k8s.io/v1 customresourcedefinitions (creating one serves its resource);
//! tuna.dev/v1alpha1 experiments (+ `status`); `/version`, `/api`, `/apis` discovery.
//! Namespaced and cluster-wide list/watch; create, get, list, watch, replace, patch (merge,
//! apply and strategic-merge as JSON merge; JSON patch), delete, deletecollection.
//!
//! As a real API server does (and tuna must cope with):
//! - a Job template's `restartPolicy` must be Never or OnFailure, containers need name+image
//!   (422 Invalid otherwise); a Job's template is immutable; Job names are at most 63 characters;
//! - deleting a batch/v1 Job WITHOUT `propagationPolicy` orphans its pods (they keep running);
//!   use `DeleteParams::background()` (or foreground) to delete them and kill their processes;
//! - objects go only into existing namespaces (`default`, `kube-system`, ... or `create_namespace`);
//! - `resourceVersion` in a write is a precondition (409 Conflict); status-subresource resources
//!   ignore `.status` on create and main writes, and `/status` writes change only `.status`;
//! - pod logs of a container that has not started are a 400 ("is waiting to start");
//! - a Complete Job has conditions SuccessCriteriaMet+Complete and `completionTime`; a failed one
//!   FailureTarget+Failed (BackoffLimitExceeded or DeadlineExceeded), no completionTime; on
//!   failure its active pods are deleted; zero counters (`active`, `succeeded`, `failed`) are omitted;
//! - a watch from a resourceVersion older than the kept history gets an ERROR event (410);
//! - a Job's `podFailurePolicy` is judged on each failed pod (Ignore: not counted, replaced;
//!   FailJob: the Job fails with reason PodFailurePolicy; Count), and `evict` gives a pod the
//!   DisruptionTarget condition and terminates it, as a drain or preemption does;
//! - blocked pods: `refuse_image` (ErrImagePull, then ImagePullBackOff), an env `valueFrom` of a
//!   missing Secret/ConfigMap or key (CreateContainerConfigError, until it appears; then the
//!   container gets the value, a Secret's decoded from base64), a namespace labelled with a Pod Security
//!   level refuses pods that break it (403; the Job controller's FailedCreate Event), and a queued
//!   namespace (`queue_jobs`, as Kueue) suspends new Jobs (condition Suspended) until `admit_jobs`;
//! - RBAC for the controller's ServiceAccount (requests with `CONTROLLER_TOKEN`) and for users
//!   (`user_client`; see `rbac`): the shipped Roles and bindings given to `enforce_rbac`, with the
//!   built-in ClusterRoles admin, edit and view aggregated from the ClusterRoles labelled
//!   `rbac.authorization.k8s.io/aggregate-to-*` (view into edit, edit into admin), 403 Forbidden
//!   for anything else;
//! - container statuses are listed by container name, not in the spec's order; a pod of several
//!   containers answers a log request that names none with 400 (name the container);
//! - a Deployment (selector matching its template's labels, restartPolicy Always; defaults
//!   filled in on every write) owns one ReplicaSet per distinct template, `<name>-<hash>` with the
//!   `pod-template-hash` label and `deployment.kubernetes.io/revision` (re-applying an earlier
//!   template reuses its ReplicaSet with the next revision, as `kubectl rollout undo`); the
//!   ReplicaSet keeps `replicas` pods `<rs>-<5 random>`; status counters (zeros omitted) and
//!   conditions Available and Progressing (NewReplicaSetCreated, FoundNewReplicaSet,
//!   ReplicaSetUpdated, NewReplicaSetAvailable, ProgressDeadlineExceeded after
//!   `progressDeadlineSeconds` without progress); ScalingReplicaSet Events; deleting a Deployment
//!   deletes its ReplicaSets and their pods (and their processes). Under restartPolicy Always a
//!   container that cannot start is retried (CrashLoopBackOff, the pod stays Running); a running
//!   container is Ready after 200ms (a crash-looping one never is).
//!
//! Simplifications: pods schedule on one node `fake-node` by `nvidia.com/gpu` only; only the first
//! container runs (others report waiting/Completed); no image: a container without `command`
//! fails (StartError); env: `value` and `valueFrom.fieldRef` only, plus PATH, HOME and HOSTNAME;
//! `$(VAR)` is expanded in command/args/env; the working dir is `workingDir` or a temp dir per pod;
//! pod deletion is immediate (SIGTERM, SIGKILL after min(grace, 3s)); no Job retry back-off
//! delay (restarts in place wait 0.5s); Foreground deletion acts like Background; strategic
//! merge and apply replace lists; `ttlSecondsAfterFinished`, Indexed Jobs,
//! init containers, probes, managedFields and field ownership are not modelled (an apply does
//! not remove fields an earlier apply set); core/v1 and events.k8s.io/v1 events are stored
//! separately. Deployments: a rolling update gives the new ReplicaSet all its replicas at once
//! and scales the old ones to 0 only once it has all of them available (no maxSurge /
//! maxUnavailable steps); minReadySeconds, `paused`, hash collisions and the revision-history
//! annotation are not modelled; ReplicaSets match pods by controller reference, not selector;
//! Services are stored, nothing routes through them.
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

mod aggregation;
mod blocked;
mod defaults;
mod deployments;
mod disruption;
mod errors;
mod item;
mod jobs;
mod kubelet;
mod logs;
mod meta;
mod patch;
mod pods;
mod process;
mod rbac;
mod replicasets;
mod requests;
mod resources;
mod routes;
mod selector;
mod store;
mod watch;
mod write;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::task::JoinHandle;

use self::kubelet::{Kubelet, NODE};
use self::resources::{NAMESPACES, NODES};
use self::store::Store;

pub use self::rbac::{CONTROLLER_TOKEN, Policy, Subject, kustomize, renamespace, rendered};
pub use self::requests::RequestLog;
pub use self::resources::ResourceType;

/// A running fake cluster: API server, one node, a kubelet, the Job controller and a scheduler.
pub struct FakeKube {
    url: String,
    store: Arc<Store>,
    kubelet: Arc<Kubelet>,
    requests: Arc<RequestLog>,
    rbac: Arc<std::sync::RwLock<Option<Policy>>>,
    users: Arc<std::sync::RwLock<std::collections::HashMap<String, Subject>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl FakeKube {
    /// Starts the API server on 127.0.0.1:<free port> and the kubelet, on the current tokio runtime.
    /// Namespaces `default`, `kube-system`, `kube-public` and `kube-node-lease` exist; the
    /// node `fake-node` has 0 GPUs.
    pub async fn start() -> FakeKube {
        let store = Arc::new(Store::new());
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            store.create_internal(NAMESPACES, "", json!({"metadata": {"name": ns}})).expect("create namespace");
        }
        store.create_internal(NODES, "", Kubelet::node_object()).expect("create node");
        let kubelet = Arc::new(Kubelet::new(store.clone()));
        kubelet.set_gpu_capacity(0);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let requests = Arc::new(RequestLog::new());
        let rbac = Arc::new(std::sync::RwLock::new(None));
        let users = Arc::new(std::sync::RwLock::new(std::collections::HashMap::new()));
        let app = routes::App {
            store: store.clone(),
            kubelet: kubelet.clone(),
            requests: requests.clone(),
            rbac: rbac.clone(),
            users: users.clone(),
        };
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, routes::router(app)).await;
        });
        let reconcile = tokio::spawn(kubelet.clone().run());
        FakeKube {
            url: format!("http://{addr}"),
            store,
            kubelet,
            requests,
            rbac,
            users,
            tasks: vec![server, reconcile],
        }
    }

    /// The API server's base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// An ordinary kube client configuration for this server (default namespace "default").
    pub fn config(&self) -> kube::Config {
        let mut config = kube::Config::new(self.url.parse().expect("server URL"));
        config.default_namespace = "default".into();
        config
    }

    /// Enforces `policy` on every request that carries the controller's token
    /// (`CONTROLLER_TOKEN`) or a user's (`user_client`): what it does not grant is answered 403
    /// Forbidden. The policy holds the built-in ClusterRoles admin, edit and view (aggregated).
    pub fn enforce_rbac(&self, policy: Policy) {
        *self.rbac.write().unwrap_or_else(|e| e.into_inner()) = Some(policy);
    }

    /// A client that acts as the controller's ServiceAccount (its bearer token), under RBAC.
    pub fn controller_client(&self) -> kube::Client {
        let mut config = self.config();
        config.auth_info.token = Some(CONTROLLER_TOKEN.to_string().into());
        kube::Client::try_from(config).expect("kube client")
    }

    /// A client that acts as the user `user` in `groups` (and `system:authenticated`), under
    /// the same RBAC: bindings name it by a `User` or `Group` subject.
    pub fn user_client(&self, user: &str, groups: &[&str]) -> kube::Client {
        let token = rbac::user_token(user);
        self.users.write().unwrap_or_else(|e| e.into_inner()).insert(token.clone(), Subject::user(user, groups));
        let mut config = self.config();
        config.auth_info.token = Some(token.into());
        kube::Client::try_from(config).expect("kube client")
    }

    /// A `kube::Client` built the ordinary way: `Client::try_from(Config::new(url))`.
    pub fn client(&self) -> kube::Client {
        kube::Client::try_from(self.config()).expect("kube client")
    }

    /// Sets the node's `nvidia.com/gpu` capacity (default 0). Pods asking for more than is free
    /// stay Pending (PodScheduled=False, Unschedulable); they schedule once capacity frees.
    pub fn set_gpu_capacity(&self, n: u64) {
        self.kubelet.set_gpu_capacity(n);
    }

    /// Creates a namespace (only these and `default`, `kube-system`, ... accept objects).
    pub fn create_namespace(&self, name: &str) {
        let _ = self.store.create_internal(NAMESPACES, "", json!({"metadata": {"name": name}}));
    }

    /// Creates a namespace with labels, e.g. `pod-security.kubernetes.io/enforce: restricted`
    /// (pods that break that Pod Security level are refused: the Job's FailedCreate).
    pub fn create_namespace_with_labels(&self, name: &str, labels: Value) {
        let _ = self.store.create_internal(NAMESPACES, "", json!({"metadata": {"name": name, "labels": labels}}));
    }

    /// Makes an image impossible to pull: its pods wait in ErrImagePull, then ImagePullBackOff.
    pub fn refuse_image(&self, image: &str) {
        self.kubelet.refused_images().insert(image.to_string());
    }

    /// Lets a queue (as Kueue does) manage `ns`: every Job created there starts suspended
    /// (`spec.suspend: true`, condition Suspended) until `admit_jobs`.
    pub fn queue_jobs(&self, ns: &str) {
        self.store.mutate(NAMESPACES, "", ns, |n| n["metadata"]["labels"][blocked::QUEUED] = json!("true"));
    }

    /// Admits every queued Job of `ns` (un-suspends it), as the queue does when quota frees.
    pub fn admit_jobs(&self, ns: &str) {
        let jobs: Vec<Value> = self.objects("jobs").into_iter().filter(|j| j["metadata"]["namespace"] == ns).collect();
        for job in jobs {
            self.store.mutate(resources::JOBS, ns, &meta::name_of(&job), |j| j["spec"]["suspend"] = json!(false));
        }
    }

    /// Registers another resource type (as creating a CRD through the API also does).
    pub fn register(&self, rt: ResourceType) {
        self.store.registry.register(rt);
    }

    fn storage_key(&self, plural: &str) -> String {
        self.store.registry.find_by_name(plural).map_or_else(|| plural.to_string(), |rt| rt.qualified())
    }

    /// All stored objects of a resource, in all namespaces: by plural ("jobs", "pods",
    /// "experiments"; "events" gives core and events.k8s.io events) or as `plural.group`.
    pub fn objects(&self, plural: &str) -> Vec<Value> {
        let prefix = format!("{plural}.");
        self.store.objects_where(|r| r == plural || r.starts_with(&prefix))
    }

    /// One stored object (`ns` is "" for cluster-scoped resources).
    pub fn get(&self, plural: &str, ns: &str, name: &str) -> Option<Value> {
        self.store.get(&self.storage_key(plural), ns, name)
    }

    /// A pod's log so far (its current container run), if a container has started.
    pub fn pod_log(&self, ns: &str, name: &str) -> Option<String> {
        let pod = self.get("pods", ns, name)?;
        self.kubelet.log_for(&meta::uid_of(&pod), false).map(|l| l.text())
    }

    /// Every request the API server has answered, in order (count them with `len` and `since`).
    pub fn requests(&self) -> &RequestLog {
        &self.requests
    }

    /// Evicts a pod as the Eviction API or a node drain does (DisruptionTarget=True, SIGTERM);
    /// false when there is no such pod. A Job's `podFailurePolicy` decides what that costs it.
    pub fn evict(&self, ns: &str, pod: &str) -> bool {
        self.kubelet.evict(ns, pod)
    }

    /// Pids of container processes still running.
    pub fn running_pids(&self) -> Vec<i32> {
        self.kubelet.running_pids()
    }

    /// Waits until `f` holds for the stored object (polling every 50ms), up to `timeout`.
    pub async fn wait_for(
        &self,
        plural: &str,
        ns: &str,
        name: &str,
        timeout: Duration,
        f: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let end = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(v) = self.get(plural, ns, name).filter(|v| f(v)) {
                return Some(v);
            }
            if tokio::time::Instant::now() >= end {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Keeps only the last `n` changes for watches that resume from a resourceVersion (default
    /// 20000): a watch from an older one gets an ERROR event with a 410 Expired Status, as from a
    /// real API server, and kube-runtime watchers then relist.
    pub fn set_watch_history(&self, n: usize) {
        self.store.set_history_cap(n);
    }

    /// Kills every running pod process (SIGKILL to its process group) and stops the kubelet and
    /// the server's accept loop; open watch streams end (other open connections end with the runtime).
    pub fn stop(&self) {
        self.kubelet.stop();
        self.store.close_watches();
        for t in &self.tasks {
            t.abort();
        }
    }

    /// The name of the fake node.
    pub fn node_name(&self) -> &'static str {
        NODE
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.stop();
    }
}
