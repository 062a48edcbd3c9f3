#![allow(clippy::expect_used)] // a benchmark that cannot set up has nothing to measure
//! Orchestration overhead: 500 no-op trials (`true`), 8 at a time, through the whole controller
//! (search, sled writes flushed per state change, process groups, output pumps), beside a plain
//! spawn of the same 500 processes 8 at a time in the same run. Prints trials/s and the ratio.
//!
//! `cargo bench --bench orchestration` (release build).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;
use tuna::controller::Controller;
use tuna::executor::LocalExecutor;
use tuna::store::Store;

const TRIALS: usize = 500;
const PARALLEL: usize = 8;
const ROUNDS: usize = 3;

fn spec() -> tuna::spec::Experiment {
    let text = format!(
        "apiVersion: tuna.dev/v1alpha1\nkind: Experiment\nmetadata: {{name: overhead}}\nspec:\n  \
         objective: {{metric: score, goal: maximize}}\n  parameters: [{{name: x, type: double, min: 0, max: 1}}]\n  \
         maxTrials: {TRIALS}\n  parallelTrials: {PARALLEL}\n  maxFailedTrials: {TRIALS}\n  trial: {{command: [\"true\"]}}\n"
    );
    tuna::spec::parse(&text).expect("the bench spec is valid")
}

async fn through_tuna() -> Duration {
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = Store::open(dir.path()).expect("the store opens");
    let controller = Controller::new(store, Arc::new(LocalExecutor::new(Vec::new())), dir.path().to_path_buf());
    controller.admit(spec(), None, false).expect("admitted");
    let (_keep, shutdown) = watch::channel(tuna::controller::Halt::Run);
    let start = Instant::now();
    let record = controller.run("overhead", shutdown, &mut |_| {}).await.expect("the experiment runs");
    let elapsed = start.elapsed();
    let counts = record.experiment.status.expect("a status").trials;
    assert_eq!(counts.succeeded + counts.failed, TRIALS as u32);
    elapsed
}

async fn plain_spawn() -> Duration {
    let start = Instant::now();
    let mut running = JoinSet::new();
    for _ in 0..TRIALS {
        if running.len() == PARALLEL {
            running.join_next().await;
        }
        running.spawn(async { tokio::process::Command::new("true").status().await });
    }
    while running.join_next().await.is_some() {}
    start.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for the list of benchmarks
    }
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let (mut tuna_times, mut plain_times) = (Vec::new(), Vec::new());
    runtime.block_on(async {
        plain_spawn().await; // warm-up: page cache, process table
        for _ in 0..ROUNDS {
            tuna_times.push(through_tuna().await);
            plain_times.push(plain_spawn().await);
        }
    });
    let (t, p) = (median(tuna_times), median(plain_times));
    let rate = |d: Duration| TRIALS as f64 / d.as_secs_f64();
    println!("orchestration: {TRIALS} no-op trials, {PARALLEL} in parallel, median of {ROUNDS} rounds");
    println!("  tuna run loop : {:>8.1} trials/s ({:.2} s)", rate(t), t.as_secs_f64());
    println!("  plain spawn   : {:>8.1} processes/s ({:.2} s)", rate(p), p.as_secs_f64());
    println!(
        "  ratio         : tuna reaches {:.0}% of plain spawn throughput ({:.2} ms overhead per trial)",
        100.0 * rate(t) / rate(p),
        (t.as_secs_f64() - p.as_secs_f64()) * 1000.0 / TRIALS as f64
    );
}
