//! Per-resource defaulting and validation, as the API server does for the kinds tuna uses.

use serde_json::{Value, json};

use super::meta::{self, check_dns_label};
use super::resources::{CRDS, DEPLOYMENTS, JOBS, NAMESPACES, NODES, PODS, ResourceType};

/// Called on create, after identity metadata is set and before the object is stored.
pub fn on_create(rt: &ResourceType, obj: &mut Value) -> Result<(), String> {
    match rt.qualified().as_str() {
        JOBS => job_create(obj),
        DEPLOYMENTS => deployment(obj),
        PODS => {
            pod_spec(&mut obj["spec"], "spec", false)?;
            obj["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
            Ok(())
        }
        NAMESPACES => {
            check_dns_label("metadata.name", &meta::name_of(obj))?;
            obj["status"] = json!({"phase": "Active"});
            Ok(())
        }
        NODES => Ok(()),
        CRDS => {
            let now = meta::now_ts();
            let stored: Vec<Value> = obj["spec"]["versions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|v| v["storage"].as_bool() == Some(true))
                .map(|v| v["name"].clone())
                .collect();
            obj["status"] = json!({
                "acceptedNames": obj["spec"]["names"].clone(),
                "storedVersions": stored,
                "conditions": [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                     "message": "no conflicts found", "lastTransitionTime": now},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                     "message": "the initial names have been accepted", "lastTransitionTime": now},
                ],
            });
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Called on client updates (PUT/PATCH), with the stored object and the proposed one.
pub fn on_update(rt: &ResourceType, old: &Value, new: &mut Value) -> Result<(), String> {
    if rt.qualified() == JOBS {
        for field in ["template", "selector", "completionMode"] {
            if old["spec"][field] != new["spec"][field] {
                return Err(format!("spec.{field}: Invalid value: field is immutable"));
            }
        }
    }
    if rt.qualified() == DEPLOYMENTS {
        // Defaulted on every write, as the API server does: a re-applied template hashes the same.
        deployment(new)?;
        if old["spec"]["selector"] != new["spec"]["selector"] {
            return Err(format!(
                "spec.selector: Invalid value: {}: field is immutable",
                serde_json::to_string(&new["spec"]["selector"]).unwrap_or_default()
            ));
        }
    }
    Ok(())
}

/// An apps/v1 Deployment: a selector that matches the template's labels, a pod template with
/// restartPolicy Always, and the API server's defaults (1 replica, RollingUpdate 25%/25%,
/// revisionHistoryLimit 10, progressDeadlineSeconds 600, the pod spec's defaults).
fn deployment(obj: &mut Value) -> Result<(), String> {
    let spec = &mut obj["spec"];
    if !spec.is_object() {
        return Err("spec.template: Required value".into());
    }
    let wanted = spec["selector"]["matchLabels"].as_object().cloned().unwrap_or_default();
    if wanted.is_empty() && spec["selector"]["matchExpressions"].is_null() {
        return Err("spec.selector: Required value".into());
    }
    let labels = spec["template"]["metadata"]["labels"].clone();
    if wanted.iter().any(|(k, v)| &labels[k] != v) {
        return Err(format!(
            "spec.template.metadata.labels: Invalid value: {}: `selector` does not match template `labels`",
            serde_json::to_string(&labels).unwrap_or_default()
        ));
    }
    pod_spec(&mut spec["template"]["spec"], "spec.template.spec", false)?;
    let policy = spec["template"]["spec"]["restartPolicy"].as_str().unwrap_or_default().to_string();
    if policy != "Always" {
        return Err(format!(
            "spec.template.spec.restartPolicy: Unsupported value: {policy:?}: supported values: \"Always\""
        ));
    }
    for key in ["replicas", "revisionHistoryLimit", "progressDeadlineSeconds", "minReadySeconds"] {
        if !spec[key].is_null() && spec[key].as_i64().is_none_or(|n| n < 0) {
            return Err(format!("spec.{key}: Invalid value: must be greater than or equal to 0"));
        }
    }
    set_default(spec, "replicas", json!(1));
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(spec, "progressDeadlineSeconds", json!(600));
    set_default(spec, "strategy", json!({}));
    let strategy = &mut spec["strategy"];
    set_default(strategy, "type", json!("RollingUpdate"));
    if strategy["type"] == "RollingUpdate" {
        set_default(strategy, "rollingUpdate", json!({}));
        set_default(&mut strategy["rollingUpdate"], "maxSurge", json!("25%"));
        set_default(&mut strategy["rollingUpdate"], "maxUnavailable", json!("25%"));
    }
    Ok(())
}

fn set_default(obj: &mut Value, key: &str, value: Value) {
    if let Some(m) = obj.as_object_mut() {
        m.entry(key).or_insert(value);
    }
}

/// Validates and defaults a pod spec. Job templates must say `restartPolicy` Never or OnFailure.
fn pod_spec(spec: &mut Value, field: &str, in_job: bool) -> Result<(), String> {
    if !spec.is_object() {
        return Err(format!("{field}: Required value"));
    }
    let containers = spec["containers"].as_array().cloned().unwrap_or_default();
    if containers.is_empty() {
        return Err(format!("{field}.containers: Required value"));
    }
    let mut names = Vec::new();
    for (i, c) in containers.iter().enumerate() {
        let name = c["name"].as_str().unwrap_or_default();
        if name.is_empty() {
            return Err(format!("{field}.containers[{i}].name: Required value"));
        }
        check_dns_label(&format!("{field}.containers[{i}].name"), name)?;
        if names.contains(&name) {
            return Err(format!("{field}.containers[{i}].name: Duplicate value: \"{name}\""));
        }
        names.push(name);
        if c["image"].as_str().unwrap_or_default().is_empty() {
            return Err(format!("{field}.containers[{i}].image: Required value"));
        }
        for key in ["command", "args"] {
            if !c[key].is_null() && !c[key].as_array().is_some_and(|a| a.iter().all(Value::is_string)) {
                return Err(format!("{field}.containers[{i}].{key}: Invalid value: must be a list of strings"));
            }
        }
    }
    set_default(spec, "restartPolicy", json!("Always"));
    let policy = spec["restartPolicy"].as_str().unwrap_or_default().to_string();
    let allowed: &[&str] = if in_job { &["OnFailure", "Never"] } else { &["Always", "OnFailure", "Never"] };
    if !allowed.contains(&policy.as_str()) {
        let list: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
        return Err(format!(
            "{field}.restartPolicy: Unsupported value: {policy:?}: supported values: {}",
            list.join(", ")
        ));
    }
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    set_default(spec, "securityContext", json!({}));
    if let Some(cs) = spec["containers"].as_array_mut() {
        for c in cs {
            set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
            set_default(c, "terminationMessagePolicy", json!("File"));
            set_default(c, "imagePullPolicy", json!("IfNotPresent"));
        }
    }
    Ok(())
}

fn job_create(obj: &mut Value) -> Result<(), String> {
    let name = meta::name_of(obj);
    let uid = meta::uid_of(obj);
    if name.len() > 63 {
        return Err(format!("metadata.name: Invalid value: \"{name}\": must be no more than 63 characters"));
    }
    let spec = &mut obj["spec"];
    if !spec.is_object() {
        return Err("spec.template: Required value".into());
    }
    pod_spec(&mut spec["template"]["spec"], "spec.template.spec", true)?;
    for key in ["backoffLimit", "activeDeadlineSeconds", "parallelism", "completions"] {
        if !spec[key].is_null() && spec[key].as_i64().is_none_or(|n| n < 0) {
            return Err(format!("spec.{key}: Invalid value: must be a non-negative integer"));
        }
    }
    let parallelism_given = !spec["parallelism"].is_null();
    set_default(spec, "parallelism", json!(1));
    if !parallelism_given || spec["completions"].is_null() {
        set_default(spec, "completions", json!(1));
    }
    set_default(spec, "backoffLimit", json!(6));
    set_default(spec, "completionMode", json!("NonIndexed"));
    set_default(spec, "suspend", json!(false));
    set_default(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
    set_default(spec, "selector", json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}));
    let tmeta = &mut spec["template"]["metadata"];
    if !tmeta.is_object() {
        *tmeta = json!({});
    }
    let labels = &mut tmeta["labels"];
    if !labels.is_object() {
        *labels = json!({});
    }
    for (k, v) in [
        ("batch.kubernetes.io/controller-uid", &uid),
        ("batch.kubernetes.io/job-name", &name),
        ("controller-uid", &uid),
        ("job-name", &name),
    ] {
        labels[k] = json!(v);
    }
    let template_labels = labels.clone();
    let m = meta::meta_mut(obj);
    if m.get("labels").and_then(|l| l.as_object()).is_none_or(|l| l.is_empty()) {
        m.insert("labels".into(), template_labels);
    }
    Ok(())
}
