#![allow(clippy::expect_used)] // a benchmark that cannot set up has nothing to measure
//! The shared harness's public problems (`../shared/bench/bench_functions.py`), run in process:
//! median final log10 regret per problem and the median over runs of each run's median suggestion
//! time over its last 10 trials, and of its `anticipate` time (the work a server does while the
//! client evaluates). A quick loop for tuning `search::bayes`; the harness, through HTTP and side
//! by side with the peers, is the judge.
//!
//! `cargo run --release --example public_suite -- [seeds] [budget] [algorithm] [problem]`

use std::f64::consts::{E, PI};
use std::time::Instant;

use tuna::search::{Outcome, Past, Search};
use tuna::space::{Assignment, ParamValue};

struct Problem {
    name: &'static str,
    params: serde_json::Value,
    f: fn(&Assignment) -> f64,
    f_opt: f64,
}

fn float(a: &Assignment, k: &str) -> f64 {
    match &a[k] {
        ParamValue::Float(v) => *v,
        ParamValue::Int(v) => *v as f64,
        ParamValue::Text(t) => panic!("{k} is text {t}"),
    }
}

fn xs(a: &Assignment, d: usize) -> Vec<f64> {
    (0..d).map(|i| float(a, &format!("x{i}"))).collect()
}

fn boxed(d: usize, low: f64, high: f64) -> serde_json::Value {
    (0..d).map(|i| serde_json::json!({"name": format!("x{i}"), "type": "double", "min": low, "max": high})).collect()
}

fn branin(a: &Assignment) -> f64 {
    let x = xs(a, 2);
    let (b, c, t) = (5.1 / (4.0 * PI * PI), 5.0 / PI, 1.0 / (8.0 * PI));
    (x[1] - b * x[0] * x[0] + c * x[0] - 6.0).powi(2) + 10.0 * (1.0 - t) * x[0].cos() + 10.0
}

