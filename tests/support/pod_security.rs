//! The Pod Security Standards (https://kubernetes.io/docs/concepts/security/pod-security-standards/,
//! as of Kubernetes 1.33), written down as checks of a pod spec: what the `baseline` level
//! forbids, and what `restricted` adds. Used by the fake API server's admission for labelled
//! namespaces and by the tests that check rendered trial pods.

use serde_json::Value;

/// Capabilities `baseline` lets a container add.
const BASELINE_CAPABILITIES: [&str; 13] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];
/// Volume types `restricted` allows.
const RESTRICTED_VOLUMES: [&str; 8] =
    ["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"];
/// SELinux types `baseline` allows.
const SELINUX_TYPES: [&str; 4] = ["container_t", "container_init_t", "container_kvm_t", "container_engine_t"];
/// Sysctls `baseline` allows.
const SAFE_SYSCTLS: [&str; 9] = [
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
];

/// Every rule of `level` (`baseline` or `restricted`; `privileged` has none) that the pod spec
/// breaks, each naming where.
pub fn violations(level: &str, spec: &Value) -> Vec<String> {
    let mut found = Vec::new();
    if level == "privileged" {
        return found;
    }
    baseline(spec, &mut found);
    if level == "restricted" {
        restricted(spec, &mut found);
    }
    found
}

/// Every container of the pod: `(where, container)`.
fn containers(spec: &Value) -> Vec<(String, &Value)> {
    let mut all = Vec::new();
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for c in spec[list].as_array().into_iter().flatten() {
            all.push((format!("{list}[{}]", c["name"].as_str().unwrap_or("")), c));
        }
    }
    all
}

fn baseline(spec: &Value, found: &mut Vec<String>) {
    let pod = &spec["securityContext"];
    for field in ["hostNetwork", "hostPID", "hostIPC"] {
        if spec[field] == true {
            found.push(format!("host namespaces: {field}=true"));
        }
    }
    for (i, v) in spec["volumes"].as_array().into_iter().flatten().enumerate() {
        if !v["hostPath"].is_null() {
            found.push(format!("hostPath volumes: volumes[{i}]"));
        }
    }
    check_context("pod", pod, found);
    for sysctl in pod["sysctls"].as_array().into_iter().flatten() {
        let name = sysctl["name"].as_str().unwrap_or("");
        if !SAFE_SYSCTLS.contains(&name) {
            found.push(format!("forbidden sysctls: {name}"));
        }
    }
    for (at, c) in containers(spec) {
        let sc = &c["securityContext"];
        if sc["privileged"] == true {
            found.push(format!("privileged: {at}"));
        }
        for cap in sc["capabilities"]["add"].as_array().into_iter().flatten() {
            if !BASELINE_CAPABILITIES.contains(&cap.as_str().unwrap_or("")) {
                found.push(format!("non-default capabilities: {at} adds {cap}"));
            }
        }
        for port in c["ports"].as_array().into_iter().flatten() {
            if port["hostPort"].as_i64().is_some_and(|p| p != 0) {
                found.push(format!("hostPort: {at}"));
            }
        }
        if sc["procMount"].as_str().is_some_and(|m| m != "Default") {
            found.push(format!("procMount: {at}"));
        }
        check_context(&at, sc, found);
    }
}

/// The rules that hold for the pod's and each container's security context alike.
fn check_context(at: &str, sc: &Value, found: &mut Vec<String>) {
    if sc["windowsOptions"]["hostProcess"] == true {
        found.push(format!("hostProcess: {at}"));
    }
    if sc["seccompProfile"]["type"] == "Unconfined" {
        found.push(format!("seccompProfile: {at} is Unconfined"));
    }
    if sc["appArmorProfile"]["type"].as_str().is_some_and(|t| t != "RuntimeDefault" && t != "Localhost") {
        found.push(format!("appArmorProfile: {at}"));
    }
    let selinux = &sc["seLinuxOptions"];
    if selinux["type"].as_str().is_some_and(|t| !t.is_empty() && !SELINUX_TYPES.contains(&t))
        || selinux["user"].as_str().is_some_and(|u| !u.is_empty())
        || selinux["role"].as_str().is_some_and(|r| !r.is_empty())
    {
        found.push(format!("seLinuxOptions: {at}"));
    }
}

fn restricted(spec: &Value, found: &mut Vec<String>) {
    let pod = &spec["securityContext"];
    for (i, v) in spec["volumes"].as_array().into_iter().flatten().enumerate() {
        let kinds: Vec<&String> =
            v.as_object().into_iter().flatten().map(|(k, _)| k).filter(|k| *k != "name").collect();
        if kinds.iter().any(|k| !RESTRICTED_VOLUMES.contains(&k.as_str())) {
            found.push(format!("restricted volume types: volumes[{i}] is {kinds:?}"));
        }
    }
    if pod["runAsUser"] == 0 {
        found.push("runAsUser=0: pod".into());
    }
    let pod_seccomp = pod["seccompProfile"]["type"].as_str();
    for (at, c) in containers(spec) {
        let sc = &c["securityContext"];
        if sc["allowPrivilegeEscalation"] != false {
            found.push(format!("allowPrivilegeEscalation != false: {at}"));
        }
        let non_root = match sc["runAsNonRoot"].as_bool() {
            Some(own) => own,
            None => pod["runAsNonRoot"] == true,
        };
        if !non_root {
            found.push(format!("runAsNonRoot != true: {at}"));
        }
        if sc["runAsUser"] == 0 {
            found.push(format!("runAsUser=0: {at}"));
        }
        let seccomp = sc["seccompProfile"]["type"].as_str().or(pod_seccomp);
        if !matches!(seccomp, Some("RuntimeDefault" | "Localhost")) {
            found.push(format!("seccompProfile: {at} must be RuntimeDefault or Localhost"));
        }
        let drops = sc["capabilities"]["drop"].as_array().is_some_and(|d| d.iter().any(|x| x == "ALL"));
        if !drops {
            found.push(format!("unrestricted capabilities: {at} must drop ALL"));
        }
        for cap in sc["capabilities"]["add"].as_array().into_iter().flatten() {
            if cap != "NET_BIND_SERVICE" {
                found.push(format!("unrestricted capabilities: {at} adds {cap}"));
            }
        }
    }
}
