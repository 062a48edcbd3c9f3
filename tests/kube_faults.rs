//! Kubernetes as a real cluster behaves, through `tuna serve --watch-crds` (the real binary) and the
//! fake API server: what a controller costs an idle cluster, whose Jobs a trial follows, and pods
//! that are not the single-container pod of a tutorial.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed step is a failed test

mod support;

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::Api;
use kube::api::PostParams;
use support::fake_kube::FakeKube;
use support::kube_e2e::{experiment, start, wait_status};
use tuna::spec::Experiment;

/// How long a finished experiment is watched for writes. Long enough for several of the old
/// loop's rounds (it wrote hundreds of times a second) and for the 2 s status period.
const IDLE: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_finished_experiment_gets_no_more_status_writes() {
    let fake = FakeKube::start().await;
    let dir = tempfile::tempdir().unwrap();
    let _server = start(&fake, dir.path());
    let api: Api<Experiment> = Api::namespaced(fake.client(), "default");
    let cr = experiment("idle", r#"[sh, -c, "echo score=${x}"]"#, "  metrics: {collector: stdout}\n");
    let mut cr = cr;
    cr.spec.max_trials = 2;
    api.create(&PostParams::default(), &cr).await.unwrap();
    let status = wait_status(&api, "idle", "succeeded", |s| s["phase"] == "Succeeded").await;
    let ended: Vec<String> = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["lastTransitionTime"].as_str().unwrap().to_string())
        .collect();
    let mark = fake.requests().len();
    tokio::time::sleep(IDLE).await;
    let writes = fake
        .requests()
        .since(mark)
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.path.ends_with("/experiments/idle/status"))
        .count();
    assert_eq!(writes, 0, "status PATCHes in {IDLE:?} after the end");
    let status = wait_status(&api, "idle", "still succeeded", |s| s["phase"] == "Succeeded").await;
    let now: Vec<String> = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["lastTransitionTime"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(now, ended, "conditions keep their lastTransitionTime");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_recreated_experiment_runs_its_own_trials_instead_of_adopting_old_jobs() {
    let fake = FakeKube::start().await;
    let dir = tempfile::tempdir().unwrap();
    let _server = start(&fake, dir.path());
    let api: Api<Experiment> = Api::namespaced(fake.client(), "default");
    // Jobs named as this experiment's trials, left by an earlier `dup` (deleted with the orphan
    // policy, or while its controller was down): they print another value.
    let jobs: Api<Job> = Api::namespaced(fake.client(), "default");
    for index in 0..3 {
        jobs.create(&PostParams::default(), &stale_job(&format!("dup-{index:04}"))).await.unwrap();
    }
    let mut new = experiment("dup", r#"[sh, -c, "echo score=${x}"]"#, "  metrics: {collector: stdout}\n");
    new.spec.max_trials = 2;
    api.create(&PostParams::default(), &new).await.unwrap();
    let status = wait_status(&api, "dup", "succeeded again", |s| s["phase"] == "Succeeded").await;
    let best = status["bestTrial"]["objective"].as_f64().unwrap();
    let x = status["bestTrial"]["parameters"]["x"].as_f64().unwrap();
    assert_eq!(best, x, "the new command's value, not the old Jobs' (score=1)");
    let cr = api.get("dup").await.unwrap();
    for name in ["dup-0000", "dup-0001"] {
        let job = fake.get("jobs", "default", name).unwrap();
        assert_eq!(job["metadata"]["ownerReferences"][0]["uid"].as_str(), cr.metadata.uid.as_deref(), "{name}");
        assert_eq!(job["metadata"]["labels"]["tuna.dev/identity"].as_str(), cr.metadata.uid.as_deref(), "{name}");
    }
    let untouched = fake.get("jobs", "default", "dup-0002").unwrap();
    assert!(untouched["metadata"]["labels"]["tuna.dev/identity"].is_null(), "a Job no trial needed stays");
}

/// A finished-looking trial Job of another incarnation of `dup`: labelled as tuna labels its Jobs.
fn stale_job(name: &str) -> Job {
    serde_json::from_value(serde_json::json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "labels": {"tuna.dev/experiment": "dup", "tuna.dev/trial": name}},
        "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "trial", "image": "busybox", "command": ["sh", "-c", "echo score=1"]}]}}}}))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_metrics_file_on_kubernetes_is_refused_naming_what_works() {
    let fake = FakeKube::start().await;
    let dir = tempfile::tempdir().unwrap();
    let _server = start(&fake, dir.path());
    let api: Api<Experiment> = Api::namespaced(fake.client(), "default");
    // tuna's own parser refuses it too; a CR is whatever kubectl sends.
    let mut cr = experiment("by-file", r#"[sh, -c, "echo score=1 > m.txt"]"#, "  metrics: {collector: stdout}\n");
    cr.spec.metrics.collector = Some(tuna::spec::Collector::File);
    cr.spec.metrics.file = Some("m.txt".into());
    api.create(&PostParams::default(), &cr).await.unwrap();
    let status = wait_status(&api, "by-file", "refused", |s| s["phase"] == "Failed").await;
    assert_eq!(status["reason"], "InvalidSpec", "{status}");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.contains("spec.metrics.collector") && message.contains("push") && message.contains("stdout"),
        "{message}"
    );
    assert!(fake.objects("jobs").is_empty(), "no trial ran");
}

/// A pod template with the trial's container first and a mesh proxy after it, as Istio or Linkerd
/// inject one; the proxy sorts first by name in the pod's container statuses.
const WITH_SIDECAR: &str = "    podTemplate:\n      spec:\n        containers:\n        \
    - {name: trial, image: busybox:1.36}\n        - {name: istio-proxy, image: proxyv2:1.24, command: [sleep, '3600']}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sidecar_hides_neither_the_trials_output_nor_its_exit_code() {
    let fake = FakeKube::start().await;
    let dir = tempfile::tempdir().unwrap();
    let _server = start(&fake, dir.path());
    let api: Api<Experiment> = Api::namespaced(fake.client(), "default");
    let extra = format!("{WITH_SIDECAR}  metrics: {{collector: stdout}}\n");
    let mut meshed = experiment("meshed", r#"[sh, -c, "echo score=${x}"]"#, &extra);
    meshed.spec.max_trials = 2;
    let mut failing = experiment("meshed-fails", r#"[sh, -c, "echo score=${x}; exit 3"]"#, &extra);
    (failing.spec.max_trials, failing.spec.max_failed_trials) = (1, 0);
    api.create(&PostParams::default(), &meshed).await.unwrap();
    api.create(&PostParams::default(), &failing).await.unwrap();
    let status = wait_status(&api, "meshed", "ended", |s| s["phase"] == "Succeeded" || s["phase"] == "Failed").await;
    let best = status["bestTrial"]["objective"].as_f64().unwrap();
    assert_eq!(best, status["bestTrial"]["parameters"]["x"].as_f64().unwrap(), "read from the trial container");
    let status = wait_status(&api, "meshed-fails", "failed", |s| s["phase"] == "Failed").await;
    let message = status["message"].as_str().unwrap();
    assert!(
        message.contains("NonZeroExit") && message.contains("exit code 3"),
        "the trial's code, not the proxy's: {message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn running_trials_count_as_running_while_they_run() {
    let fake = FakeKube::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(&fake, dir.path());
    let api: Api<Experiment> = Api::namespaced(fake.client(), "default");
    let mut cr = experiment("counted", r#"[sh, -c, "sleep 4; echo score=${x}"]"#, "  metrics: {collector: stdout}\n");
    cr.spec.max_trials = 2;
    api.create(&PostParams::default(), &cr).await.unwrap();
    let status = wait_status(&api, "counted", "counted its running trials", |s| {
        s["trials"]["running"] == 2 || s["phase"] == "Succeeded"
    })
    .await;
    assert_eq!(status["phase"], "Running", "the CR counted them only once they ended: {status}");
    let out = server.cli(&["get", "default/counted", "--json"]);
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["status"]["trials"]["running"], 2, "the API too: {got}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tuna_logs_shows_a_kubernetes_trials_output() {
    let fake = FakeKube::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(&fake, dir.path());
    let api: Api<Experiment> = Api::namespaced(fake.client(), "default");
    let mut cr = experiment(
        "logged",
        r#"[sh, -c, "echo hello from the pod; echo score=${x}"]"#,
        "  metrics: {collector: stdout}\n",
    );
    cr.spec.max_trials = 1;
    api.create(&PostParams::default(), &cr).await.unwrap();
    wait_status(&api, "logged", "succeeded", |s| s["phase"] == "Succeeded").await;
    // A resource's experiment is namespace/name; its trial may be named without the namespace.
    let out = server.cli(&["logs", "default/logged", "logged-0000"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("hello from the pod\nscore="), "{text:?} {out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn running_trials_cost_the_api_server_no_requests_beyond_the_shared_watches() {
    // Each running trial sent a GET of its Job and a LIST of its pods every 500 ms: 240 requests a
    // minute per trial, 400 a second at 100 trials.
    const TRIALS: u32 = 4;
    let fake = FakeKube::start().await;
    let dir = tempfile::tempdir().unwrap();
    let _server = start(&fake, dir.path());
    let api: Api<Experiment> = Api::namespaced(fake.client(), "default");
    let mut cr = experiment("quiet", r#"[sh, -c, "sleep 8; echo score=${x}"]"#, "  metrics: {collector: stdout}\n");
    (cr.spec.max_trials, cr.spec.parallel_trials) = (TRIALS, TRIALS);
    api.create(&PostParams::default(), &cr).await.unwrap();
    wait_status(&api, "quiet", "all trials running", |s| s["trials"]["running"] == TRIALS).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mark = fake.requests().len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let window = fake.requests().since(mark);
    let polls: Vec<String> = window
        .iter()
        .filter(|r| !r.is_watch() && (r.path.contains("/jobs") || r.path.contains("/pods")))
        .map(|r| format!("{} {}?{}", r.method, r.path, r.query))
        .collect();
    assert_eq!(polls, Vec::<String>::new(), "Job and pod state comes from the watches");
    let watched = |resource: &str| {
        fake.requests().since(0).iter().any(|r| r.is_watch() && r.path.ends_with(&format!("/{resource}")))
    };
    assert!(watched("jobs") && watched("pods"), "the request log shows the trials' Jobs and pods watched");
    wait_status(&api, "quiet", "succeeded", |s| s["phase"] == "Succeeded").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_namespaces_may_each_have_an_experiment_of_one_name() {
    // The store keyed custom resources by bare name: team-b's `mnist` got NameConflict because
    // team-a had one.
    let fake = FakeKube::start().await;
    for ns in ["team-a", "team-b"] {
        fake.create_namespace(ns);
    }
    let dir = tempfile::tempdir().unwrap();
    let config = support::kube_e2e::kubeconfig(dir.path(), &fake, support::kube_e2e::Scope::AllNamespaces);
    let server = support::server::Server::start_with(
        &dir.path().join("data"),
        dir.path(),
        &["--watch-crds", "--all-namespaces"],
        &[("KUBECONFIG", &config)],
    );
    for (ns, value) in [("team-a", 1), ("team-b", 2)] {
        let api: Api<Experiment> = Api::namespaced(fake.client(), ns);
        let command = format!(r#"[sh, -c, "echo score={value}"]"#);
        let mut cr = experiment("mnist", &command, "  metrics: {collector: stdout}\n");
        cr.spec.max_trials = 1;
        api.create(&PostParams::default(), &cr).await.unwrap();
    }
    for (ns, value) in [("team-a", 1.0), ("team-b", 2.0)] {
        let api: Api<Experiment> = Api::namespaced(fake.client(), ns);
        let status =
            wait_status(&api, "mnist", "succeeded", |s| s["phase"] == "Succeeded" || s["phase"] == "Failed").await;
        assert_eq!(status["phase"], "Succeeded", "{ns}: {status}");
        assert_eq!(status["bestTrial"]["objective"].as_f64(), Some(value), "{ns}'s own trial: {status}");
        assert!(fake.get("jobs", ns, "mnist-0000").is_some(), "{ns}'s trial ran as a Job in {ns}");
        // The API and the CLI address each as namespace/name.
        let out = server.cli(&["get", &format!("{ns}/mnist"), "--json"]);
        assert!(out.status.success(), "tuna get {ns}/mnist: {}", String::from_utf8_lossy(&out.stderr));
        let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(got["status"]["bestTrial"]["objective"].as_f64(), Some(value), "{got}");
        let out = server.cli(&["leaderboard", &format!("{ns}/mnist"), "--format", "json"]);
        assert!(out.status.success(), "tuna leaderboard {ns}/mnist: {}", String::from_utf8_lossy(&out.stderr));
        let board: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(board["trials"][0]["objective"].as_f64(), Some(value), "{board}");
    }
    let out = server.cli(&["get", "mnist"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && said.contains("team-a/mnist, team-b/mnist"),
        "a bare name is pointed to both: {said}"
    );
    assert_eq!(fake.requests().refusals(), Vec::<String>::new(), "the shipped all-namespaces RBAC grants it all");
}
