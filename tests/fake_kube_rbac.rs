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

/// The shipped user role `tuna-view` (deploy/user-roles.yaml), bound directly: the fake does not
/// aggregate ClusterRoles into the built-in `view` (it has no built-in roles), so this holds the
/// rules of tuna-view themselves, and the aggregation label is checked on the manifest.
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
