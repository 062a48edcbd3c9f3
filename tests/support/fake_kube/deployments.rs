//! The Deployment controller, as kube-controller-manager's: one ReplicaSet per distinct pod
//! template (`<deployment>-<hash of the template>`, labelled `pod-template-hash`), revisions, the
//! rollout (RollingUpdate or Recreate), the rollout's status and its Available and Progressing
//! conditions (with `progressDeadlineSeconds`), and ScalingReplicaSet Events.
//!
//! ```text
//! Deployment ─▶ template's ReplicaSet (found: a rollback, next revision; or created)
//!   ─▶ scaled to spec.replicas ─▶ all its replicas available ─▶ old ReplicaSets scaled to 0
//!   ─▶ status from the ReplicaSets' statuses ─▶ Available, Progressing (complete, progressing,
//!      or no progress for progressDeadlineSeconds: ProgressDeadlineExceeded)
//! ```
//!
//! Simplified: RollingUpdate does not step by maxSurge/maxUnavailable: the new ReplicaSet gets
//! all its replicas at once, and the old ones are scaled to 0 only once the new one has all its
//! replicas available (so a crash-looping new version never takes an old pod away, as with the
//! default 25%/25% on one replica). `paused`, `revision-history` annotations, hash collisions
//! (`collisionCount`) and minReadySeconds are not modelled.

use serde_json::{Value, json};

use super::kubelet::Kubelet;
use super::meta;
use super::replicasets::{controlled_by, count};
use super::resources::{DEPLOYMENTS, PODS, REPLICASETS};

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const HASH_LABEL: &str = "pod-template-hash";
const COMPONENT: &str = "deployment-controller";

/// A stable hash of a pod template (without its `pod-template-hash` label): 10 characters of
/// the alphabet Kubernetes encodes such hashes in.
pub fn template_hash(template: &Value) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in canonical(&without_hash(template)).bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (0..10)
        .map(|_| {
            let c = ALPHABET[(h % 27) as usize] as char;
            h /= 27;
            c
        })
        .collect()
}

/// JSON with object keys sorted, so equal templates hash equal whatever their key order.
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys.iter().map(|k| format!("{}:{}", json!(k), canonical(&m[*k]))).collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(a) => format!("[{}]", a.iter().map(canonical).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

fn without_hash(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(labels) = t.pointer_mut("/metadata/labels").and_then(Value::as_object_mut) {
        labels.remove(HASH_LABEL);
    }
    t
}

fn revision(obj: &Value) -> i64 {
    obj["metadata"]["annotations"][REVISION].as_str().and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// An int-or-percent of `total` (`"25%"`, `1`), rounded up or down.
fn scaled(v: &Value, total: i64, round_up: bool) -> i64 {
    match v {
        Value::String(s) if s.ends_with('%') => {
            let pct: i64 = s.trim_end_matches('%').parse().unwrap_or(25);
            if round_up { (pct * total + 99) / 100 } else { pct * total / 100 }
        }
        Value::String(s) => s.parse().unwrap_or(0),
        other => other.as_i64().unwrap_or(0),
    }
}

/// (maxSurge, maxUnavailable) resolved against `desired` (Recreate: no surge, none unavailable).
fn fenceposts(d: &Value, desired: i64) -> (i64, i64) {
    let strategy = &d["spec"]["strategy"];
    if strategy["type"] == "Recreate" || desired == 0 {
        return (0, 0);
    }
    let surge = scaled(&strategy["rollingUpdate"]["maxSurge"], desired, true);
    let unavailable = scaled(&strategy["rollingUpdate"]["maxUnavailable"], desired, false);
    // Both zero would never progress: the API server refuses it, the controller assumes one.
    let unavailable = if surge == 0 && unavailable == 0 { 1 } else { unavailable };
    (surge, unavailable.min(desired))
}

fn condition<'a>(status: &'a Value, typ: &str) -> Option<&'a Value> {
    status["conditions"].as_array()?.iter().find(|c| c["type"] == typ)
}

