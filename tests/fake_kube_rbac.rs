//! The fake API server's RBAC: the controller's token is held to the Roles and bindings it was
//! given, with a real API server's 403 Status; requests without a token (the tests') are admin.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::{Value, json};
use support::fake_kube::{FakeKube, Policy};

fn role(kind: &str, namespace: Option<&str>, rules: Value) -> Value {
    let mut metadata = json!({"name": "r"});
    if let Some(ns) = namespace {
        metadata["namespace"] = ns.into();
    }
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": metadata, "rules": rules})
}

fn binding(kind: &str, namespace: Option<&str>, role_kind: &str) -> Value {
    let mut metadata = json!({"name": "b"});
    if let Some(ns) = namespace {
        metadata["namespace"] = ns.into();
    }
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": metadata,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": "r"},
        "subjects": [{"kind": "ServiceAccount", "name": "tuna", "namespace": "tuna-system"}]})
}

fn job(name: &str, owner: Option<Value>) -> Job {
    let mut job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": "busybox", "command": ["true"]}]}}}});
    if let Some(owner) = owner {
        job["metadata"]["ownerReferences"] = json!([owner]);
    }
    serde_json::from_value(job).unwrap()
}

fn forbidden(result: Result<impl std::fmt::Debug, kube::Error>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) if status.code == 403 => *status,
        other => panic!("expected 403 Forbidden, got {other:?}"),
    }
}

#[tokio::test]
async fn the_controllers_token_gets_only_what_its_role_grants_with_a_forbidden_status() {
    let fake = FakeKube::start().await;
    fake.enforce_rbac(Policy::from_manifests(&[
        role(
            "Role",
            Some("default"),
            json!([{"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "create"]}]),
        ),
        binding("RoleBinding", Some("default"), "Role"),
    ]));
    let jobs: Api<Job> = Api::namespaced(fake.controller_client(), "default");
    jobs.create(&PostParams::default(), &job("granted", None)).await.unwrap();
    assert!(jobs.get_opt("granted").await.unwrap().is_some());
    let status = forbidden(jobs.list(&ListParams::default()).await);
    assert_eq!(status.reason, "Forbidden");
    assert_eq!(
        status.message,
        "jobs.batch is forbidden: User \"system:serviceaccount:tuna-system:tuna\" cannot list resource \"jobs\" \
         in API group \"batch\" in the namespace \"default\""
    );
    let elsewhere: Api<Job> = Api::namespaced(fake.controller_client(), "kube-system");
    forbidden(elsewhere.get_opt("granted").await);
    let leases: Api<Lease> = Api::namespaced(fake.controller_client(), "default");
    forbidden(leases.get_opt("tuna-controller").await);
    // The tests' own client is admin; another token is nobody.
    let admin: Api<Job> = Api::namespaced(fake.client(), "default");
    assert_eq!(admin.list(&ListParams::default()).await.unwrap().items.len(), 1);
    let mut config = fake.config();
    config.auth_info.token = Some("someone-else".to_string().into());
    let stranger: Api<Job> = Api::namespaced(kube::Client::try_from(config).unwrap(), "default");
    match stranger.get_opt("granted").await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 401),
        other => panic!("expected 401, got {other:?}"),
    }
}

#[tokio::test]
async fn a_cluster_role_binding_grants_every_namespace_and_no_policy_grants_nothing() {
    let fake = FakeKube::start().await;
    let jobs: Api<Job> = Api::namespaced(fake.controller_client(), "kube-system");
    forbidden(jobs.list(&ListParams::default()).await);
    fake.enforce_rbac(Policy::from_manifests(&[
        role("ClusterRole", None, json!([{"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["list"]}])),
        binding("ClusterRoleBinding", None, "ClusterRole"),
    ]));
    jobs.list(&ListParams::default()).await.unwrap();
    let everywhere: Api<Job> = Api::all(fake.controller_client());
    everywhere.list(&ListParams::default()).await.unwrap();
    let status = forbidden(jobs.delete_collection(&Default::default(), &ListParams::default()).await);
    assert!(status.message.contains("cannot deletecollection resource \"jobs\""), "{}", status.message);
}

#[tokio::test]
async fn blocking_an_owners_deletion_needs_update_on_its_finalizers() {
    let fake = FakeKube::start().await;
    let jobs_only = json!([{"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create"]}]);
    fake.enforce_rbac(Policy::from_manifests(&[
        role("Role", Some("default"), jobs_only.clone()),
        binding("RoleBinding", Some("default"), "Role"),
    ]));
    let owner = json!({"apiVersion": "tuna.dev/v1alpha1", "kind": "Experiment", "name": "e", "uid": "u1",
        "controller": true, "blockOwnerDeletion": true});
    let jobs: Api<Job> = Api::namespaced(fake.controller_client(), "default");
    let status = forbidden(jobs.create(&PostParams::default(), &job("owned", Some(owner.clone()))).await);
    assert!(status.message.contains("cannot update resource \"experiments/finalizers\""), "{}", status.message);
    let mut rules = jobs_only.as_array().unwrap().clone();
    rules.push(json!({"apiGroups": ["tuna.dev"], "resources": ["experiments/finalizers"], "verbs": ["update"]}));
    fake.enforce_rbac(Policy::from_manifests(&[
        role("Role", Some("default"), Value::Array(rules)),
        binding("RoleBinding", Some("default"), "Role"),
    ]));
    jobs.create(&PostParams::default(), &job("owned", Some(owner))).await.unwrap();
}

/// The shipped user role `tuna-view` (deploy/user-roles.yaml), bound directly (copied under
/// another name) to the controller's account: it holds the rules of tuna-view themselves; the
/// aggregation labels are checked on the manifest (and used in the user tests below).
#[tokio::test]
async fn the_shipped_tuna_view_role_lists_experiments_but_cannot_create_them() {
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
    let shipped = support::fake_kube::rendered("all-namespaces");
    let role_named = |name: &str| {
        shipped
            .iter()
            .find(|d| d["kind"] == "ClusterRole" && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("deploy/ ships ClusterRole {name}"))
            .clone()
    };
    for (name, aggregate) in [("tuna-admin", "admin"), ("tuna-edit", "edit"), ("tuna-view", "view")] {
        let label = format!("rbac.authorization.k8s.io/aggregate-to-{aggregate}");
        assert_eq!(role_named(name)["metadata"]["labels"][label.as_str()], "true", "{name} aggregates to {aggregate}");
    }
    let mut view = role_named("tuna-view");
    view["metadata"]["name"] = "r".into();
    let fake = FakeKube::start().await;
    fake.enforce_rbac(Policy::from_manifests(&[view, binding("RoleBinding", Some("default"), "ClusterRole")]));
    let resource =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("tuna.dev", "v1alpha1", "Experiment"), "experiments");
    let experiments: Api<DynamicObject> = Api::namespaced_with(fake.controller_client(), "default", &resource);
    experiments.list(&ListParams::default()).await.unwrap();
    let cr: DynamicObject = serde_json::from_value(json!({"apiVersion": "tuna.dev/v1alpha1", "kind": "Experiment",
        "metadata": {"name": "e"}, "spec": {}}))
    .unwrap();
    let status = forbidden(experiments.create(&PostParams::default(), &cr).await);
    assert!(status.message.contains("cannot create resource \"experiments\""), "{}", status.message);
    let elsewhere: Api<DynamicObject> = Api::namespaced_with(fake.controller_client(), "kube-system", &resource);
    forbidden(elsewhere.list(&ListParams::default()).await);
}

fn user_binding(user: &str, cluster_role: &str, namespace: &str) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": format!("{user}-{cluster_role}"), "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]})
}

