//! ClusterRole aggregation, as kube-controller-manager's clusterrole-aggregation controller does
//! it, and the built-in user-facing ClusterRoles it fills: a ClusterRole with an
//! `aggregationRule` has as rules the union of the rules of every ClusterRole its
//! `clusterRoleSelectors` match (its own listed rules are overwritten, as the controller does).
//!
//! ```text
//! system:aggregate-to-view ─┐            ┌─▶ view  (labelled aggregate-to-edit)
//! tuna-view ────────────────┴ to-view ───┘      │
//! system:aggregate-to-edit ─┐                   ▼
//! tuna-edit ────────────────┴ to-edit ───────▶ edit  (labelled aggregate-to-admin)
//! system:aggregate-to-admin ┐                   ▼
//! tuna-admin ───────────────┴ to-admin ──────▶ admin
//! ```
//!
//! Simplified: the built-ins' own rules (held by the `system:aggregate-to-*` roles, as on a real
//! cluster) are a minimal part of the real ones: view gets/lists/watches pods, pods/log, events,
//! configmaps and Jobs; edit also creates, updates, patches and deletes pods and Jobs; admin also
//! manages Roles and RoleBindings. Other bootstrap roles and bindings (cluster-admin,
//! system:basic-user, ...) are not modelled.

use std::collections::HashSet;

use serde_json::{Value, json};

const GROUP_LABEL: &str = "rbac.authorization.k8s.io/aggregate-to-";

fn labels(to: Option<&str>) -> Value {
    let mut labels = json!({"kubernetes.io/bootstrapping": "rbac-defaults"});
    if let Some(to) = to {
        labels[format!("{GROUP_LABEL}{to}")] = json!("true");
    }
    labels
}

fn aggregated(name: &str, labelled_to: Option<&str>) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": name, "labels": labels(labelled_to)},
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {format!("{GROUP_LABEL}{name}"): "true"}}]},
        "rules": []})
}

fn part(of: &str, rules: Value) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": format!("system:aggregate-to-{of}"), "labels": labels(Some(of))}, "rules": rules})
}

/// The built-in ClusterRoles every cluster has: admin, edit and view (aggregated; edit
/// aggregates into admin and view into edit, by their labels) and the parts they aggregate.
pub fn builtin_roles() -> Vec<Value> {
    let read = ["get", "list", "watch"];
    let write = ["create", "delete", "deletecollection", "patch", "update"];
    vec![
        aggregated("admin", None),
        aggregated("edit", Some("admin")),
        aggregated("view", Some("edit")),
        part(
            "view",
            json!([
                {"apiGroups": [""], "resources": ["pods", "pods/log", "events", "configmaps"], "verbs": read},
                {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": read},
            ]),
        ),
        part(
            "edit",
            json!([
                {"apiGroups": [""], "resources": ["pods"], "verbs": write},
                {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": write},
            ]),
        ),
        part(
            "admin",
            json!([{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"],
                "verbs": ["get", "list", "watch", "create", "delete", "deletecollection", "patch", "update"]}]),
        ),
    ]
}

/// Whether a LabelSelector (matchLabels, matchExpressions) matches an object's labels; an empty
/// selector matches everything.
fn selects(selector: &Value, obj: &Value) -> bool {
    let labels = &obj["metadata"]["labels"];
    let get = |k: &str| labels.get(k).and_then(Value::as_str);
    let by_label = selector["matchLabels"].as_object().into_iter().flatten().all(|(k, v)| get(k) == v.as_str());
    let by_expression = selector["matchExpressions"].as_array().into_iter().flatten().all(|e| {
        let key = e["key"].as_str().unwrap_or_default();
        let values: Vec<&str> = e["values"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        match e["operator"].as_str() {
            Some("In") => get(key).is_some_and(|v| values.contains(&v)),
            Some("NotIn") => get(key).is_none_or(|v| !values.contains(&v)),
            Some("Exists") => get(key).is_some(),
            Some("DoesNotExist") => get(key).is_none(),
            _ => false,
        }
    });
    by_label && by_expression
}

/// The rules `role` holds once aggregation has run: its own, or (with an `aggregationRule`)
/// the union of the effective rules of the ClusterRoles among `roles` that it selects.
pub fn effective_rules(roles: &[Value], role: &Value) -> Vec<Value> {
    let mut seen = HashSet::new();
    collect(roles, role, &mut seen)
}

fn collect(roles: &[Value], role: &Value, seen: &mut HashSet<String>) -> Vec<Value> {
    let name = role["metadata"]["name"].as_str().unwrap_or_default().to_string();
    if !seen.insert(name.clone()) {
        return Vec::new();
    }
    let Some(selectors) = role["aggregationRule"]["clusterRoleSelectors"].as_array() else {
        return role["rules"].as_array().cloned().unwrap_or_default();
    };
    let mut rules: Vec<Value> = Vec::new();
    for other in roles.iter().filter(|o| o["kind"] == "ClusterRole" && o["metadata"]["name"] != name.as_str()) {
        if selectors.iter().any(|s| selects(s, other)) {
            for rule in collect(roles, other, seen) {
                if !rules.contains(&rule) {
                    rules.push(rule);
                }
            }
        }
    }
    rules
}
