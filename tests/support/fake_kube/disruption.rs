//! Disruptions and what a Job makes of them: evicting a pod (as the Eviction API, a node drain or
//! preemption does) and the Job's `podFailurePolicy` rules, judged on each failed pod.
//!
//! ```text
//! evict ─▶ DisruptionTarget=True ─▶ SIGTERM (grace) ─▶ pod Failed ─▶ rules in order:
//!   Ignore (not counted, a new pod)  │  FailJob (Job Failed, reason PodFailurePolicy)  │  Count
//! ```
//! An evicted pod stays, Failed with its DisruptionTarget condition (a real API server then
//! deletes it; the Job controller has judged it by then, through its tracking finalizer).

use serde_json::{Value, json};

use super::kubelet::Kubelet;
use super::meta;
use super::pods::grace;
use super::resources::PODS;

/// What a Job's `podFailurePolicy` makes of one failed pod.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Not counted against backoffLimit; the Job creates a replacement.
    Ignore,
    /// The Job fails at once, with this message.
    FailJob(String),
    /// Counted against backoffLimit (also when no rule matches).
    Count,
}

/// The first rule of `policy` that matches the failed `pod`, as Kubernetes evaluates them.
pub fn judge(policy: &Value, pod: &Value) -> Action {
    let rules = policy["rules"].as_array().cloned().unwrap_or_default();
    for (index, rule) in rules.iter().enumerate() {
        let matched = match (&rule["onExitCodes"], &rule["onPodConditions"]) {
            (codes, _) if codes.is_object() => exit_codes_match(codes, pod),
            (_, conditions) => conditions_match(conditions, pod).map(|c| format!("Pod has condition {c}")),
        };
        let Some(why) = matched else { continue };
        return match rule["action"].as_str() {
            Some("Ignore") => Action::Ignore,
            Some("FailJob") => Action::FailJob(format!(
                "{why} matching FailJob rule at index {index} (pod {}/{})",
                meta::ns_of(pod),
                meta::name_of(pod)
            )),
            _ => Action::Count,
        };
    }
    Action::Count
}

/// A container (the named one, or any) that ended with a non-zero code the requirement selects.
fn exit_codes_match(req: &Value, pod: &Value) -> Option<String> {
    let values: Vec<i64> = req["values"].as_array().into_iter().flatten().filter_map(Value::as_i64).collect();
    let not_in = req["operator"] == "NotIn";
    let statuses = pod["status"]["containerStatuses"].as_array().cloned().unwrap_or_default();
    statuses.iter().filter(|s| req["containerName"].is_null() || s["name"] == req["containerName"]).find_map(|s| {
        let code = s["state"]["terminated"]["exitCode"].as_i64().filter(|c| *c != 0)?;
        (values.contains(&code) != not_in)
            .then(|| format!("Container {} failed with exit code {code}", s["name"].as_str().unwrap_or("")))
    })
}

fn conditions_match(patterns: &Value, pod: &Value) -> Option<String> {
    let conditions = pod["status"]["conditions"].as_array().cloned().unwrap_or_default();
    patterns.as_array().into_iter().flatten().find_map(|p| {
        let status = p["status"].as_str().unwrap_or("True");
        conditions
            .iter()
            .any(|c| c["type"] == p["type"] && c["status"] == status)
            .then(|| p["type"].as_str().unwrap_or("").to_string())
    })
}

impl Kubelet {
    /// Evicts a pod: marks it DisruptionTarget=True and terminates its container (SIGTERM, then
    /// SIGKILL after the grace period); false when there is no such pod.
    pub fn evict(&self, ns: &str, name: &str) -> bool {
        let Some(pod) = self.store.get(PODS, ns, name) else { return false };
        let condition = json!({"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI",
            "message": "Eviction API: evicting", "lastProbeTime": null, "lastTransitionTime": meta::now_ts()});
        self.store.mutate(PODS, ns, name, |p| {
            let list = p["status"]["conditions"].as_array_mut();
            match list {
                Some(list) => list.push(condition.clone()),
                None => p["status"]["conditions"] = json!([condition.clone()]),
            }
        });
        if let Some(slot) = self.runs().get(&meta::uid_of(&pod)) {
            slot.current.kill("Evicted", grace(&pod));
        }
        self.event(&pod, "Normal", "Killing", "Stopping container: evicted", "kubelet");
        true
    }
}