fn grants(role: &Value, group: &str, resource: &str, verb: &str) -> bool {
    role["rules"].as_array().unwrap().iter().any(|r| {
        let has = |k: &str, x: &str| r[k].as_array().unwrap().iter().any(|v| v == x);
        has("apiGroups", group) && has("resources", resource) && has("verbs", verb)
    })
}

/// Kubernetes' built-in admin, edit and view have no rules of their own: aggregation fills them
/// from every ClusterRole labelled for them (view into edit, edit into admin), so the shipped
/// tuna-* roles reach whoever holds one of them.
#[test]
fn the_built_in_user_roles_aggregate_the_shipped_tuna_roles_and_each_other() {
    let policy = support::kube_e2e::shipped_rbac(support::kube_e2e::Scope::AllNamespaces);
    let (admin, edit, view) = (
        policy.cluster_role("admin").unwrap(),
        policy.cluster_role("edit").unwrap(),
        policy.cluster_role("view").unwrap(),
    );
    for role in [&admin, &edit, &view] {
        assert!(role["aggregationRule"]["clusterRoleSelectors"].is_array(), "{role}");
        assert!(grants(role, "tuna.dev", "experiments", "list"), "tuna-view reaches {}", role["metadata"]["name"]);
        assert!(grants(role, "", "pods", "get"), "view's own rules reach {}", role["metadata"]["name"]);
    }
    assert!(!grants(&view, "tuna.dev", "experiments", "create"));
    assert!(grants(&edit, "tuna.dev", "experiments", "create"), "tuna-edit aggregates into edit");
    assert!(grants(&edit, "batch", "jobs", "create"));
    assert!(!grants(&edit, "rbac.authorization.k8s.io", "rolebindings", "create"), "admin's own rules stay admin's");
    assert!(grants(&admin, "rbac.authorization.k8s.io", "rolebindings", "create"));
    assert!(grants(&admin, "batch", "jobs", "delete"), "edit aggregates into admin");
}

