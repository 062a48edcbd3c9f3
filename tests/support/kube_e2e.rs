//! What the end-to-end Kubernetes suites share: a kubeconfig for the fake, an Experiment
//! document, `tuna serve --watch-crds` against the fake, and polling the CR's status. tuna acts as
//! the shipped ServiceAccount (the kubeconfig carries its token) under the shipped RBAC only, so a
//! verb `deploy/` does not grant fails the test as it would fail on a cluster.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::Api;
use serde_json::Value;
use tuna::spec::Experiment;

use super::fake_kube::{CONTROLLER_TOKEN, FakeKube, Policy, renamespace, rendered};
use super::server::Server;

/// The example folder, where `tuna_push.py` lives.
pub const EXPERIMENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/experiments");

/// How the controller is installed: the shipped `deploy/` (all namespaces, the controller in
/// tuna-system) or for one namespace.
#[derive(Clone, Copy)]
pub enum Scope<'a> {
    AllNamespaces,
    Namespace(&'a str),
    /// `components/namespaces` as shipped: team-a (the first, with the Lease) and team-b.
    TeamNamespaces,
}

/// The shipped RBAC objects of the install for `scope`.
pub fn shipped_rbac(scope: Scope) -> Policy {
    match scope {
        Scope::AllNamespaces => Policy::from_manifests(&rendered("all-namespaces")),
        Scope::Namespace(ns) => {
            let mut docs = rendered("one-namespace");
            renamespace(&mut docs, "team-a", ns);
            Policy::from_manifests(&docs)
        }
        Scope::TeamNamespaces => Policy::from_manifests(&rendered("namespaces")),
    }
}

/// A kubeconfig pointing at the fake, in `dir`, with the controller's token; the fake enforces
/// the shipped RBAC of `scope` on it. Its namespace is where the controller runs (tuna-system for
/// all namespaces, as in a pod of the shipped Deployment), or the one it manages.
pub fn kubeconfig(dir: &Path, fake: &FakeKube, scope: Scope) -> PathBuf {
    fake.enforce_rbac(shipped_rbac(scope));
    kubeconfig_as(dir, fake, scope)
}

/// A kubeconfig as `kubeconfig` writes, leaving the fake's RBAC as it is (a test that changed it).
pub fn kubeconfig_as(dir: &Path, fake: &FakeKube, scope: Scope) -> PathBuf {
    let namespace = match scope {
        Scope::AllNamespaces => "tuna-system",
        Scope::Namespace(ns) => ns,
        Scope::TeamNamespaces => "team-a",
    };
    fake.create_namespace(namespace);
    let path = dir.join("kubeconfig");
    let url = fake.url();
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters: [{{name: fake, cluster: {{server: \"{url}\"}}}}]\n\
         users: [{{name: fake, user: {{token: {CONTROLLER_TOKEN}}}}}]\n\
         contexts: [{{name: fake, context: {{cluster: fake, user: fake, namespace: {namespace}}}}}]\ncurrent-context: fake\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

pub fn experiment(name: &str, command: &str, extra: &str) -> Experiment {
    tuna::spec::parse(&format!(
        "apiVersion: tuna.dev/v1alpha1\nkind: Experiment\nmetadata: {{name: {name}}}\nspec:\n  \
         objective: {{metric: score, goal: maximize}}\n  algorithm: {{name: random, seed: 2}}\n  \
         parameters: [{{name: x, type: int, min: 1, max: 1000}}]\n  maxTrials: 4\n  parallelTrials: 2\n  \
         executor: kubernetes\n  trial:\n    image: busybox:1.36\n    command: {command}\n{extra}"
    ))
    .unwrap()
}

/// Polls the CR until `done` holds for its status (60 s at most).
pub async fn wait_status(api: &Api<Experiment>, name: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let status = api.get(name).await.ok().and_then(|e| serde_json::to_value(e.status).ok()).unwrap_or_default();
        if done(&status) {
            return status;
        }
        assert!(tokio::time::Instant::now() < deadline, "{name}: never {what}; status {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn jobs_of(fake: &FakeKube, experiment: &str) -> Vec<Value> {
    fake.objects("jobs").into_iter().filter(|j| j["metadata"]["labels"]["tuna.dev/experiment"] == experiment).collect()
}

pub fn start(fake: &FakeKube, dir: &Path) -> Server {
    let config = kubeconfig(dir, fake, Scope::Namespace("default"));
    Server::start_with(&dir.join("data"), dir, &["--watch-crds", "--namespace", "default"], &[("KUBECONFIG", &config)])
}

/// `tuna serve --watch-crds` for the Experiments of one namespace.
pub fn start_in(fake: &FakeKube, dir: &Path, namespace: &str) -> Server {
    let config = kubeconfig(dir, fake, Scope::Namespace(namespace));
    Server::start_with(&dir.join("data"), dir, &["--watch-crds", "--namespace", namespace], &[("KUBECONFIG", &config)])
}
