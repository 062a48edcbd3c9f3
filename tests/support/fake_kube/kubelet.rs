//! The fake kubelet (with the Job, ReplicaSet and Deployment controllers and the scheduler folded
//! in): it watches its own store in-process and runs pods' primary containers as local processes.
//! See `jobs.rs`, `replicasets.rs`, `deployments.rs` and `pods.rs`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::logs::LogBuf;
use super::meta;
use super::process::Run;
use super::resources::{EVENTS, NODES};
use super::store::Store;

/// The one node of the fake cluster.
pub const NODE: &str = "fake-node";
/// The grace period between SIGTERM and SIGKILL is the pod's, but at most this.
pub const MAX_GRACE: Duration = Duration::from_secs(3);
/// Delay before restarting a container (restartPolicy OnFailure/Always).
pub const RESTART_DELAY: Duration = Duration::from_millis(500);
/// A running container is reported ready (no probes are modelled) once it has run this long, as a
/// real kubelet's status lags a start: a container that exits at once (a crash loop) is never
/// seen Ready, so it never counts as a Deployment's progress.
pub const READY_AFTER: Duration = Duration::from_millis(200);

/// The container runs of one pod.
pub struct RunSlot {
    pub current: Arc<Run>,
    pub previous: Option<Arc<Run>>,
    pub restarts: u32,
    pub first_start: Instant,
    pub restart_at: Option<Instant>,
}

/// What the Job controller remembers about a Job (terminated pods stay counted after deletion).
pub struct JobTrack {
    pub started: Instant,
    pub succeeded: HashSet<String>,
    pub failed: HashSet<String>,
    /// The last pod creation error reported (reported once, not on every pass).
    pub create_error: Option<String>,
}

pub struct Kubelet {
    pub store: Arc<Store>,
    gpu: AtomicU64,
    runs: Mutex<HashMap<String, RunSlot>>,
    jobs: Mutex<HashMap<String, JobTrack>>,
    stopped: AtomicBool,
    /// Images that cannot be pulled (ErrImagePull, then ImagePullBackOff).
    refused_images: Mutex<HashSet<String>>,
    /// The last pod creation error of each ReplicaSet (by uid), reported once.
    replica_errors: Mutex<HashMap<String, String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Conditions with `(type, status, reason, message)`, keeping the lastTransitionTime of any
/// condition in `old` whose type and status are unchanged.
pub fn conditions(old: &Value, new: &[(&str, &str, &str, &str)]) -> Value {
    let now = meta::now_ts();
    let list: Vec<Value> = new
        .iter()
        .map(|(typ, status, reason, message)| {
            let prev = old.as_array().into_iter().flatten().find(|c| c["type"] == *typ && c["status"] == *status);
            let mut c = json!({"type": typ, "status": status, "lastProbeTime": null,
                "lastTransitionTime": prev.map_or(json!(now), |p| p["lastTransitionTime"].clone())});
            if !reason.is_empty() {
                c["reason"] = json!(reason);
            }
            if !message.is_empty() {
                c["message"] = json!(message);
            }
            c
        })
        .collect();
    Value::Array(list)
}

pub fn has_condition(obj: &Value, typ: &str, status: &str) -> bool {
    obj["status"]["conditions"].as_array().into_iter().flatten().any(|c| c["type"] == typ && c["status"] == status)
}

impl Kubelet {
    pub fn new(store: Arc<Store>) -> Self {
        Kubelet {
            store,
            gpu: AtomicU64::new(0),
            runs: Mutex::new(HashMap::new()),
            jobs: Mutex::new(HashMap::new()),
            stopped: AtomicBool::new(false),
            refused_images: Mutex::new(HashSet::new()),
            replica_errors: Mutex::new(HashMap::new()),
        }
    }

    pub(super) fn runs(&self) -> MutexGuard<'_, HashMap<String, RunSlot>> {
        lock(&self.runs)
    }

    pub(super) fn refused_images(&self) -> MutexGuard<'_, HashSet<String>> {
        lock(&self.refused_images)
    }

    pub(super) fn jobs(&self) -> MutexGuard<'_, HashMap<String, JobTrack>> {
        lock(&self.jobs)
    }

    pub(super) fn replica_errors(&self) -> MutexGuard<'_, HashMap<String, String>> {
        lock(&self.replica_errors)
    }

    pub fn gpu_capacity(&self) -> u64 {
        self.gpu.load(Ordering::SeqCst)
    }

    /// Sets the node's `nvidia.com/gpu` capacity; pending pods are rescheduled.
    pub fn set_gpu_capacity(&self, n: u64) {
        self.gpu.store(n, Ordering::SeqCst);
        self.store.mutate(NODES, "", NODE, |node| node["status"] = Self::node_status(n, &node["status"]));
        self.store.changed.notify_one();
    }

    /// The Node object (its status is written separately: status is dropped on create).
    pub fn node_object() -> Value {
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE, "labels": {
            "kubernetes.io/hostname": NODE, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}},
            "spec": {}})
    }

    pub fn node_status(gpus: u64, old: &Value) -> Value {
        let resources = json!({"cpu": "2", "memory": "24Gi", "pods": "110", "nvidia.com/gpu": gpus.to_string()});
        json!({
            "capacity": resources, "allocatable": resources,
            "conditions": conditions(&old["conditions"], &[("Ready", "True", "KubeletReady", "kubelet is posting ready status")]),
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": NODE}],
            "nodeInfo": {"architecture": "amd64", "bootID": "fake", "containerRuntimeVersion": "fake://1.0",
                "kernelVersion": "fake", "kubeProxyVersion": "v1.33.0", "kubeletVersion": "v1.33.0",
                "machineID": "fake", "operatingSystem": "linux", "osImage": "fake", "systemUUID": "fake"},
        })
    }

    /// The current (or previous) container run's log of a pod, if a container has started.
    pub fn log_for(&self, pod_uid: &str, previous: bool) -> Option<LogBuf> {
        let runs = self.runs();
        let slot = runs.get(pod_uid)?;
        let run = if previous { slot.previous.as_ref()? } else { &slot.current };
        Some(run.log.clone())
    }

    /// Pids of container processes that have not exited.
    pub fn running_pids(&self) -> Vec<i32> {
        self.runs().values().filter(|s| s.current.exit().is_none()).filter_map(|s| s.current.pid).collect()
    }

    /// Stops reconciling and SIGKILLs every running container process group.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        for slot in self.runs().values() {
            slot.current.kill_now();
        }
    }

    /// The reconcile loop: on every store change (and every 100ms, for deadlines).
    pub async fn run(self: Arc<Self>) {
        loop {
            tokio::select! {
                _ = self.store.changed.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
            if self.stopped.load(Ordering::SeqCst) {
                break;
            }
            self.sync_jobs();
            self.sync_deployments();
            self.sync_pods();
        }
    }

    /// Records a core/v1 Event about `obj`.
    pub fn event(&self, obj: &Value, typ: &str, reason: &str, message: &str, component: &str) {
        let now = meta::now_ts();
        let name = meta::name_of(obj);
        let ev = json!({
            "metadata": {"name": format!("{name}.{:016x}", rand::random::<u64>())},
            "involvedObject": {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": name,
                "namespace": meta::ns_of(obj), "uid": meta::uid_of(obj),
                "resourceVersion": obj["metadata"]["resourceVersion"]},
            "reason": reason, "message": message, "type": typ,
            "source": {"component": component, "host": NODE},
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "reportingComponent": component, "reportingInstance": NODE,
        });
        let _ = self.store.create_internal(EVENTS, &meta::ns_of(obj), ev);
    }
}
