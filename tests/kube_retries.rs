//! One meaning of `trial.retries` on Kubernetes as locally, and the metrics of the attempt that
//! produced the outcome: `tuna serve --watch-crds` (the real binary) against the fake API server,
//! whose Jobs judge their `podFailurePolicy` and whose pods can be evicted.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed step is a failed test

mod support;

use std::path::Path;
use std::time::Duration;

use kube::Api;
use kube::api::PostParams;
use serde_json::Value;
use support::fake_kube::FakeKube;
use support::kube_e2e::{experiment, start, wait_status};
use tuna::spec::Experiment;

/// A trial whose first run prints `score=900` then does `then`, and whose next run (the marker
/// file exists) prints `score=533` and exits 0. With `goal: maximize` the objective is the largest
/// value reported, so a tally that mixed both runs would say 900.
fn twice(dir: &Path, name: &str, then: &str, retries: u32) -> Experiment {
    let marker = dir.join(format!("{name}.ran")).display().to_string();
    let script = format!("if [ -e {marker} ]; then echo score=533; else touch {marker}; echo score=900; {then}; fi");
    let mut cr = experiment(name, &format!("[sh, -c, {script:?}]"), "  metrics: {collector: stdout}\n");
    (cr.spec.max_trials, cr.spec.parallel_trials, cr.spec.max_failed_trials) = (1, 1, 0);
    cr.spec.trial.retries = retries;
    cr
}

fn ended(s: &Value) -> bool {
    s["phase"] == "Succeeded" || s["phase"] == "Failed"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_non_zero_exit_fails_the_trial_at_once_as_locally_even_with_retries() {
    let fake = FakeKube::start().await;
    let dir = tempfile::tempdir().unwrap();
    let _server = start(&fake, dir.path());
    let api: Api<Experiment> = Api::namespaced(fake.client(), "default");
    api.create(&PostParams::default(), &twice(dir.path(), "exits", "exit 3", 1)).await.unwrap();
    let status = wait_status(&api, "exits", "ended", ended).await;
    let message = status["message"].as_str().unwrap_or_default();
    assert_eq!(status["phase"], "Failed", "retries are for kills, not for the program's own failure: {status}");
    assert!(message.contains("NonZeroExit: exit code 3"), "{message}");
    let job = fake.get("jobs", "default", "exits-0000").unwrap();
    assert_eq!(job["status"]["conditions"][1]["reason"], "PodFailurePolicy", "{job}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_trial_is_retried_and_ranked_by_the_retry_alone() {
    let fake = FakeKube::start().await;
    let dir = tempfile::tempdir().unwrap();
    let _server = start(&fake, dir.path());
    let api: Api<Experiment> = Api::namespaced(fake.client(), "default");
    // Kubernetes expands `$$` in a command to `$`, so `$$$$` reaches the shell as `$$`.
    api.create(&PostParams::default(), &twice(dir.path(), "killed", "kill -9 $$$$", 1)).await.unwrap();
    let status = wait_status(&api, "killed", "ended", ended).await;
    assert_eq!(status["phase"], "Succeeded", "{status}");
    assert_eq!(status["bestTrial"]["objective"], 533.0, "the retry's value, not the killed run's: {status}");
    let job = fake.get("jobs", "default", "killed-0000").unwrap();
    assert_eq!(job["metadata"]["annotations"]["tuna.dev/attempt"], "2", "the retry runs as a Job of its own");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_evicted_pod_is_run_again_by_its_job_and_only_the_new_pods_output_counts() {
    let fake = FakeKube::start().await;
    let dir = tempfile::tempdir().unwrap();
    let _server = start(&fake, dir.path());
    let api: Api<Experiment> = Api::namespaced(fake.client(), "default");
    api.create(&PostParams::default(), &twice(dir.path(), "evicted", "sleep 30", 0)).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let pod = loop {
        let pods = fake.objects("pods");
        let first = pods.iter().find(|p| p["metadata"]["labels"]["job-name"] == "evicted-0000");
        let name = first.map(|p| p["metadata"]["name"].as_str().unwrap().to_string());
        if let Some(name) = name.filter(|n| fake.pod_log("default", n).is_some_and(|l| l.contains("score=900"))) {
            break name;
        }
        assert!(tokio::time::Instant::now() < deadline, "the first pod never reported");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_millis(1500)).await; // tuna has read the line
    assert!(fake.evict("default", &pod));
    let status = wait_status(&api, "evicted", "ended", ended).await;
    assert_eq!(status["phase"], "Succeeded", "a disruption is no failure of the trial: {status}");
    assert_eq!(status["bestTrial"]["objective"], 533.0, "the replacement pod's value: {status}");
    let pods: Vec<Value> =
        fake.objects("pods").into_iter().filter(|p| p["metadata"]["labels"]["job-name"] == "evicted-0000").collect();
    assert_eq!(pods.len(), 2, "the Job replaced the evicted pod");
}