/// Users bound to the built-in edit and view in team-a get Experiments there through the
/// shipped roles' aggregation, and nothing elsewhere or before they are bound.
#[tokio::test]
async fn users_bound_to_edit_and_view_get_experiments_only_in_their_namespace() {
    use tuna::spec::Experiment;
    let fake = FakeKube::start().await;
    fake.create_namespace("team-a");
    let shipped = support::kube_e2e::shipped_rbac(support::kube_e2e::Scope::AllNamespaces);
    fake.enforce_rbac(shipped.clone());
    let alice = fake.user_client("alice", &["team-a-devs"]);
    let bob = fake.user_client("bob", &[]);
    let cr = || support::kube_e2e::experiment("e1", r#"[sh, -c, "echo score=1"]"#, "");
    let alice_a: Api<Experiment> = Api::namespaced(alice.clone(), "team-a");
    let bob_a: Api<Experiment> = Api::namespaced(bob, "team-a");
    // Before any binding: nothing, for either.
    let status = forbidden(alice_a.create(&PostParams::default(), &cr()).await);
    assert_eq!(
        status.message,
        "experiments.tuna.dev is forbidden: User \"alice\" cannot create resource \"experiments\" in API group \
         \"tuna.dev\" in the namespace \"team-a\""
    );
    forbidden(bob_a.list(&ListParams::default()).await);
    forbidden(bob_a.create(&PostParams::default(), &cr()).await);

    let mut policy = shipped;
    policy.objects_mut().push(user_binding("alice", "edit", "team-a"));
    policy.objects_mut().push(user_binding("bob", "view", "team-a"));
    fake.enforce_rbac(policy);
    alice_a.create(&PostParams::default(), &cr()).await.unwrap();
    assert_eq!(bob_a.get("e1").await.unwrap().metadata.name.as_deref(), Some("e1"));
    assert_eq!(bob_a.list(&ListParams::default()).await.unwrap().items.len(), 1);
    let status =
        forbidden(bob_a.create(&PostParams::default(), &support::kube_e2e::experiment("e2", r#"["true"]"#, "")).await);
    assert!(status.message.contains("User \"bob\" cannot create resource \"experiments\""), "{}", status.message);
    forbidden(bob_a.delete("e1", &Default::default()).await);
    alice_a.delete("e1", &Default::default()).await.unwrap();
    assert!(fake.get("experiments", "team-a", "e1").is_none(), "alice deleted it");

    let alice_default: Api<Experiment> = Api::namespaced(alice, "default");
    let status = forbidden(alice_default.create(&PostParams::default(), &cr()).await);
    assert_eq!(
        status.message,
        "experiments.tuna.dev is forbidden: User \"alice\" cannot create resource \"experiments\" in API group \
         \"tuna.dev\" in the namespace \"default\""
    );
    assert!(fake.get("experiments", "default", "e1").is_none());
}

/// A Group subject binds every user in that group; a user outside it gets nothing.
#[tokio::test]
async fn a_group_binding_to_admin_grants_its_members_only() {
    use tuna::spec::Experiment;
    let fake = FakeKube::start().await;
    fake.create_namespace("team-a");
    let mut policy = support::kube_e2e::shipped_rbac(support::kube_e2e::Scope::AllNamespaces);
    let mut group = user_binding("devs", "admin", "team-a");
    group["subjects"] = json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "team-a-devs"}]);
    policy.objects_mut().push(group);
    fake.enforce_rbac(policy);
    let member: Api<Experiment> = Api::namespaced(fake.user_client("carol", &["team-a-devs"]), "team-a");
    member.create(&PostParams::default(), &support::kube_e2e::experiment("e1", r#"["true"]"#, "")).await.unwrap();
    let jobs: Api<Job> = Api::namespaced(fake.user_client("carol", &["team-a-devs"]), "team-a");
    jobs.list(&ListParams::default()).await.unwrap();
    let outsider: Api<Experiment> = Api::namespaced(fake.user_client("dave", &["other"]), "team-a");
    let status = forbidden(outsider.list(&ListParams::default()).await);
    assert!(status.message.contains("User \"dave\" cannot list"), "{}", status.message);
}