/// Sets a condition as the controller's `SetDeploymentCondition`: unchanged when its status and
/// reason are; keeps lastTransitionTime when only the reason changes; the new one goes last.
fn set_condition(status: &mut Value, typ: &str, state: &str, reason: &str, message: &str) {
    let old = condition(status, typ).cloned();
    if old.as_ref().is_some_and(|c| c["status"] == state && c["reason"] == reason) {
        return;
    }
    let now = json!(meta::now_ts());
    let since = old.filter(|c| c["status"] == state).map_or(now.clone(), |c| c["lastTransitionTime"].clone());
    let mut list: Vec<Value> = status["conditions"].as_array().cloned().unwrap_or_default();
    list.retain(|c| c["type"] != typ);
    list.push(json!({"type": typ, "status": state, "lastUpdateTime": now, "lastTransitionTime": since,
        "reason": reason, "message": message}));
    status["conditions"] = Value::Array(list);
}

/// Whether the last progress recorded (the Progressing condition's lastUpdateTime) is older than
/// the deadline, or the rollout had already timed out.
fn timed_out(status: &Value, deadline: i64) -> bool {
    let Some(c) = condition(status, "Progressing") else { return false };
    if c["reason"] == "ProgressDeadlineExceeded" {
        return true;
    }
    let Some(since) = c["lastUpdateTime"].as_str().and_then(|s| s.parse::<jiff::Timestamp>().ok()) else {
        return false;
    };
    jiff::Timestamp::now().as_second() > since.as_second() + deadline
}

/// The ReplicaSet counters a Deployment's status sums.
struct Counts {
    replicas: i64,
    updated: i64,
    ready: i64,
    available: i64,
    unavailable: i64,
}

impl Kubelet {
    /// One pass of the ReplicaSet and Deployment controllers.
    pub(super) fn sync_deployments(&self) {
        let (pods, _) = self.store.list(PODS, None);
        let (sets, _) = self.store.list(REPLICASETS, None);
        let (deployments, _) = self.store.list(DEPLOYMENTS, None);
        self.sync_replica_sets(&sets, &pods, &deployments);
        let (sets, _) = self.store.list(REPLICASETS, None);
        for d in deployments.iter().filter(|d| !meta::is_deleting(d)) {
            self.sync_deployment(d, &sets);
        }
    }

    fn sync_deployment(&self, d: &Value, sets: &[Value]) {
        let (ns, name, uid) = (meta::ns_of(d), meta::name_of(d), meta::uid_of(d));
        let owned: Vec<&Value> = sets.iter().filter(|rs| controlled_by(rs, &ns, &uid)).collect();
        let mut status = if d["status"].is_object() { d["status"].clone() } else { json!({}) };
        let Some(new) = self.new_replica_set(d, &owned, &mut status) else { return };
        let new_name = meta::name_of(&new);
        let desired = d["spec"]["replicas"].as_i64().unwrap_or(1).max(0);
        let old: Vec<&Value> = owned.iter().copied().filter(|rs| meta::name_of(rs) != new_name).collect();
        let recreate = d["spec"]["strategy"]["type"] == "Recreate";
        let old_pods: i64 = old.iter().map(|rs| count(&rs["status"]["replicas"])).sum();
        if !recreate || old_pods == 0 {
            self.scale(d, &new, desired);
        }
        if recreate || count(&new["status"]["availableReplicas"]) >= desired {
            for rs in old.iter().filter(|rs| count(&rs["spec"]["replicas"]) > 0) {
                self.scale(d, rs, 0);
            }
        }
        self.clean_up(d, &old);
        let all: Vec<Value> = owned
            .iter()
            .map(|rs| meta::name_of(rs))
            .chain(std::iter::once(new_name.clone()))
            .collect::<std::collections::BTreeSet<String>>()
            .iter()
            .filter_map(|n| self.store.get(REPLICASETS, &ns, n))
            .collect();
        let counts = counts(&all, &new_name);
        write_counts(&mut status, d, &counts);
        rollout_conditions(&mut status, d, &counts, desired, &new_name);
        let rev = new["metadata"]["annotations"][REVISION].as_str().map(String::from);
        self.store.mutate(DEPLOYMENTS, &ns, &name, |x| {
            x["status"] = status;
            if let Some(rev) = rev {
                meta::meta_mut(x).entry("annotations").or_insert_with(|| json!({}))[REVISION] = json!(rev);
            }
        });
    }

