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
