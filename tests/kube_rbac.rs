//! The controller under RBAC: a verb the install does not grant is refused by the fake as by a
//! cluster (403), and the refusal reaches the user as a condition, an Event and a log line that
//! say what was refused, instead of a silent retry.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed step is a failed test

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::Value;
use support::fake_kube::FakeKube;
use support::kube_e2e::{Scope, experiment, kubeconfig_as, shipped_rbac, wait_status};
use support::server::Server;
use tuna::spec::Experiment;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_deletecollection_on_jobs_a_deleted_experiment_says_what_was_refused() {
    let fake = FakeKube::start().await;
    let dir = tempfile::tempdir().unwrap();
    let scope = Scope::Namespace("default");
    fake.enforce_rbac(shipped_rbac(scope).without_verb("jobs", "deletecollection"));
    let config = kubeconfig_as(dir.path(), &fake, scope);
    let data = dir.path().join("data");
    let _server =
        Server::start_with(&data, dir.path(), &["--watch-crds", "--namespace", "default"], &[("KUBECONFIG", &config)]);
    let api: Api<Experiment> = Api::namespaced(fake.client(), "default");
    let mut cr = experiment("held", r#"[sh, -c, "echo score=1; sleep 30"]"#, "  metrics: {collector: stdout}\n");
    cr.spec.max_trials = 1;
    cr.spec.parallel_trials = 1;
    api.create(&PostParams::default(), &cr).await.unwrap();
    wait_status(&api, "held", "running", |s| s["trials"]["running"] == 1).await;

    // Every status the CR has from here on, also one it has only briefly before it goes.
    let statuses: Arc<Mutex<Vec<Value>>> = Arc::default();
    let seen = Arc::clone(&statuses);
    let watch = tokio::spawn(watcher(api.clone(), watcher::Config::default()).for_each(move |event| {
        if let Ok(watcher::Event::Apply(e) | watcher::Event::InitApply(e)) = event
            && e.name_any() == "held"
        {
            seen.lock().unwrap().push(serde_json::to_value(&e.status).unwrap_or_default());
        }
        async {}
    }));
    api.delete("held", &DeleteParams::default()).await.unwrap();

    let refused =
        |c: &Value| c["message"].as_str().is_some_and(|m| m.contains("cannot deletecollection resource \"jobs\""));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let condition = loop {
        let found = statuses.lock().unwrap().iter().find_map(|s| {
            s["conditions"].as_array().into_iter().flatten().find(|c| c["type"] == "CleanupFailed").cloned()
        });
        if let Some(condition) = found {
            break condition;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no CleanupFailed condition; statuses {:?}",
            statuses.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    watch.abort();
    assert_eq!(condition["reason"], "Forbidden", "{condition}");
    assert!(refused(&condition), "the condition names what was refused: {condition}");
    let message = condition["message"].as_str().unwrap();
    assert!(message.contains("docs/rbac.md"), "and where the rights are listed: {message}");
    let events = fake.objects("events");
    let event = events.iter().find(|e| e["reason"] == "CleanupFailed").expect("a CleanupFailed Event");
    assert_eq!(event["type"], "Warning");
    assert!(event["note"].as_str().is_some_and(|n| n.contains("cannot deletecollection")), "{event}");
    let log = std::fs::read_to_string(data.with_extension("log")).unwrap();
    assert!(log.contains("cannot deletecollection resource"), "the log says what was refused:\n{log}");
    // Not a hang: once its trial is stopped the resource goes (its finished Jobs with it, by their
    // owner reference).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while api.get_opt("held").await.unwrap().is_some() {
        assert!(tokio::time::Instant::now() < deadline, "the deleted Experiment stayed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        fake.requests().refusals().iter().filter(|r| !r.contains("deletecollection")).count(),
        0,
        "only the verb taken away was refused: {:?}",
        fake.requests().refusals()
    );
}

/// An API-submitted Kubernetes experiment: the document the issue's escalation used, with `trial`.
fn api_document(name: &str, trial: &str) -> String {
    format!(
        "apiVersion: tuna.dev/v1alpha1\nkind: Experiment\nmetadata: {{name: {name}}}\nspec:\n  \
         objective: {{metric: score, goal: maximize}}\n  algorithm: {{name: random, seed: 2}}\n  \
         parameters: [{{name: x, type: int, min: 1, max: 9}}]\n  maxTrials: 1\n  executor: kubernetes\n  \
         metrics: {{collector: stdout}}\n  trial:\n{trial}"
    )
}

fn refused_at(answer: Result<tuna::spec::Experiment, tuna::client::Error>) -> Vec<String> {
    match answer {
        Err(tuna::client::Error::Api { status, problems, .. }) => {
            assert_eq!(status.as_u16(), 422, "{problems:?}");
            problems.into_iter().map(|p| p.field).collect()
        }
        other => panic!("expected a 422, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn api_experiments_cannot_borrow_the_controllers_account_namespace_or_node() {
    let fake = FakeKube::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = support::kube_e2e::kubeconfig(dir.path(), &fake, Scope::AllNamespaces);
    // As deploy/ runs it, but without --trial-namespace: the controller's own namespace is no default.
    let plain = Server::start_with(
        &dir.path().join("plain"),
        dir.path(),
        &["--watch-crds", "--all-namespaces"],
        &[("KUBECONFIG", &config)],
    );
    let image = "    image: busybox:1.36\n    command: [sh, -c, \"echo score=1\"]\n";
    let fields = refused_at(plain.client().submit(api_document("anywhere", image)).await);
    assert_eq!(fields, ["spec.executor"]);
    drop(plain);

    fake.create_namespace("tuna-trials");
    let server = Server::start_with(
        &dir.path().join("data"),
        dir.path(),
        &["--watch-crds", "--all-namespaces", "--trial-namespace", "tuna-trials"],
        &[("KUBECONFIG", &config)],
    );
    let as_controller = format!("{image}    serviceAccountName: tuna\n");
    let fields = refused_at(server.client().submit(api_document("borrowed", &as_controller)).await);
    assert_eq!(fields, ["spec.trial.serviceAccountName"]);
    let node = "    podTemplate:\n      spec:\n        hostPID: true\n        \
                volumes: [{name: root, hostPath: {path: /}}]\n        \
                containers: [{name: t, image: busybox:1.36, command: [sh, -c, \"echo score=1\"], \
                securityContext: {privileged: true}}]\n";
    let fields = refused_at(server.client().submit(api_document("rooted", node)).await);
    assert_eq!(
        fields,
        [
            "spec.trial.podTemplate.spec.hostPID",
            "spec.trial.podTemplate.spec.volumes[0].hostPath",
            "spec.trial.podTemplate.spec.containers[0].securityContext.privileged",
        ]
    );

    server.client().submit(api_document("fine", image)).await.unwrap();
    let finished = server.wait_finished("fine");
    assert_eq!(finished["status"]["phase"], "Succeeded", "{finished}");
    let job = fake.get("jobs", "tuna-trials", "fine-0000").expect("the trial's Job in the trial namespace");
    assert_eq!(job["spec"]["template"]["spec"]["serviceAccountName"], "tuna-trial");
    assert!(fake.objects("jobs").iter().all(|j| j["metadata"]["namespace"] == "tuna-trials"), "no Job elsewhere");
    assert_eq!(fake.requests().refusals(), Vec::<String>::new());
}

/// `components/namespaces` (team-a and team-b, nothing cluster-wide): `tuna serve --namespace
/// team-a,team-b` reconciles an Experiment in each under the shipped rights alone, and leaves one
/// in an unlisted namespace alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_list_of_namespaces_is_watched_each_under_its_own_role_binding_and_no_other() {
    let fake = FakeKube::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = support::kube_e2e::kubeconfig(dir.path(), &fake, Scope::TeamNamespaces);
    for namespace in ["team-b", "team-c"] {
        fake.create_namespace(namespace);
    }
    let data = dir.path().join("data");
    let _server = Server::start_with(
        &data,
        dir.path(),
        &["--watch-crds", "--namespace", "team-a,team-b"],
        &[("KUBECONFIG", &config)],
    );
    let mut cr = experiment("listed", r#"[sh, -c, "echo score=1"]"#, "  metrics: {collector: stdout}\n");
    cr.spec.max_trials = 1;
    cr.spec.parallel_trials = 1;
    for namespace in ["team-a", "team-b", "team-c"] {
        let api: Api<Experiment> = Api::namespaced(fake.client(), namespace);
        api.create(&PostParams::default(), &cr).await.unwrap();
    }
    for namespace in ["team-a", "team-b"] {
        let api: Api<Experiment> = Api::namespaced(fake.client(), namespace);
        wait_status(&api, "listed", &format!("Succeeded in {namespace}"), |s| s["phase"] == "Succeeded").await;
    }
    let unlisted: Api<Experiment> = Api::namespaced(fake.client(), "team-c");
    let untouched = unlisted.get("listed").await.unwrap();
    assert!(untouched.status.is_none(), "team-c is not watched: {:?}", untouched.status);
    assert!(untouched.finalizers().is_empty(), "no finalizer in team-c: {:?}", untouched.finalizers());
    let jobs = fake.objects("jobs");
    assert!(jobs.iter().all(|j| j["metadata"]["namespace"] != "team-c"), "no Job in team-c");
    assert_eq!(jobs.iter().filter(|j| j["metadata"]["namespace"] == "team-a").count(), 1);
    assert_eq!(jobs.iter().filter(|j| j["metadata"]["namespace"] == "team-b").count(), 1);
    assert_eq!(fake.requests().refusals(), Vec::<String>::new(), "no request was refused");
}

/// Without `create` on secrets a trial cannot get its push token: it fails to start, saying that
/// the Secret was refused, and its Job is deleted rather than left waiting for a Secret forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_create_on_secrets_a_trial_fails_to_start_and_leaves_no_job() {
    let fake = FakeKube::start().await;
    let dir = tempfile::tempdir().unwrap();
    let scope = Scope::Namespace("default");
    fake.enforce_rbac(shipped_rbac(scope).without_verb("secrets", "create"));
    let config = kubeconfig_as(dir.path(), &fake, scope);
    let data = dir.path().join("data");
    let _server =
        Server::start_with(&data, dir.path(), &["--watch-crds", "--namespace", "default"], &[("KUBECONFIG", &config)]);
    let api: Api<Experiment> = Api::namespaced(fake.client(), "default");
    let mut cr = experiment("tokenless", r#"[sh, -c, "echo score=1"]"#, "");
    cr.spec.max_trials = 1;
    cr.spec.parallel_trials = 1;
    api.create(&PostParams::default(), &cr).await.unwrap();
    let status = wait_status(&api, "tokenless", "failed", |s| s["phase"] == "Failed").await;
    let message = status["message"].as_str().unwrap_or_default();
    assert!(message.contains("failed to create Secret") && message.contains("secrets is forb"), "{status}");
    assert!(fake.objects("jobs").is_empty(), "the Job without its Secret is deleted");
    assert!(fake.requests().refusals().iter().any(|r| r.contains("secrets")), "{:?}", fake.requests().refusals());
}
