//! Figures, not assertions (run on purpose: `cargo test --test kube_figures -- --ignored
//! --nocapture`): what `tuna serve --watch-crds` costs the API server, counted in the fake's
//! request log. Prints status PATCHes in the 10 s after an experiment ends, and API requests per
//! minute per running trial in steady state.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a figure that cannot be taken is a failed run

mod support;

use std::time::Duration;

use kube::Api;
use kube::api::PostParams;
use support::fake_kube::FakeKube;
use support::kube_e2e::{experiment, start, wait_status};
use tuna::spec::Experiment;

const TRIALS: u32 = 4;
const STEADY: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a benchmark: prints figures, takes about 45 s"]
async fn kube_figures() {
    let fake = FakeKube::start().await;
    let dir = tempfile::tempdir().unwrap();
    let _server = start(&fake, dir.path());
    let api: Api<Experiment> = Api::namespaced(fake.client(), "default");
    let mut cr = experiment("figures", r#"[sh, -c, "sleep 20; echo score=${x}"]"#, "  metrics: {collector: stdout}\n");
    (cr.spec.max_trials, cr.spec.parallel_trials) = (TRIALS, TRIALS);
    api.create(&PostParams::default(), &cr).await.unwrap();
    wait_status(&api, "figures", "running", |s| s["trials"]["running"] == TRIALS).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mark = fake.requests().len();
    tokio::time::sleep(STEADY).await;
    let steady = fake.requests().since(mark);
    let (watches, others): (Vec<_>, Vec<_>) = steady.iter().partition(|r| r.is_watch());
    let per_trial_minute = others.len() as f64 / f64::from(TRIALS) * 60.0 / STEADY.as_secs_f64();
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    for r in &others {
        let path: Vec<&str> = r.path.split('/').collect();
        let resource = path
            .iter()
            .rev()
            .find(|s| ["jobs", "pods", "events", "experiments", "status", "log", "leases"].contains(s));
        *kinds.entry(format!("{} {}", r.method, resource.unwrap_or(&"?"))).or_default() += 1;
    }
    println!(
        "steady state, {TRIALS} trials running, {STEADY:?}: {} requests besides {} watch(es) opened",
        others.len(),
        watches.len()
    );
    println!("  = {per_trial_minute:.0} requests per minute per running trial; by kind: {kinds:?}");
    wait_status(&api, "figures", "succeeded", |s| s["phase"] == "Succeeded").await;
    let mark = fake.requests().len();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let patches =
        fake.requests().since(mark).iter().filter(|r| r.method == "PATCH" && r.path.ends_with("/status")).count();
    println!("status PATCHes in the 10 s after the end: {patches}");
}
