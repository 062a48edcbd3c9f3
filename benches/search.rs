#![allow(clippy::expect_used)] // a benchmark that cannot set up has nothing to measure
//! Suggestion latency of each search algorithm at 10, 100, 500 and 1,000 earlier trials in six
//! dimensions (stepped doubles, so grid search has a finite space too).
//!
//! `bayesian` is a running experiment: an instance that suggested the previous trial (so it holds
//! the hyperparameters fitted at the latest checkpoint) asked for the next one after one more
//! result. `bayesian-anticipated` is the same instance as the API keeps it, which also ran
//! `Search::anticipate` while that trial was pending (the fit, `K⁻¹` and the candidates' variances
//! made ahead): what is left after the result. `bayesian-fresh` is a new instance given the same
//! history (a resumed experiment), which first refits the chain of checkpoints since the last
//! power of two.
//!
//! `cargo bench --bench search` (release build).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tuna::search::bayes::Bayesian;
use tuna::search::{Grid, Outcome, Past, Random, Search};
use tuna::space::{ParamValue, Space};
use tuna::spec::{ParameterSpec, ParameterType, Scale};

const SIZES: [usize; 4] = [10, 100, 500, 1000];
const DIMS: usize = 6;

fn space() -> Space {
    let params: Vec<ParameterSpec> = (0..DIMS)
        .map(|i| ParameterSpec {
            name: format!("x{i}"),
            kind: ParameterType::Double,
            min: Some(0.0),
            max: Some(1.0),
            step: Some(0.001),
            scale: Scale::Linear,
            values: vec![],
        })
        .collect();
    Space::new(&params)
}

/// `n + 1` finished trials at random points of a smooth objective with a single basin.
fn history(space: &Space, n: usize) -> Vec<Past> {
    let mut rng = StdRng::seed_from_u64(7);
    (0..=n)
        .map(|_| {
            let parameters = space.sample(&mut rng);
            let loss: f64 = parameters
                .values()
                .enumerate()
                .map(|(i, v)| match v {
                    ParamValue::Float(x) => (x - 0.2 - 0.1 * i as f64).powi(2) + 0.1 * (9.0 * x).sin(),
                    _ => 0.0,
                })
                .sum();
            Past { parameters, outcome: Outcome::Loss(loss) }
        })
        .collect()
}

fn suggestion_latency(c: &mut Criterion) {
    let space = space();
    let mut group = c.benchmark_group("suggest");
    group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    for n in SIZES {
        let full = history(&space, n);
        let (before, now) = (&full[..n - 1], &full[..n]);
        group.bench_with_input(BenchmarkId::new("random", n), &n, |b, _| {
            let mut search = Random::new(space.clone(), 1);
            b.iter(|| black_box(search.suggest(now, 1).expect("random suggests")));
        });
        group.bench_with_input(BenchmarkId::new("grid", n), &n, |b, _| {
            let mut search = Grid::new(space.clone());
            b.iter(|| black_box(search.suggest(now, 1).expect("grid suggests")));
        });
        let mut running = Bayesian::new(space.clone(), 1, &BTreeMap::new()).expect("default settings");
        running.suggest(before, 1).expect("bayesian suggests");
        group.bench_with_input(BenchmarkId::new("bayesian", n), &n, |b, _| {
            b.iter_batched(
                || running.clone(),
                |mut search| black_box(search.suggest(now, 1).expect("bayesian suggests")),
                BatchSize::SmallInput,
            );
        });
        // As the API runs it: the instance also anticipated the result while the trial ran.
        let mut ahead = running.clone();
        let mut pending = now.to_vec();
        if let Some(last) = pending.last_mut() {
            last.outcome = Outcome::Pending;
        }
        ahead.anticipate(&pending);
        group.bench_with_input(BenchmarkId::new("bayesian-anticipated", n), &n, |b, _| {
            b.iter_batched(
                || ahead.clone(),
                |mut search| black_box(search.suggest(now, 1).expect("bayesian suggests")),
                BatchSize::SmallInput,
            );
        });
        group.bench_with_input(BenchmarkId::new("bayesian-fresh", n), &n, |b, _| {
            b.iter_batched(
                || Bayesian::new(space.clone(), 1, &BTreeMap::new()).expect("default settings"),
                |mut search| black_box(search.suggest(now, 1).expect("bayesian suggests")),
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, suggestion_latency);
criterion_main!(benches);
