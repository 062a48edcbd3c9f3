//! RBAC as a real API server enforces it, for the controller's ServiceAccount and for users (a
//! `user_client`'s token names a user and their groups). The policy is the shipped one
//! (`kubectl kustomize deploy/…`: Roles, ClusterRoles and their bindings) plus the cluster's
//! built-in ClusterRoles admin, edit and view, whose rules come from aggregation (see
//! `aggregation`); a request that carries a known bearer token and is not granted gets 403
//! Forbidden with Kubernetes' Status body. A request without a token is the tests' own admin.
//!
//! ```text
//! request ─▶ Authorization: Bearer T ─▶ T unknown ─▶ 401
//!            (none: admin, allowed)     T the controller's or a user's ─▶ (verb, group, resource[/sub], ns, name)
//!                                         ─▶ bindings of its subjects ─▶ rules (aggregated) ─▶ allowed | 403
//! ```
//! Also as a real server does (the OwnerReferencesPermissionEnforcement admission plugin): an
//! object created with an owner reference that has `blockOwnerDeletion: true` needs `update` on
//! the owner's `finalizers` subresource.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use super::aggregation::{builtin_roles, effective_rules};
use super::errors::ApiError;

/// The bearer token the kubeconfig handed to tuna carries.
pub const CONTROLLER_TOKEN: &str = "fake-token-of-tuna-system-tuna";
/// The ServiceAccount the shipped Deployment runs as (`deploy/`: namespace tuna-system, name tuna).
pub const CONTROLLER_NAMESPACE: &str = "tuna-system";
pub const CONTROLLER_ACCOUNT: &str = "tuna";

/// Who a request comes from, as bindings' subjects name it.
#[derive(Clone, Debug, PartialEq)]
pub struct Subject {
    /// The user name (a ServiceAccount's is `system:serviceaccount:<ns>:<name>`).
    pub user: String,
    pub groups: Vec<String>,
    /// (namespace, name) of a ServiceAccount.
    pub service_account: Option<(String, String)>,
}

impl Subject {
    /// The controller's ServiceAccount, with the groups the API server gives every ServiceAccount.
    pub fn controller() -> Self {
        Subject {
            user: user(),
            groups: vec![
                "system:authenticated".into(),
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{CONTROLLER_NAMESPACE}"),
            ],
            service_account: Some((CONTROLLER_NAMESPACE.into(), CONTROLLER_ACCOUNT.into())),
        }
    }

    /// A person, in `groups` (and `system:authenticated`, as every authenticated user is).
    pub fn user(name: &str, groups: &[&str]) -> Self {
        let mut all: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        all.push("system:authenticated".into());
        Subject { user: name.into(), groups: all, service_account: None }
    }
}

/// The bearer token of `user_client(user, …)`.
pub fn user_token(user: &str) -> String {
    format!("fake-user-{user}")
}

/// What a request asks to do, as RBAC sees it.
#[derive(Clone, Debug)]
pub struct Attributes {
    pub verb: String,
    pub group: String,
    /// `jobs`, or `pods/log` for a subresource.
    pub resource: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

impl Attributes {
    /// The message a real API server gives.
    pub fn forbidden(&self, user: &str) -> ApiError {
        let (plural, sub) = self.resource.split_once('/').map_or((self.resource.as_str(), None), |(p, s)| (p, Some(s)));
        let qualified = if self.group.is_empty() { plural.to_string() } else { format!("{plural}.{}", self.group) };
        let subject = match &self.name {
            Some(name) => format!("{qualified} \"{name}\""),
            None => qualified.clone(),
        };
        let sub = sub.map(|s| format!("/{s}")).unwrap_or_default();
        let scope = match &self.namespace {
            Some(ns) => format!("in the namespace \"{ns}\""),
            None => "at the cluster scope".into(),
        };
        let message = format!(
            "{subject} is forbidden: User \"{user}\" cannot {} resource \"{plural}{sub}\" in API group \"{}\" {scope}",
            self.verb, self.group
        );
        let mut error = ApiError::new(403, "Forbidden", message);
        error.details = Some(
            serde_json::json!({"name": self.name.clone().unwrap_or_default(), "group": self.group, "kind": plural}),
        );
        error
    }
}

/// The RBAC objects in force.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    objects: Vec<Value>,
}

