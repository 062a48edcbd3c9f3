//! Two controllers against one cluster (a second replica, or both pods of a rollout): only the
//! holder of the `tuna-controller` Lease runs experiments; when it goes, the other takes over.
//! Two real `tuna serve --watch-crds` processes, each with its own data dir, against the fake.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed step is a failed test

mod support;

use kube::Api;
use kube::api::PostParams;
use support::fake_kube::FakeKube;
use support::kube_e2e::{Scope, experiment, jobs_of, kubeconfig, wait_status};
use support::server::Server;
use tuna::spec::Experiment;

fn controller(fake: &FakeKube, dir: &std::path::Path, name: &str) -> Server {
    let config = kubeconfig(dir, fake, Scope::Namespace("default"));
    let data = dir.join(name);
    Server::start_with(&data, dir, &["--watch-crds", "--namespace", "default"], &[("KUBECONFIG", &config)])
}

/// Whether the server's store has the resource `default/NAME`'s experiment.
fn holds(server: &Server, name: &str) -> bool {
    server.cli(&["get", &format!("default/{name}"), "--json"]).status.success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_two_controllers_only_the_lease_holder_runs_experiments_and_the_other_takes_over() {
    let fake = FakeKube::start().await;
    let dir = tempfile::tempdir().unwrap();
    let first = controller(&fake, dir.path(), "a");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while fake.get("leases", "default", "tuna-controller").is_none() {
        assert!(tokio::time::Instant::now() < deadline, "the first controller never took the Lease");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let second = controller(&fake, dir.path(), "b");
    let api: Api<Experiment> = Api::namespaced(fake.client(), "default");
    let mut cr = experiment("once", r#"[sh, -c, "echo score=${x}"]"#, "  metrics: {collector: stdout}\n");
    cr.spec.max_trials = 2;
    api.create(&PostParams::default(), &cr).await.unwrap();
    let status = wait_status(&api, "once", "succeeded", |s| s["phase"] == "Succeeded").await;
    assert_eq!(status["trials"]["succeeded"], 2);
    assert_eq!(jobs_of(&fake, "once").len(), 2);
    assert!(holds(&first, "once"), "the holder ran it");
    assert!(!holds(&second, "once"), "the other did not even take it into its store");

    drop(first); // SIGTERM: it releases the Lease
    let mut next = experiment("after", r#"[sh, -c, "echo score=${x}"]"#, "  metrics: {collector: stdout}\n");
    next.spec.max_trials = 1;
    api.create(&PostParams::default(), &next).await.unwrap();
    wait_status(&api, "after", "succeeded", |s| s["phase"] == "Succeeded").await;
    assert!(holds(&second, "after"), "the second controller took over");
    let lease = fake.get("leases", "default", "tuna-controller").unwrap();
    assert_eq!(lease["spec"]["leaseTransitions"], 1, "{lease}");
}
