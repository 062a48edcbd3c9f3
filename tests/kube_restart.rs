//! A controller that goes away (a rollout, a drain: SIGTERM) leaves its Kubernetes trials running,
//! and the next one re-attaches to them: `tuna serve --watch-crds` (the real binary) twice against
//! one fake API server.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed step is a failed test

mod support;

use std::time::Duration;

use kube::Api;
use kube::api::PostParams;
use serde_json::Value;
use support::fake_kube::FakeKube;
use support::kube_e2e::{experiment, jobs_of, start, wait_status};
use tuna::spec::Experiment;

fn pods_of(fake: &FakeKube, experiment: &str) -> Vec<Value> {
    fake.objects("pods").into_iter().filter(|p| p["metadata"]["labels"]["tuna.dev/experiment"] == experiment).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_graceful_shutdown_leaves_trials_running_and_the_next_controller_reattaches() {
    let fake = FakeKube::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(&fake, dir.path());
    let api: Api<Experiment> = Api::namespaced(fake.client(), "default");
    let mut cr = experiment("rollout", r#"[sh, -c, "sleep 4; echo score=${x}"]"#, "  metrics: {collector: stdout}\n");
    cr.spec.max_trials = 2;
    api.create(&PostParams::default(), &cr).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while pods_of(&fake, "rollout").iter().filter(|p| p["status"]["phase"] == "Running").count() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "the trials never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(server); // SIGTERM, and waits until it exits
    let running = pods_of(&fake, "rollout").iter().filter(|p| p["status"]["phase"] == "Running").count();
    assert_eq!((jobs_of(&fake, "rollout").len(), running), (2, 2), "the Jobs and their pods run on");
    let _server = start(&fake, dir.path());
    let status =
        wait_status(&api, "rollout", "succeeded", |s| s["phase"] == "Succeeded" || s["phase"] == "Failed").await;
    assert_eq!(status["trials"]["succeeded"], 2, "{status}");
    let best = status["bestTrial"]["objective"].as_f64().unwrap();
    assert_eq!(best, status["bestTrial"]["parameters"]["x"].as_f64().unwrap(), "the metric arrived after the restart");
    assert_eq!(pods_of(&fake, "rollout").len(), 2, "no trial ran again");
}

/// The observations of trial `index` of `experiment`, from the server's API.
async fn observations(server: &support::server::Server, experiment: &str, index: u32) -> Vec<Value> {
    let url = format!("{}/api/v1/experiments/{experiment}/trials/{experiment}-{index:04}/observations", server.url);
    let answer: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    answer["observations"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reattached_trials_output_is_not_reported_twice() {
    // The next controller read the pod's log from its start again: every line printed before the
    // restart became a second observation.
    let fake = FakeKube::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(&fake, dir.path());
    let api: Api<Experiment> = Api::namespaced(fake.client(), "default");
    let mut cr = experiment(
        "once",
        r#"[sh, -c, "echo score=0.5; sleep 4; echo score=${x}"]"#,
        "  metrics: {collector: stdout}\n",
    );
    cr.spec.max_trials = 1;
    api.create(&PostParams::default(), &cr).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while observations(&server, "once", 0).await.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the first line never arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(server); // SIGTERM: the Job runs on
    let server = start(&fake, dir.path());
    let status = wait_status(&api, "once", "ended", |s| s["phase"] == "Succeeded" || s["phase"] == "Failed").await;
    assert_eq!(status["trials"]["succeeded"], 1, "{status}");
    let values: Vec<f64> = observations(&server, "once", 0).await.iter().filter_map(|o| o["value"].as_f64()).collect();
    let x = status["bestTrial"]["parameters"]["x"].as_f64().unwrap();
    assert_eq!(values, vec![0.5, x], "each line once, in order");
}