/// The repository's install (`kubectl kustomize deploy/`) with one scope component
/// (`all-namespaces`, the shipped default, or `one-namespace`) in `components:`, as an operator
/// chooses it; once per process and component, as JSON values.
pub fn rendered(component: &str) -> Vec<Value> {
    static CACHE: OnceLock<std::sync::Mutex<std::collections::HashMap<String, Vec<Value>>>> = OnceLock::new();
    let mut cache = CACHE.get_or_init(Default::default).lock().unwrap();
    if let Some(docs) = cache.get(component) {
        return docs.clone();
    }
    let text = kustomize(component);
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    cache.insert(component.to_string(), docs.clone());
    docs
}

/// `kubectl kustomize` of a copy of `deploy/` whose `components:` names `component`.
pub fn kustomize(component: &str) -> String {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&deploy, copy.path());
    let kustomization = copy.path().join("kustomization.yaml");
    let text = std::fs::read_to_string(&kustomization).unwrap();
    const DEFAULT: &str = "components/all-namespaces";
    assert!(text.contains(DEFAULT), "deploy/kustomization.yaml names {DEFAULT}");
    std::fs::write(&kustomization, text.replace(DEFAULT, &format!("components/{component}"))).unwrap();
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(copy.path())
        .output()
        .unwrap_or_else(|e| panic!("kubectl kustomize could not run (is kubectl installed?): {e}"));
    assert!(
        out.status.success(),
        "kubectl kustomize deploy/ with {component}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Every object's `metadata.namespace` `from` becomes `to` (what an operator does to
/// `components/one-namespace` for their namespace).
pub fn renamespace(docs: &mut [Value], from: &str, to: &str) {
    for doc in docs {
        if doc["metadata"]["namespace"] == from {
            doc["metadata"]["namespace"] = to.into();
        }
    }
}

const KINDS: [&str; 4] = ["Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"];

impl Policy {
    /// The RBAC objects among `docs` (others are ignored), with the cluster's built-in
    /// ClusterRoles (admin, edit, view and the parts they aggregate) that `docs` do not replace.
    pub fn from_manifests(docs: &[Value]) -> Self {
        let mut objects: Vec<Value> =
            docs.iter().filter(|d| KINDS.contains(&d["kind"].as_str().unwrap_or(""))).cloned().collect();
        for role in builtin_roles() {
            let named = |o: &&Value| o["kind"] == "ClusterRole" && o["metadata"]["name"] == role["metadata"]["name"];
            if !objects.iter().any(|o| named(&o)) {
                objects.push(role);
            }
        }
        Policy { objects }
    }

    /// A ClusterRole as the cluster holds it once aggregation has run (its `rules` filled in).
    pub fn cluster_role(&self, name: &str) -> Option<Value> {
        let role = self.objects.iter().find(|o| o["kind"] == "ClusterRole" && o["metadata"]["name"] == name)?;
        let mut role = role.clone();
        role["rules"] = Value::Array(effective_rules(&self.objects, &role));
        Some(role)
    }

    /// Every object, for a test to change (e.g. take one verb away).
    pub fn objects_mut(&mut self) -> &mut Vec<Value> {
        &mut self.objects
    }

    /// Takes `verb` out of every rule that names `resource` (e.g. "jobs", "deletecollection").
    pub fn without_verb(mut self, resource: &str, verb: &str) -> Self {
        for object in &mut self.objects {
            for rule in object["rules"].as_array_mut().into_iter().flatten() {
                let names = rule["resources"].as_array().is_some_and(|r| r.iter().any(|x| x == resource));
                if names && let Some(verbs) = rule["verbs"].as_array_mut() {
                    verbs.retain(|v| v != verb);
                }
            }
        }
        self
    }

    /// Whether the controller's ServiceAccount may do `a`.
    pub fn allows(&self, a: &Attributes) -> bool {
        self.allows_for(&Subject::controller(), a)
    }

    /// Whether `subject` may do `a`: a binding of one of its subjects grants it.
    pub fn allows_for(&self, subject: &Subject, a: &Attributes) -> bool {
        let bindings = self.objects.iter().filter(|o| match o["kind"].as_str() {
            Some("ClusterRoleBinding") => true,
            Some("RoleBinding") => {
                a.namespace.is_some() && o["metadata"]["namespace"].as_str() == a.namespace.as_deref()
            }
            _ => false,
        });
        bindings
            .filter(|b| binds(b, subject))
            .any(|b| self.role_of(b).is_some_and(|role| grants(&effective_rules(&self.objects, role), a)))
    }

    /// The Role or ClusterRole a binding refers to.
    fn role_of(&self, binding: &Value) -> Option<&Value> {
        let kind = binding["roleRef"]["kind"].as_str()?;
        let name = binding["roleRef"]["name"].as_str()?;
        self.objects.iter().find(|o| {
            o["kind"] == kind
                && o["metadata"]["name"] == name
                && (kind == "ClusterRole" || o["metadata"]["namespace"] == binding["metadata"]["namespace"])
        })
    }
}

/// Whether a binding's subjects include `subject` (by ServiceAccount, user name or group).
fn binds(binding: &Value, subject: &Subject) -> bool {
    binding["subjects"].as_array().into_iter().flatten().any(|s| match s["kind"].as_str() {
        Some("ServiceAccount") => subject
            .service_account
            .as_ref()
            .is_some_and(|(ns, name)| s["name"] == name.as_str() && s["namespace"] == ns.as_str()),
        Some("User") => s["name"].as_str() == Some(&subject.user),
        Some("Group") => subject.groups.iter().any(|g| s["name"].as_str() == Some(g)),
        _ => false,
    })
}

fn grants(rules: &[Value], a: &Attributes) -> bool {
    let has = |list: &Value, x: &str| list.as_array().is_some_and(|l| l.iter().any(|v| v == x || v == "*"));
    rules.iter().any(|rule| {
        let names = rule["resourceNames"].as_array().filter(|n| !n.is_empty());
        has(&rule["apiGroups"], &a.group)
            && has(&rule["resources"], &a.resource)
            && has(&rule["verbs"], &a.verb)
            && names.is_none_or(|n| a.name.as_ref().is_some_and(|name| n.iter().any(|v| v == name.as_str())))
    })
}

/// The controller's user name, as the API server spells a ServiceAccount.
pub fn user() -> String {
    format!("system:serviceaccount:{CONTROLLER_NAMESPACE}:{CONTROLLER_ACCOUNT}")
}

/// What a request asks, as RBAC sees it; `None` for a non-resource path (discovery, `/version`),
/// which every authenticated user may read.
pub fn attributes(
    reg: &super::resources::Registry,
    method: &axum::http::Method,
    path: &str,
    watch: bool,
) -> Option<Attributes> {
    use axum::http::Method;
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] if !rest.is_empty() => ("", *v, rest),
        ["apis", g, v, rest @ ..] if !rest.is_empty() => (*g, *v, rest),
        _ => return None,
    };
    let namespaced = |plural: &str| reg.find(group, version, plural).is_some_and(|rt| rt.namespaced);
    let (namespace, plural, name, sub) = match rest {
        [plural] => (None, *plural, None, None),
        ["namespaces", ns, plural] if namespaced(plural) => (Some(*ns), *plural, None, None),
        [plural, name] => (None, *plural, Some(*name), None),
        [plural, name, sub] => (None, *plural, Some(*name), Some(*sub)),
        ["namespaces", ns, plural, name] => (Some(*ns), *plural, Some(*name), None),
        ["namespaces", ns, plural, name, sub] => (Some(*ns), *plural, Some(*name), Some(*sub)),
        _ => return None,
    };
    // A namespace's own path (`/api/v1/namespaces/x`) is the namespace object, at the cluster scope.
    let verb = match (method.clone(), name.is_some()) {
        (Method::GET, _) if watch => "watch",
        (Method::GET, true) => "get",
        (Method::GET, false) => "list",
        (Method::POST, _) => "create",
        (Method::PUT, _) => "update",
        (Method::PATCH, _) => "patch",
        (Method::DELETE, true) => "delete",
        (Method::DELETE, false) => "deletecollection",
        _ => return None,
    };
    let resource = match sub {
        Some(sub) => format!("{plural}/{sub}"),
        None => plural.to_string(),
    };
    Some(Attributes {
        verb: verb.into(),
        group: group.into(),
        resource,
        namespace: namespace.map(String::from),
        name: name.map(String::from),
    })
}

/// What creating (or updating) `object` in `namespace` also needs: `update` on the `finalizers` of
/// every owner it blocks the deletion of.
pub fn owner_checks(reg: &super::resources::Registry, object: &Value, namespace: Option<&str>) -> Vec<Attributes> {
    let owners = object["metadata"]["ownerReferences"].as_array().cloned().unwrap_or_default();
    owners
        .iter()
        .filter(|o| o["blockOwnerDeletion"] == true)
        .filter_map(|o| {
            let api_version = o["apiVersion"].as_str()?;
            let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
            let kind = o["kind"].as_str()?;
            let rt = reg.find_by_kind(group, version, kind)?;
            Some(Attributes {
                verb: "update".into(),
                group: group.into(),
                resource: format!("{}/finalizers", rt.plural),
                namespace: if rt.namespaced { namespace.map(String::from) } else { None },
                name: o["name"].as_str().map(String::from),
            })
        })
        .collect()
}
