//! The resource types the fake API server serves, and the discovery documents for them.

use std::sync::RwLock;

use serde_json::{Value, json};

/// One served resource: group/version/plural, its kind and scope.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub kind: String,
    pub namespaced: bool,
    /// Has the `status` subresource (main writes ignore `.status`; `/status` writes only `.status`).
    pub status: bool,
}

impl ResourceType {
    pub fn new(group: &str, version: &str, plural: &str, kind: &str, namespaced: bool, status: bool) -> Self {
        ResourceType {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
            kind: kind.into(),
            namespaced,
            status,
        }
    }

    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    /// `plural.group` (just `plural` for the core group): the storage key of this resource.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() { self.plural.clone() } else { format!("{}.{}", self.plural, self.group) }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }
}

/// Storage keys of resources the fake kubelet and garbage collector know by name.
pub const PODS: &str = "pods";
pub const JOBS: &str = "jobs.batch";
pub const DEPLOYMENTS: &str = "deployments.apps";
pub const REPLICASETS: &str = "replicasets.apps";
pub const EVENTS: &str = "events";
pub const NAMESPACES: &str = "namespaces";
pub const NODES: &str = "nodes";
pub const CRDS: &str = "customresourcedefinitions.apiextensions.k8s.io";

/// All resource types served; custom resources are added when their CRD is created.
pub struct Registry {
    types: RwLock<Vec<ResourceType>>,
}

impl Registry {
    pub fn builtin() -> Self {
        let r = ResourceType::new;
        let types = vec![
            r("", "v1", "pods", "Pod", true, true),
            r("", "v1", "events", "Event", true, false),
            r("", "v1", "configmaps", "ConfigMap", true, false),
            r("", "v1", "secrets", "Secret", true, false),
            r("", "v1", "serviceaccounts", "ServiceAccount", true, false),
            r("", "v1", "namespaces", "Namespace", false, true),
            r("", "v1", "nodes", "Node", false, true),
            r("", "v1", "services", "Service", true, true),
            r("apps", "v1", "deployments", "Deployment", true, true),
            r("apps", "v1", "replicasets", "ReplicaSet", true, true),
            r("batch", "v1", "jobs", "Job", true, true),
            r("events.k8s.io", "v1", "events", "Event", true, false),
            r("coordination.k8s.io", "v1", "leases", "Lease", true, false),
            r("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", false, true),
            r("tuna.dev", "v1alpha1", "experiments", "Experiment", true, true),
        ];
        Registry { types: RwLock::new(types) }
    }

    fn read(&self) -> Vec<ResourceType> {
        self.types.read().map(|t| t.clone()).unwrap_or_else(|e| e.into_inner().clone())
    }

    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<ResourceType> {
        self.read().into_iter().find(|t| t.group == group && t.version == version && t.plural == plural)
    }

    pub fn find_by_kind(&self, group: &str, version: &str, kind: &str) -> Option<ResourceType> {
        self.read().into_iter().find(|t| t.group == group && t.version == version && t.kind == kind)
    }

    /// Finds by `plural` or `plural.group` (the first match for a bare plural: core before others).
    pub fn find_by_name(&self, name: &str) -> Option<ResourceType> {
        let types = self.read();
        types.iter().find(|t| t.qualified() == name).or_else(|| types.iter().find(|t| t.plural == name)).cloned()
    }

    pub fn register(&self, rt: ResourceType) {
        let mut types = self.types.write().unwrap_or_else(|e| e.into_inner());
        types.retain(|t| !(t.group == rt.group && t.version == rt.version && t.plural == rt.plural));
        types.push(rt);
    }

    /// Registers every served version of a `CustomResourceDefinition` object.
    pub fn register_crd(&self, crd: &Value) {
        let spec = &crd["spec"];
        let (Some(group), Some(plural), Some(kind)) =
            (spec["group"].as_str(), spec["names"]["plural"].as_str(), spec["names"]["kind"].as_str())
        else {
            return;
        };
        let namespaced = spec["scope"].as_str() != Some("Cluster");
        for v in spec["versions"].as_array().into_iter().flatten() {
            let Some(version) = v["name"].as_str() else { continue };
            let status = v["subresources"]["status"].is_object();
            self.register(ResourceType::new(group, version, plural, kind, namespaced, status));
        }
    }

    /// `GET /api`
    pub fn core_versions(&self) -> Value {
        json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
    }

    /// `GET /apis`
    pub fn group_list(&self) -> Value {
        let types = self.read();
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for t in types.iter().filter(|t| !t.group.is_empty()) {
            match groups.iter_mut().find(|(g, _)| *g == t.group) {
                Some((_, vs)) if !vs.contains(&t.version) => vs.push(t.version.clone()),
                Some(_) => {}
                None => groups.push((t.group.clone(), vec![t.version.clone()])),
            }
        }
        let groups: Vec<Value> = groups
            .into_iter()
            .map(|(g, vs)| {
                let versions: Vec<Value> =
                    vs.iter().map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v})).collect();
                json!({"name": g, "versions": versions.clone(), "preferredVersion": versions[0]})
            })
            .collect();
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    }

    /// `GET /api/v1` or `GET /apis/{group}/{version}`
    pub fn resource_list(&self, group: &str, version: &str) -> Option<Value> {
        let types: Vec<ResourceType> =
            self.read().into_iter().filter(|t| t.group == group && t.version == version).collect();
        if types.is_empty() {
            return None;
        }
        let mut resources = Vec::new();
        for t in &types {
            let verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
            resources.push(json!({"name": t.plural, "singularName": t.kind.to_lowercase(),
                "namespaced": t.namespaced, "kind": t.kind, "verbs": verbs}));
            if t.status {
                resources.push(json!({"name": format!("{}/status", t.plural), "singularName": "",
                    "namespaced": t.namespaced, "kind": t.kind, "verbs": ["get", "patch", "update"]}));
            }
            if t.plural == "pods" && t.group.is_empty() {
                resources.push(json!({"name": "pods/log", "singularName": "", "namespaced": true,
                    "kind": "Pod", "verbs": ["get"]}));
            }
        }
        let gv = types[0].api_version();
        Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}))
    }

    /// `GET /version`
    pub fn version() -> Value {
        json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-fake", "gitCommit": "fake",
            "gitTreeState": "clean", "buildDate": "2025-04-23T00:00:00Z", "goVersion": "go1.24",
            "compiler": "gc", "platform": "linux/amd64"})
    }
}
