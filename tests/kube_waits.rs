//! No silent hangs: a trial that cannot start says why (in its experiment's status message and as
//! an Event) within a reconcile or two, `trial.startTimeout` bounds that wait, and `trial.timeout`
//! counts only running time. `tuna serve --watch-crds` (the real binary) against the fake.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed step is a failed test

mod support;

use std::time::Duration;

use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};
use support::fake_kube::FakeKube;
use support::kube_e2e::{experiment, start, start_in, wait_status};
use tuna::spec::Experiment;

fn says(s: &Value, words: &[&str]) -> bool {
    s["phase"] == "Running" && s["message"].as_str().is_some_and(|m| words.iter().all(|w| m.contains(w)))
}

/// Waits (10 s at most) for a TrialWaiting Event whose note holds `word`.
async fn waiting_event(fake: &FakeKube, word: &str) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        let mut events = fake.objects("events").into_iter().filter(|e| e["reason"] == "TrialWaiting");
        if events.any(|e| e["note"].as_str().or(e["message"].as_str()).is_some_and(|n| n.contains(word))) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_image_that_cannot_be_pulled_is_shown_and_ends_the_trial_at_its_start_timeout() {
    let fake = FakeKube::start().await;
    fake.refuse_image("registry.example.com/nope:1");
    let dir = tempfile::tempdir().unwrap();
    let _server = start(&fake, dir.path());
    let api: Api<Experiment> = Api::namespaced(fake.client(), "default");
    let mut cr =
        experiment("pull", r#"[sh, -c, "echo score=1"]"#, "    startTimeout: 4s\n  metrics: {collector: stdout}\n");
    cr.spec.trial.image = Some("registry.example.com/nope:1".into());
    (cr.spec.max_trials, cr.spec.parallel_trials, cr.spec.max_failed_trials) = (1, 1, 0);
    api.create(&PostParams::default(), &cr).await.unwrap();
    let status = wait_status(&api, "pull", "said why it waits", |s| {
        says(s, &["ImagePullBackOff", "nope:1"]) || s["message"].as_str().is_some_and(|m| m.contains("StartFailed"))
    })
    .await;
    if !says(&status, &["ImagePullBackOff"]) {
        let log = std::fs::read_to_string(dir.path().join("data.log")).unwrap_or_default();
        panic!("{status}\n{log}");
    }
    assert_eq!(status["trials"]["failed"], 0, "waiting is not failing");
    assert!(waiting_event(&fake, "nope:1").await, "an Event says so too");
    let status = wait_status(&api, "pull", "ended", |s| s["phase"] == "Failed").await;
    let message = status["message"].as_str().unwrap();
    assert!(message.contains("StartFailed: did not start within spec.trial.startTimeout (4s)"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pod_refused_by_pod_security_is_shown_with_the_rule_it_breaks() {
    let fake = FakeKube::start().await;
    fake.create_namespace_with_labels("secure", json!({"pod-security.kubernetes.io/enforce": "restricted"}));
    let dir = tempfile::tempdir().unwrap();
    let _server = start_in(&fake, dir.path(), "secure");
    let api: Api<Experiment> = Api::namespaced(fake.client(), "secure");
    let mut cr = experiment("locked", r#"[sh, -c, "echo score=1"]"#, "  metrics: {collector: stdout}\n");
    cr.metadata.namespace = Some("secure".into());
    // tuna's own trial pods pass restricted; a pod template's own security settings are kept.
    cr.spec.trial.image = None;
    cr.spec.trial.pod_template = Some(json!({"spec": {"containers": [{"name": "trial", "image": "busybox:1.36",
        "securityContext": {"allowPrivilegeEscalation": true}}]}}));
    api.create(&PostParams::default(), &cr).await.unwrap();
    let status =
        wait_status(&api, "locked", "said why no pod runs", |s| says(s, &["FailedCreate", "violates PodSecurity"]))
            .await;
    assert!(status["message"].as_str().unwrap().contains("allowPrivilegeEscalation"), "{status}");
    assert!(waiting_event(&fake, "PodSecurity").await, "an Event says so too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_trial_as_tuna_writes_it_runs_in_a_namespace_that_enforces_restricted() {
    // Trial pods had no securityContext: refused in such a namespace, the trial waited forever.
    let fake = FakeKube::start().await;
    fake.create_namespace_with_labels("secure", json!({"pod-security.kubernetes.io/enforce": "restricted"}));
    let dir = tempfile::tempdir().unwrap();
    let _server = start_in(&fake, dir.path(), "secure");
    let api: Api<Experiment> = Api::namespaced(fake.client(), "secure");
    let mut cr = experiment("admitted", r#"[sh, -c, "echo score=${x}"]"#, "  metrics: {collector: stdout}\n");
    cr.metadata.namespace = Some("secure".into());
    cr.spec.max_trials = 1;
    api.create(&PostParams::default(), &cr).await.unwrap();
    let status = wait_status(&api, "admitted", "ended", |s| s["phase"] == "Succeeded" || s["phase"] == "Failed").await;
    assert_eq!(status["phase"], "Succeeded", "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_queued_job_is_shown_as_suspended_and_its_wait_is_not_running_time() {
    let fake = FakeKube::start().await;
    fake.queue_jobs("default");
    let dir = tempfile::tempdir().unwrap();
    let _server = start(&fake, dir.path());
    let api: Api<Experiment> = Api::namespaced(fake.client(), "default");
    let extra = "    timeout: 3s\n  metrics: {collector: stdout}\n";
    let mut cr = experiment("queued", r#"[sh, -c, "sleep 1; echo score=${x}"]"#, extra);
    (cr.spec.max_trials, cr.spec.max_failed_trials) = (2, 0);
    api.create(&PostParams::default(), &cr).await.unwrap();
    wait_status(&api, "queued", "said the trial is queued", |s| says(s, &["Suspended", "Kueue"])).await;
    tokio::time::sleep(Duration::from_secs(4)).await; // longer than trial.timeout, all of it queued
    fake.admit_jobs("default");
    let status = wait_status(&api, "queued", "ended", |s| s["phase"] == "Succeeded" || s["phase"] == "Failed").await;
    assert_eq!(status["phase"], "Succeeded", "the time queued is not running time: {status}");
}
