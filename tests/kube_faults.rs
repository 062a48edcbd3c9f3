//! Kubernetes as a real cluster behaves, through `tuna serve --watch-crds` (the real binary) and the
//! fake API server: what a controller costs an idle cluster, whose Jobs a trial follows, and pods
//! that are not the single-container pod of a tutorial.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed step is a failed test

mod support;

use std::time::Duration;

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