fn hartmann6(a: &Assignment) -> f64 {
    const ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];
    const A: [[f64; 6]; 4] = [
        [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
        [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
        [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
        [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
    ];
    const P: [[f64; 6]; 4] = [
        [1312.0, 1696.0, 5569.0, 124.0, 8283.0, 5886.0],
        [2329.0, 4135.0, 8307.0, 3736.0, 1004.0, 9991.0],
        [2348.0, 1451.0, 3522.0, 2883.0, 3047.0, 6650.0],
        [4047.0, 8828.0, 8732.0, 5743.0, 1091.0, 381.0],
    ];
    let x = xs(a, 6);
    -(0..4)
        .map(|i| ALPHA[i] * (-(0..6).map(|j| A[i][j] * (x[j] - 1e-4 * P[i][j]).powi(2)).sum::<f64>()).exp())
        .sum::<f64>()
}

fn ackley5(a: &Assignment) -> f64 {
    let x = xs(a, 5);
    let d = x.len() as f64;
    let s1 = (x.iter().map(|v| v * v).sum::<f64>() / d).sqrt();
    let s2 = x.iter().map(|v| (2.0 * PI * v).cos()).sum::<f64>() / d;
    -20.0 * (-0.2 * s1).exp() - s2.exp() + 20.0 + E
}

fn rosenbrock4(a: &Assignment) -> f64 {
    let x = xs(a, 4);
    x.windows(2).map(|w| 100.0 * (w[1] - w[0] * w[0]).powi(2) + (1.0 - w[0]).powi(2)).sum()
}

fn levy10(a: &Assignment) -> f64 {
    let w: Vec<f64> = xs(a, 10).iter().map(|x| 1.0 + (x - 1.0) / 4.0).collect();
    let last = w[w.len() - 1];
    (PI * w[0]).sin().powi(2)
        + w[..w.len() - 1]
            .iter()
            .map(|wi| (wi - 1.0).powi(2) * (1.0 + 10.0 * (PI * wi + 1.0).sin().powi(2)))
            .sum::<f64>()
        + (last - 1.0).powi(2) * (1.0 + (2.0 * PI * last).sin().powi(2))
}

fn mixed5(a: &Assignment) -> f64 {
    let opt = match &a["opt"] {
        ParamValue::Text(t) => t.clone(),
        other => other.to_string(),
    };
    let ((cx, cy), offset) = match opt.as_str() {
        "a" => ((-2.0, 1.0), 0.5),
        "b" => ((1.5, -2.0), 0.0),
        _ => ((3.0, 3.0), 1.0),
    };
    let (dx, dy) = (float(a, "x") - cx, float(a, "y") - cy);
    let u = float(a, "lr").log10() + 3.0;
    let m = float(a, "n") - 5.0;
    offset
        + dx * dx
        + dy * dy
        + 0.5 * dx * dy
        + 0.5 * (1.0 - (2.0 * PI * dx).cos())
        + 0.8 * u * u
        + 0.3 * m * m
        + 0.2 * u * m
}

fn problems() -> Vec<Problem> {
    let branin_space = serde_json::json!([
        {"name": "x0", "type": "double", "min": -5.0, "max": 10.0},
        {"name": "x1", "type": "double", "min": 0.0, "max": 15.0},
    ]);
    let mixed_space = serde_json::json!([
        {"name": "x", "type": "double", "min": -5.0, "max": 5.0},
        {"name": "y", "type": "double", "min": -5.0, "max": 5.0},
        {"name": "lr", "type": "double", "min": 1e-5, "max": 1.0, "scale": "log"},
        {"name": "n", "type": "int", "min": 1, "max": 8},
        {"name": "opt", "type": "categorical", "values": ["a", "b", "c"]},
    ]);
    vec![
        Problem { name: "branin", params: branin_space, f: branin, f_opt: 5.0 / (4.0 * PI) },
        Problem { name: "hartmann6", params: boxed(6, 0.0, 1.0), f: hartmann6, f_opt: -3.322368011415515 },
        Problem { name: "ackley5", params: boxed(5, -32.768, 32.768), f: ackley5, f_opt: 0.0 },
        Problem { name: "rosenbrock4", params: boxed(4, -5.0, 10.0), f: rosenbrock4, f_opt: 0.0 },
        Problem { name: "levy10", params: boxed(10, -10.0, 10.0), f: levy10, f_opt: 0.0 },
        Problem { name: "mixed5", params: mixed_space, f: mixed5, f_opt: 0.0 },
    ]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seeds: u64 = args.get(1).map_or(10, |s| s.parse().expect("seeds"));
    let budget: usize = args.get(2).map_or(50, |s| s.parse().expect("budget"));
    let algorithm = args.get(3).cloned().unwrap_or_else(|| "bayesian".into());
    let only = args.get(4).cloned();
    // Extra `algorithm.settings`, as JSON (`TUNA_SETTINGS='{"candidates": 512}'`).
    let settings: serde_json::Value = std::env::var("TUNA_SETTINGS")
        .map_or(serde_json::json!({}), |s| serde_json::from_str(&s).expect("TUNA_SETTINGS"));
    let (mut ranks_time, mut all_last10) = (0.0, Vec::new());
    for problem in problems().into_iter().filter(|p| only.as_deref().is_none_or(|o| o == p.name)) {
        let (mut regrets, mut last10s, mut ahead10s) = (Vec::new(), Vec::new(), Vec::new());
        let started = Instant::now();
        for seed in 0..seeds {
            let mut spec: tuna::spec::ExperimentSpec = serde_json::from_value(serde_json::json!({
                "objective": {"metric": "value", "goal": "minimize"},
                "algorithm": {"name": algorithm, "seed": seed, "settings": settings},
                "parameters": problem.params,
            }))
            .expect("spec");
            spec.max_trials = budget as u32;
            let mut search: Box<dyn Search> = tuna::search::build(&spec, 1000 + seed).expect("algorithm");
            let mut history: Vec<Past> = Vec::new();
            let (mut times, mut ahead) = (Vec::new(), Vec::new());
            let mut best = f64::INFINITY;
            for _ in 0..budget {
                let t = Instant::now();
                let parameters = search.suggest(&history, 1).expect("suggest").pop().expect("a point");
                times.push(t.elapsed().as_secs_f64());
                // As the server does while the client evaluates (untimed: off the ask's path).
                history.push(Past { parameters, outcome: Outcome::Pending });
                let t = Instant::now();
                search.anticipate(&history);
                ahead.push(t.elapsed().as_secs_f64());
                let last = history.len() - 1;
                let y = (problem.f)(&history[last].parameters);
                best = best.min(y);
                history[last].outcome = Outcome::Loss(y);
            }
            regrets.push((best - problem.f_opt).max(1e-8).log10());
            last10s.push(median(times[times.len().saturating_sub(10)..].to_vec()));
            ahead10s.push(median(ahead[ahead.len().saturating_sub(10)..].to_vec()));
        }
        let total = started.elapsed().as_secs_f64();
        ranks_time += total;
        let last10 = median(last10s.clone());
        all_last10.extend(last10s);
        println!(
            "{:>12}: median log10 regret {:+.2}  last10 suggest {:.2} ms, anticipate {:.2} ms  ({:.1} s)",
            problem.name,
            median(regrets),
            last10 * 1e3,
            median(ahead10s) * 1e3,
            total
        );
    }
    println!("all: median last10 suggest {:.2} ms, total {:.1} s", median(all_last10) * 1e3, ranks_time);
}
