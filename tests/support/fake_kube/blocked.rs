//! Pods that cannot start, as on a real cluster: an image that cannot be pulled (ErrImagePull, then
//! ImagePullBackOff), a container whose configuration names a missing Secret or ConfigMap
//! (CreateContainerConfigError), a namespace whose Pod Security level refuses the pod (the Job
//! controller's FailedCreate), and a queue (Kueue) that suspends each new Job until admitted.

use serde_json::{Value, json};

use super::errors::ApiError;
use super::kubelet::{Kubelet, conditions};
use super::meta;
use super::resources::{JOBS, NAMESPACES, PODS};
use super::store::Key;

/// The Pod Security admission label of a namespace, as Kubernetes reads it.
pub const ENFORCE: &str = "pod-security.kubernetes.io/enforce";
/// The fake's stand-in for Kueue managing a namespace: each new Job there starts suspended.
pub const QUEUED: &str = "fake.kueue.x-k8s.io/managed";

impl Kubelet {
    /// Why the pod's first container cannot start yet, as its waiting `(reason, message)`;
    /// `attempts` is how many times the kubelet looked (the first pull error is ErrImagePull).
    pub(super) fn blocked(&self, pod: &Value, attempts: u32) -> Option<(String, String)> {
        let c = &pod["spec"]["containers"][0];
        let image = c["image"].as_str().unwrap_or_default();
        if self.refused_images().contains(image) {
            return Some(if attempts == 0 {
                ("ErrImagePull".into(), format!("failed to pull and unpack image \"{image}\": not found"))
            } else {
                ("ImagePullBackOff".into(), format!("Back-off pulling image \"{image}\""))
            });
        }
        let ns = meta::ns_of(pod);
        for env in c["env"].as_array().into_iter().flatten() {
            if let Some(Err(message)) = self.key_ref(&ns, env) {
                return Some(("CreateContainerConfigError".into(), message));
            }
        }
        None
    }

    /// The value an env entry's `valueFrom.secretKeyRef` or `configMapKeyRef` names, as the
    /// kubelet reads it when it starts the container: `None` for any other entry (or an optional
    /// reference to nothing), an error message (the kubelet's) when the object or its key is
    /// missing.
    pub(super) fn key_ref(&self, ns: &str, env: &Value) -> Option<Result<String, String>> {
        for (field, res, kind) in
            [("secretKeyRef", "secrets", "secret"), ("configMapKeyRef", "configmaps", "configmap")]
        {
            let r = &env["valueFrom"][field];
            let Some(name) = r["name"].as_str() else { continue };
            let key = r["key"].as_str().unwrap_or_default();
            let optional = r["optional"] == true;
            let Some(object) = self.store.get(res, ns, name) else {
                return (!optional).then(|| Err(format!("{kind} \"{name}\" not found")));
            };
            // A Secret's `data` is base64 (what the API server returns; stringData is write-only);
            // a ConfigMap's `data` is plain text.
            let value = match (res, &object["data"][key]) {
                ("secrets", Value::String(_)) => {
                    serde_json::from_value::<k8s_openapi::ByteString>(object["data"][key].clone())
                        .ok()
                        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
                }
                (_, Value::String(s)) => Some(s.clone()),
                _ => None,
            };
            return match value {
                Some(v) => Some(Ok(v)),
                None if optional => None,
                None => Some(Err(format!("couldn't find key {key} in {kind} {ns}/{name}"))),
            };
        }
        None
    }

    /// The pod as its container is started: each `secretKeyRef`/`configMapKeyRef` env entry
    /// replaced by the value it names (checked present by `blocked` just before).
    pub(super) fn resolved(&self, pod: &Value) -> Value {
        let mut pod = pod.clone();
        let ns = meta::ns_of(&pod);
        if let Some(envs) = pod["spec"]["containers"][0]["env"].as_array_mut() {
            for env in envs {
                if let Some(Ok(value)) = self.key_ref(&ns, env) {
                    *env = json!({"name": env["name"], "value": value.replace('$', "$$")});
                }
            }
        }
        pod
    }

    /// Writes a pending pod whose first container waits for `reason`.
    pub(super) fn write_blocked(&self, pod: &Value, reason: &str, message: &str) {
        let c = &pod["spec"]["containers"][0];
        let status = json!({
            "phase": "Pending",
            "conditions": conditions(&pod["status"]["conditions"], &[
                ("PodReadyToStartContainers", "True", "", ""), ("Initialized", "True", "", ""),
                ("Ready", "False", "ContainersNotReady", ""), ("ContainersReady", "False", "ContainersNotReady", ""),
                ("PodScheduled", "True", "", ""),
            ]),
            "containerStatuses": [{"name": c["name"], "image": c["image"], "imageID": "", "ready": false,
                "started": false, "restartCount": 0, "state": {"waiting": {"reason": reason, "message": message}}}],
        });
        let (ns, name) = (meta::ns_of(pod), meta::name_of(pod));
        let old = &pod["status"]["containerStatuses"][0]["state"]["waiting"];
        if old["reason"] == reason && old["message"] == message {
            return; // an unchanged write would be a change, and wake the kubelet again at once
        }
        let changed = old["reason"] != reason;
        self.store.mutate(PODS, &ns, &name, |p| p["status"] = status);
        if changed {
            self.event(
                pod,
                "Warning",
                if reason == "CreateContainerConfigError" { "Failed" } else { "BackOff" },
                message,
                "kubelet",
            );
        }
    }
}

/// Admission on create: Pod Security for pods, and the queue's suspension for Jobs.
pub fn admit(
    objects: &std::collections::BTreeMap<Key, Value>,
    res: &str,
    ns: &str,
    obj: &mut Value,
) -> Result<(), ApiError> {
    let labels =
        objects.get(&(NAMESPACES.to_string(), String::new(), ns.to_string())).map(|n| n["metadata"]["labels"].clone());
    let label = |key: &str| labels.as_ref().and_then(|l| l[key].as_str().map(String::from));
    if res == PODS
        && let Some(level) = label(ENFORCE)
    {
        let violations = pod_security(&level, obj);
        if !violations.is_empty() {
            let name = meta::name_of(obj);
            return Err(ApiError::new(
                403,
                "Forbidden",
                format!(
                    "pods \"{name}\" is forbidden: violates PodSecurity \"{level}:latest\": {}",
                    violations.join(", ")
                ),
            ));
        }
    }
    if res == JOBS && label(QUEUED).as_deref() == Some("true") {
        obj["spec"]["suspend"] = json!(true);
    }
    Ok(())
}

/// What the Pod Security level (`baseline` or `restricted`) refuses in a pod: the published rules
/// (`support::pod_security`).
fn pod_security(level: &str, pod: &Value) -> Vec<String> {
    crate::support::pod_security::violations(level, &pod["spec"])
}