    /// The ReplicaSet of the Deployment's current template: an existing one (given the next
    /// revision when it is not the latest: a rollback) or a new one.
    fn new_replica_set(&self, d: &Value, owned: &[&Value], status: &mut Value) -> Option<Value> {
        let template = without_hash(&d["spec"]["template"]);
        let latest = owned.iter().map(|rs| revision(rs)).max().unwrap_or(0);
        let has_deadline = d["spec"]["progressDeadlineSeconds"].is_i64();
        if let Some(rs) = owned.iter().find(|rs| without_hash(&rs["spec"]["template"]) == template) {
            if has_deadline && condition(status, "Progressing").is_none() {
                let message = format!("Found new replica set {:?}", meta::name_of(rs));
                set_condition(status, "Progressing", "True", "FoundNewReplicaSet", &message);
            }
            if revision(rs) == latest {
                return Some((*rs).clone());
            }
            let next = (latest + 1).to_string();
            return self.store.mutate(REPLICASETS, &meta::ns_of(rs), &meta::name_of(rs), |r| {
                meta::meta_mut(r).entry("annotations").or_insert_with(|| json!({}))[REVISION] = json!(next);
            });
        }
        let created = self.create_replica_set(d, latest + 1)?;
        if has_deadline {
            let message = format!("Created new replica set {:?}", meta::name_of(&created));
            set_condition(status, "Progressing", "True", "NewReplicaSetCreated", &message);
        }
        Some(created)
    }

    fn create_replica_set(&self, d: &Value, revision: i64) -> Option<Value> {
        let (ns, name, uid) = (meta::ns_of(d), meta::name_of(d), meta::uid_of(d));
        let hash = template_hash(&d["spec"]["template"]);
        let mut template = d["spec"]["template"].clone();
        meta::meta_mut(&mut template).entry("labels").or_insert_with(|| json!({}))[HASH_LABEL] = json!(hash);
        let mut selector = d["spec"]["selector"].clone();
        selector["matchLabels"][HASH_LABEL] = json!(hash);
        let desired = d["spec"]["replicas"].as_i64().unwrap_or(1).max(0);
        let (surge, _) = fenceposts(d, desired);
        let rs = json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": format!("{name}-{hash}"), "labels": template["metadata"]["labels"].clone(),
                "annotations": {REVISION: revision.to_string(),
                    "deployment.kubernetes.io/desired-replicas": desired.to_string(),
                    "deployment.kubernetes.io/max-replicas": (desired + surge).to_string()},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": uid,
                    "controller": true, "blockOwnerDeletion": true}]},
            "spec": {"replicas": 0, "minReadySeconds": d["spec"]["minReadySeconds"].as_i64().unwrap_or(0),
                "selector": selector, "template": template},
        });
        self.store.create_internal(REPLICASETS, &ns, rs).ok()
    }

    /// Sets a ReplicaSet's replicas, with the Deployment's ScalingReplicaSet Event.
    fn scale(&self, d: &Value, rs: &Value, to: i64) {
        let from = count(&rs["spec"]["replicas"]);
        if from == to {
            return;
        }
        let rs_name = meta::name_of(rs);
        let desired = d["spec"]["replicas"].as_i64().unwrap_or(1).max(0);
        let (surge, _) = fenceposts(d, desired);
        let scaled = self.store.mutate(REPLICASETS, &meta::ns_of(rs), &rs_name, |r| {
            r["spec"]["replicas"] = json!(to);
            let annotations = meta::meta_mut(r).entry("annotations").or_insert_with(|| json!({}));
            annotations["deployment.kubernetes.io/desired-replicas"] = json!(desired.to_string());
            annotations["deployment.kubernetes.io/max-replicas"] = json!((desired + surge).to_string());
        });
        if scaled.is_some() {
            let way = if to > from { "up" } else { "down" };
            let message = format!("Scaled {way} replica set {rs_name} from {from} to {to}");
            self.event(d, "Normal", "ScalingReplicaSet", &message, COMPONENT);
        }
    }

    /// Deletes the oldest scaled-down ReplicaSets beyond `revisionHistoryLimit`.
    fn clean_up(&self, d: &Value, old: &[&Value]) {
        let limit = usize::try_from(d["spec"]["revisionHistoryLimit"].as_i64().unwrap_or(10)).unwrap_or(0);
        let mut idle: Vec<&&Value> = old
            .iter()
            .filter(|rs| count(&rs["spec"]["replicas"]) == 0 && count(&rs["status"]["replicas"]) == 0)
            .collect();
        idle.sort_by_key(|rs| revision(rs));
        let excess = idle.len().saturating_sub(limit);
        for rs in idle.into_iter().take(excess) {
            self.store.delete_internal(REPLICASETS, &meta::ns_of(rs), &meta::name_of(rs), Some("Background"));
        }
    }
}

