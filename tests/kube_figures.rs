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

/// Figures for 100 trials running at once on the fake: the controller's CPU and peak RSS, and how
/// long after a trial's process ended its outcome was recorded (p50/p99). Each trial prints the
/// time it ended (`ended=$(date +%s.%N)`) as its last metric line.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a benchmark: prints figures, takes about a minute"]
async fn kube_figures_100_trials() {
    const N: u32 = 100;
    let fake = FakeKube::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(&fake, dir.path());
    let pid = server.child.id();
    let api: Api<Experiment> = Api::namespaced(fake.client(), "default");
    let command = r#"[sh, -c, "sleep 8; echo score=${x} ended=$(date +%s.%N)"]"#;
    let mut cr = experiment("hundred", command, "  metrics: {collector: stdout}\n");
    (cr.spec.max_trials, cr.spec.parallel_trials) = (N, N);
    let cpu = || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<u64> =
            stat.rsplit(')').next().unwrap().split_whitespace().filter_map(|f| f.parse().ok()).collect();
        // utime and stime are fields 14 and 15 of stat; after the ")" the first field (state) is
        // not a number, so they are the 11th and 12th numbers here.
        (fields[10] + fields[11]) as f64 / 100.0
    };
    let cpu_before = cpu();
    let started = std::time::Instant::now();
    api.create(&PostParams::default(), &cr).await.unwrap();
    wait_status(&api, "hundred", "all running", |s| s["trials"]["running"] == N).await;
    let all_running = started.elapsed();
    wait_status(&api, "hundred", "succeeded", |s| s["phase"] == "Succeeded" || s["phase"] == "Failed").await;
    let elapsed = started.elapsed();
    let cpu_used = cpu() - cpu_before;
    let hwm = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .map(|l| l.split_whitespace().nth(1).unwrap().parse::<f64>().unwrap() / 1024.0)
        .unwrap();
    let url = format!("{}/api/v1/experiments/hundred/trials?limit=1000", server.url);
    let listed: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    let mut lags: Vec<f64> = listed["trials"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| {
            let ended = t["metrics"]["ended"].as_f64()?;
            let recorded: jiff::Timestamp = t["finishedAt"].as_str()?.parse().ok()?;
            Some(recorded.as_nanosecond() as f64 / 1e9 - ended)
        })
        .collect();
    lags.sort_by(f64::total_cmp);
    let pct = |q: f64| lags[((lags.len() as f64 * q) as usize).min(lags.len() - 1)];
    println!("{N} trials at once: all running after {all_running:.1?}, all done after {elapsed:.1?}");
    println!("  controller CPU {cpu_used:.2} s ({:.3} cores), peak RSS {hwm:.0} MB", cpu_used / elapsed.as_secs_f64());
    println!(
        "  process end to recorded outcome ({} trials): p50 {:.3} s, p99 {:.3} s",
        lags.len(),
        pct(0.5),
        pct(0.99)
    );
}
