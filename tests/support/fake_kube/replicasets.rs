//! The ReplicaSet controller: keeps `spec.replicas` active pods of a ReplicaSet's template
//! (creating `<rs>-<5 random>` pods it controls, deleting the extras, not-ready and newest
//! first) and reports replicas, readyReplicas, availableReplicas and observedGeneration. Also the
//! garbage collector's part for these kinds: a ReplicaSet whose Deployment is gone, or a pod whose
//! ReplicaSet is gone, is deleted (an object created while its owner was being deleted).
//!
//! Simplified: pods are matched by their controller reference only (no adoption or release by
//! selector); minReadySeconds is ignored (a Ready pod is available at once).

use std::collections::HashSet;

use serde_json::{Value, json};

use super::kubelet::{Kubelet, has_condition};
use super::meta;
use super::pods::is_terminal;
use super::resources::{PODS, REPLICASETS};

const COMPONENT: &str = "replicaset-controller";

/// The ownerReference of `obj` that is its controller, if it is of `kind`.
pub fn controller_ref<'a>(obj: &'a Value, kind: &str) -> Option<&'a Value> {
    obj["metadata"]["ownerReferences"].as_array()?.iter().find(|r| r["controller"] == true && r["kind"] == kind)
}

/// Whether `obj` (in `ns`) is controlled by the object with `uid`.
pub fn controlled_by(obj: &Value, ns: &str, uid: &str) -> bool {
    meta::ns_of(obj) == ns
        && obj["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["controller"] == true && r["uid"] == uid)
}

pub fn count(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn is_ready(pod: &Value) -> bool {
    has_condition(pod, "Ready", "True")
}

impl Kubelet {
    /// One pass of the ReplicaSet controller over `sets`, with `pods` listed before them.
    pub(super) fn sync_replica_sets(&self, sets: &[Value], pods: &[Value], deployments: &[Value]) {
        self.collect_orphans(sets, pods, deployments);
        let uids: HashSet<String> = sets.iter().map(meta::uid_of).collect();
        self.replica_errors().retain(|uid, _| uids.contains(uid));
        for rs in sets.iter().filter(|r| !meta::is_deleting(r)) {
            self.sync_replica_set(rs, pods);
        }
    }

    /// Deletes what a real garbage collector deletes: dependents whose controller is gone.
    /// `pods` were listed before `sets`, and `sets` before `deployments`, so an owner missing
    /// from its list is really gone.
    fn collect_orphans(&self, sets: &[Value], pods: &[Value], deployments: &[Value]) {
        let live = |list: &[Value]| list.iter().map(meta::uid_of).collect::<HashSet<String>>();
        let (set_uids, deployment_uids) = (live(sets), live(deployments));
        for rs in sets {
            if controller_ref(rs, "Deployment")
                .is_some_and(|r| !deployment_uids.contains(r["uid"].as_str().unwrap_or("")))
            {
                self.store.delete_internal(REPLICASETS, &meta::ns_of(rs), &meta::name_of(rs), Some("Background"));
            }
        }
        for pod in pods {
            if controller_ref(pod, "ReplicaSet").is_some_and(|r| !set_uids.contains(r["uid"].as_str().unwrap_or(""))) {
                self.store.delete_internal(PODS, &meta::ns_of(pod), &meta::name_of(pod), Some("Background"));
            }
        }
    }

    fn sync_replica_set(&self, rs: &Value, pods: &[Value]) {
        let (ns, name, uid) = (meta::ns_of(rs), meta::name_of(rs), meta::uid_of(rs));
        let mut active: Vec<&Value> =
            pods.iter().filter(|p| controlled_by(p, &ns, &uid) && !is_terminal(p) && !meta::is_deleting(p)).collect();
        let want = usize::try_from(rs["spec"]["replicas"].as_i64().unwrap_or(1).max(0)).unwrap_or(0);
        if active.len() < want {
            for _ in active.len()..want {
                if !self.create_replica(rs) {
                    break;
                }
            }
        } else if active.len() > want {
            // Not ready before ready, then the newest first (a real controller ranks more finely).
            active.sort_by_key(|p| {
                (is_ready(p), std::cmp::Reverse(p["metadata"]["creationTimestamp"].as_str().unwrap_or("").to_string()))
            });
            for pod in active.drain(..active.len() - want) {
                let pod_name = meta::name_of(pod);
                if self.store.delete_internal(PODS, &ns, &pod_name, Some("Background")) {
                    self.event(rs, "Normal", "SuccessfulDelete", &format!("Deleted pod: {pod_name}"), COMPONENT);
                }
            }
        }
        let ready = active.iter().filter(|p| is_ready(p)).count();
        let mut status = json!({"replicas": active.len(), "observedGeneration": rs["metadata"]["generation"]});
        // A real ReplicaSet's status omits its zero counters, all but `replicas`.
        for (key, n) in [("fullyLabeledReplicas", active.len()), ("readyReplicas", ready), ("availableReplicas", ready)]
        {
            if n > 0 {
                status[key] = json!(n);
            }
        }
        if let Some(message) = self.replica_errors().get(&uid) {
            let old =
                rs["status"]["conditions"].as_array().and_then(|c| c.iter().find(|c| c["type"] == "ReplicaFailure"));
            let since = old.map_or_else(|| json!(meta::now_ts()), |c| c["lastTransitionTime"].clone());
            status["conditions"] = json!([{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                "message": message, "lastTransitionTime": since}]);
        }
        self.store.mutate(REPLICASETS, &ns, &name, |r| r["status"] = status);
    }

    /// Creates one pod from the ReplicaSet's template; false if that failed.
    fn create_replica(&self, rs: &Value) -> bool {
        let (ns, name, uid) = (meta::ns_of(rs), meta::name_of(rs), meta::uid_of(rs));
        let t = &rs["spec"]["template"];
        let mut pod =
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": t["metadata"].clone(), "spec": t["spec"].clone()});
        let m = meta::meta_mut(&mut pod);
        for key in ["name", "namespace", "creationTimestamp"] {
            m.remove(key);
        }
        m.insert("generateName".into(), json!(format!("{name}-")));
        m.insert(
            "ownerReferences".into(),
            json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": name,
                "uid": uid, "controller": true, "blockOwnerDeletion": true}]),
        );
        match self.store.create_internal(PODS, &ns, pod) {
            Ok(created) => {
                self.replica_errors().remove(&uid);
                let message = format!("Created pod: {}", meta::name_of(&created));
                self.event(rs, "Normal", "SuccessfulCreate", &message, COMPONENT);
                true
            }
            Err(e) => {
                let message = format!("Error creating: {}", e.message);
                // Reported once (a real controller backs off), or every pass would be a change.
                if self.replica_errors().insert(uid, message.clone()).as_ref() != Some(&message) {
                    self.event(rs, "Warning", "FailedCreate", &message, COMPONENT);
                }
                false
            }
        }
    }
}