fn counts(all: &[Value], new_name: &str) -> Counts {
    let sum = |f: &str| all.iter().map(|rs| count(&rs["status"][f])).sum::<i64>();
    let wanted: i64 = all.iter().map(|rs| count(&rs["spec"]["replicas"])).sum();
    let updated = all.iter().find(|rs| meta::name_of(rs) == new_name).map_or(0, |rs| count(&rs["status"]["replicas"]));
    let available = sum("availableReplicas");
    Counts {
        replicas: sum("replicas"),
        updated,
        ready: sum("readyReplicas"),
        available,
        unavailable: (wanted - available).max(0),
    }
}

/// The counters, zero ones omitted as the API server's serialization does.
fn write_counts(status: &mut Value, d: &Value, c: &Counts) {
    status["observedGeneration"] = d["metadata"]["generation"].clone();
    let Some(m) = status.as_object_mut() else { return };
    for (key, n) in [
        ("replicas", c.replicas),
        ("updatedReplicas", c.updated),
        ("readyReplicas", c.ready),
        ("availableReplicas", c.available),
        ("unavailableReplicas", c.unavailable),
    ] {
        if n > 0 {
            m.insert(key.into(), json!(n));
        } else {
            m.remove(key);
        }
    }
}

/// Available (enough pods available, maxUnavailable allowing) and Progressing, as the
/// controller's `syncRolloutStatus`: complete, progressing (a counter moved the right way since
/// the last status: lastUpdateTime is now), or timed out after `progressDeadlineSeconds` of none.
fn rollout_conditions(status: &mut Value, d: &Value, c: &Counts, desired: i64, new_name: &str) {
    let (_, max_unavailable) = fenceposts(d, desired);
    if c.available >= desired - max_unavailable {
        set_condition(status, "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.");
    } else {
        let message = "Deployment does not have minimum availability.";
        set_condition(status, "Available", "False", "MinimumReplicasUnavailable", message);
    }
    let Some(deadline) = d["spec"]["progressDeadlineSeconds"].as_i64() else { return };
    let current = condition(status, "Progressing").cloned();
    let done = current.as_ref().is_some_and(|p| p["reason"] == "NewReplicaSetAvailable") && c.replicas == c.updated;
    if done {
        return;
    }
    let before = &d["status"];
    let old_before = count(&before["replicas"]) - count(&before["updatedReplicas"]);
    let progressed = c.updated > count(&before["updatedReplicas"])
        || c.replicas - c.updated < old_before
        || c.ready > count(&before["readyReplicas"])
        || c.available > count(&before["availableReplicas"]);
    if c.updated == desired && c.replicas == desired && c.available == desired {
        let message = format!("ReplicaSet {new_name:?} has successfully progressed.");
        set_condition(status, "Progressing", "True", "NewReplicaSetAvailable", &message);
    } else if progressed {
        // Progress always moves lastUpdateTime (the deadline counts from it), not only on a new reason.
        let now = json!(meta::now_ts());
        let since = current.filter(|p| p["status"] == "True").map_or(now.clone(), |p| p["lastTransitionTime"].clone());
        let mut list: Vec<Value> = status["conditions"].as_array().cloned().unwrap_or_default();
        list.retain(|x| x["type"] != "Progressing");
        list.push(json!({"type": "Progressing", "status": "True", "lastUpdateTime": now, "lastTransitionTime": since,
            "reason": "ReplicaSetUpdated", "message": format!("ReplicaSet {new_name:?} is progressing.")}));
        status["conditions"] = Value::Array(list);
    } else if timed_out(status, deadline) {
        let message = format!("ReplicaSet {new_name:?} has timed out progressing.");
        set_condition(status, "Progressing", "False", "ProgressDeadlineExceeded", &message);
    }
}
