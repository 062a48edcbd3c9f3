//! Behaviour of the whole search: types and bounds, determinism, batches, failures, quality.

use std::collections::BTreeMap;

use super::*;
use crate::space::ParamValue;
use crate::spec::{ParameterSpec, ParameterType, Scalar, Scale};

fn param(name: &str, kind: ParameterType, min: f64, max: f64) -> ParameterSpec {
    ParameterSpec::range(name, kind, min, max)
}

fn square(dims: usize) -> Space {
    Space::new(&(0..dims).map(|i| param(&format!("x{i}"), ParameterType::Double, 0.0, 1.0)).collect::<Vec<_>>())
}

fn bayesian(space: &Space, seed: u64) -> Bayesian {
    Bayesian::new(space.clone(), seed, &BTreeMap::new()).unwrap()
}

fn float(a: &Assignment, name: &str) -> f64 {
    match a[name] {
        ParamValue::Float(v) => v,
        ParamValue::Int(v) => v as f64,
        ParamValue::Text(_) => panic!("{name} is not a number"),
    }
}

/// Runs `n` sequential trials of `search` on `f` (`None` = the trial failed).
fn run(search: &mut dyn Search, n: usize, f: impl Fn(&Assignment) -> Option<f64>) -> Vec<Past> {
    let mut history = Vec::new();
    for _ in 0..n {
        let Some(parameters) = search.suggest(&history, 1).unwrap().pop() else { break };
        let outcome = f(&parameters).map_or(Outcome::Failed, Outcome::Loss);
        history.push(Past { parameters, outcome });
    }
    history
}

fn branin(a: &Assignment) -> Option<f64> {
    let (x1, x2) = (float(a, "x0"), float(a, "x1"));
    let (b, c, t) =
        (5.1 / (4.0 * std::f64::consts::PI.powi(2)), 5.0 / std::f64::consts::PI, 1.0 / (8.0 * std::f64::consts::PI));
    Some((x2 - b * x1 * x1 + c * x1 - 6.0).powi(2) + 10.0 * (1.0 - t) * x1.cos() + 10.0)
}

fn best(history: &[Past]) -> f64 {
    history
        .iter()
        .filter_map(|p| if let Outcome::Loss(v) = p.outcome { Some(v) } else { None })
        .fold(f64::INFINITY, f64::min)
}

#[test]
fn suggestions_stay_in_bounds_and_respect_types() {
    let mut lr = param("lr", ParameterType::Double, 1e-5, 1.0);
    lr.scale = Scale::Log;
    let mut momentum = param("momentum", ParameterType::Double, 0.0, 0.9);
    momentum.step = Some(0.1);
    let mut units = param("units", ParameterType::Int, 16.0, 512.0);
    units.scale = Scale::Log;
    let mut batch = param("batch", ParameterType::Discrete, 0.0, 0.0);
    batch.values = vec![Scalar::Number(16.0), Scalar::Number(32.0), Scalar::Number(64.0)];
    let mut opt = param("opt", ParameterType::Categorical, 0.0, 0.0);
    opt.values = vec![Scalar::Text("sgd".into()), Scalar::Text("adam".into())];
    let space = Space::new(&[lr, momentum, param("layers", ParameterType::Int, 1.0, 4.0), units, batch, opt]);
    let f = |a: &Assignment| {
        let penalty = if a["opt"] == ParamValue::Text("adam".into()) { 0.0 } else { 1.0 };
        Some((float(a, "lr").log10() + 3.0).powi(2) + (float(a, "layers") - 3.0).abs() + penalty + float(a, "momentum"))
    };
    // Fewer candidates and local searches than the defaults keep the debug-build test quick.
    let cheap = [("candidates".to_string(), serde_json::json!(256)), ("restarts".to_string(), serde_json::json!(4))];
    let mut search = Bayesian::new(space.clone(), 4, &cheap.into_iter().collect()).unwrap();
    let history = run(&mut search, 25, f);
    assert_eq!(history.len(), 25);
    for p in &history {
        let a = &p.parameters;
        assert!(matches!(a["lr"], ParamValue::Float(v) if (1e-5..=1.0).contains(&v)), "{a:?}");
        let m = float(a, "momentum");
        assert!((0.0..=0.9).contains(&m) && ((m * 10.0).round() - m * 10.0).abs() < 1e-9, "{a:?}");
        assert!(matches!(a["layers"], ParamValue::Int(1..=4)), "{a:?}");
        assert!(matches!(a["units"], ParamValue::Int(16..=512)), "{a:?}");
        assert!(matches!(a["batch"], ParamValue::Int(16 | 32 | 64)), "{a:?}");
        assert!(matches!(&a["opt"], ParamValue::Text(v) if v == "sgd" || v == "adam"), "{a:?}");
    }
    // The model found the better optimizer and the log-scale optimum's decade.
    let best_trial =
        history.iter().min_by(|a, b| f(&a.parameters).unwrap().total_cmp(&f(&b.parameters).unwrap())).unwrap();
    assert_eq!(best_trial.parameters["opt"], ParamValue::Text("adam".into()));
    assert!((float(&best_trial.parameters, "lr").log10() + 3.0).abs() < 1.0, "{best_trial:?}");
}

#[test]
fn the_same_seed_gives_the_same_suggestions_and_another_seed_does_not() {
    let space = square(2);
    let a = run(&mut bayesian(&space, 7), 16, branin_unit);
    let b = run(&mut bayesian(&space, 7), 16, branin_unit);
    let c = run(&mut bayesian(&space, 8), 16, branin_unit);
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn a_fresh_instance_given_a_long_history_suggests_what_the_running_one_does() {
    // Past COLD_LIMIT trials each checkpoint's fit starts from the one before, which the running
    // instance keeps and a fresh one must fit again (the chain from 32 trials): both must land on
    // the same suggestions.
    let space = square(2);
    let mut rng = StdRng::seed_from_u64(3);
    let history: Vec<Past> = (0..38)
        .map(|_| {
            let parameters = space.sample(&mut rng);
            let outcome = Outcome::Loss(branin_unit(&parameters).unwrap());
            Past { parameters, outcome }
        })
        .collect();
    // The running instance goes through every checkpoint (32 cold, 34 and 36 from it).
    let mut running = bayesian(&space, 3);
    for n in COLD_LIMIT..history.len() {
        running.suggest(&history[..n], 1).unwrap();
    }
    assert!(running.fitted.as_ref().is_some_and(|f| f.size == 36));
    let mut fresh = bayesian(&space, 3);
    assert_eq!(running.suggest(&history, 2).unwrap(), fresh.suggest(&history, 2).unwrap());
}

#[test]
fn anticipating_the_next_result_changes_no_suggestion() {
    // The fit the next suggestion needs (at the checkpoint of the trials before the latest) is
    // made ahead, with the latest trial still pending; the suggestion after its result is the one
    // a fresh instance makes.
    let space = square(3);
    let mut running = bayesian(&space, 5);
    let f = |a: &Assignment| Some((0..3).map(|i| (float(a, &format!("x{i}")) - 0.3).powi(2)).sum());
    let mut history = run(&mut running, COLD_LIMIT + 3, f);
    let last = history.len() - 1;
    let outcome = std::mem::replace(&mut history[last].outcome, Outcome::Pending);
    running.anticipate(&history);
    let ahead = running.fitted.clone().expect("a fit made ahead");
    assert_eq!(ahead.size, checkpoint(last));
    assert!(running.ahead.is_some(), "the candidates were scored ahead");
    history[last].outcome = outcome;
    // The suggestion uses what was made ahead rather than computing it again: tampered copies
    // (another fit; candidates with a huge variance) suggest something else.
    let mut refitted = running.clone();
    refitted.fitted = Some(Fitted { hyper: kernel::Hyper::initial(3), ..ahead });
    let mut inflated = running.clone();
    inflated.ahead.as_mut().unwrap().candidates.variances.fill(1e6);
    let suggested = running.suggest(&history, 1).unwrap();
    assert_ne!(refitted.suggest(&history, 1).unwrap(), suggested);
    assert_ne!(inflated.suggest(&history, 1).unwrap(), suggested);
    assert_eq!(suggested, bayesian(&space, 5).suggest(&history, 1).unwrap());
}

/// Branin on the unit square.
fn branin_unit(a: &Assignment) -> Option<f64> {
    let mut scaled = a.clone();
    scaled.insert("x0".into(), ParamValue::Float(-5.0 + 15.0 * float(a, "x0")));
    scaled.insert("x1".into(), ParamValue::Float(15.0 * float(a, "x1")));
    branin(&scaled)
}

#[test]
fn fantasies_spread_a_parallel_batch() {
    let space = square(2);
    let mut search = bayesian(&space, 11);
    let history = run(&mut search, 12, branin_unit);
    let mut with_pending = history.clone();
    with_pending.extend(
        search
            .suggest(&history, 2)
            .unwrap()
            .into_iter()
            .map(|parameters| Past { parameters, outcome: Outcome::Pending }),
    );
    let batch = search.suggest(&with_pending, 8).unwrap();
    assert_eq!(batch.len(), 8);
    let points: Vec<Vec<f64>> =
        with_pending.iter().map(|p| &p.parameters).chain(&batch).map(|a| space.to_unit(a).unwrap()).collect();
    // The batch and the pending points are spread out (real observations may be refined nearby).
    let spread = &points[history.len()..];
    let mut closest = f64::INFINITY;
    for (i, p) in spread.iter().enumerate() {
        for q in &spread[..i] {
            closest = closest.min(p.iter().zip(q).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt());
        }
    }
    eprintln!("closest {closest} batch {spread:?}");
    assert!(closest > 0.01, "two points of the batch are {closest} apart");
}

#[test]
fn failed_trials_do_not_attract_the_search() {
    // The objective falls towards x0 = 0, but every trial with x0 < 0.3 fails.
    let space = square(2);
    let f = |a: &Assignment| {
        let x = float(a, "x0");
        (x >= 0.3).then(|| x + 0.2 * (float(a, "x1") - 0.5).powi(2))
    };
    let history = run(&mut bayesian(&space, 5), 40, f);
    let failures = history[10..].iter().filter(|p| p.outcome == Outcome::Failed).count();
    // Random search would fail 9 of these 30; a search drawn into the hole, most of them.
    assert!(failures <= 6, "{failures} of 30 model-driven trials failed");
    assert!(best(&history) < 0.32, "best {}", best(&history));
}

#[test]
fn bayesian_search_beats_random_search_on_branin() {
    let space =
        Space::new(&[param("x0", ParameterType::Double, -5.0, 10.0), param("x1", ParameterType::Double, 0.0, 15.0)]);
    let (mut bayes, mut random) = (0.0, 0.0);
    for seed in 0..4 {
        bayes += best(&run(&mut bayesian(&space, seed), 30, branin)) / 4.0;
        random += best(&run(&mut Random::new(space.clone(), seed), 30, branin)) / 4.0;
    }
    // The optimum is 0.397887.
    assert!(bayes < 0.41 && bayes < random, "bayesian {bayes} vs random {random}");
}

#[test]
fn a_finite_space_is_used_up_without_repeats_then_runs_dry() {
    let space = Space::new(&[param("n", ParameterType::Int, 1.0, 6.0), {
        let mut c = param("c", ParameterType::Categorical, 0.0, 0.0);
        c.values = vec![Scalar::Text("a".into()), Scalar::Text("b".into())];
        c
    }]);
    let mut search = bayesian(&space, 2);
    let history = run(&mut search, 14, |a| Some(float(a, "n")));
    assert_eq!(history.len(), 12);
    assert_eq!(seen_keys(&history).len(), 12);
    assert!(search.suggest(&history, 3).unwrap().is_empty());
}

#[test]
fn foreign_values_in_the_history_are_skipped() {
    let mut c = param("c", ParameterType::Categorical, 0.0, 0.0);
    c.values = vec![Scalar::Text("a".into()), Scalar::Text("b".into())];
    let space = Space::new(&[param("x", ParameterType::Double, 0.0, 1.0), c]);
    let mut history = run(&mut bayesian(&space, 1), 12, |a| Some(float(a, "x")));
    let mut foreign = history[0].parameters.clone();
    foreign.insert("c".into(), ParamValue::Text("gone".into()));
    history.push(Past { parameters: foreign, outcome: Outcome::Loss(-5.0) });
    history.push(Past { parameters: Assignment::new(), outcome: Outcome::Loss(f64::NAN) });
    let batch = bayesian(&space, 1).suggest(&history, 3).unwrap();
    assert_eq!(batch.len(), 3);
    assert!(batch.iter().all(|a| space.to_unit(a).is_some()));
}

#[test]
fn past_the_model_limit_the_model_is_local_and_suggestions_stay_valid() {
    let space = square(3);
    let mut rng = StdRng::seed_from_u64(9);
    let history: Vec<Past> = (0..MODEL_LIMIT + 60)
        .map(|_| {
            let parameters = space.sample(&mut rng);
            let v: f64 = (0..3).map(|i| (float(&parameters, &format!("x{i}")) - 0.3).powi(2)).sum();
            Past { parameters, outcome: Outcome::Loss(v) }
        })
        .collect();
    let batch = bayesian(&space, 4).suggest(&history, 2).unwrap();
    assert_eq!(batch.len(), 2);
    for a in &batch {
        let d: f64 = (0..3).map(|i| (float(a, &format!("x{i}")) - 0.3).powi(2)).sum();
        assert!(d < 0.1, "{a:?} is far from the optimum the data point to");
    }
}

#[test]
fn an_empty_space_gives_its_one_point_then_runs_dry() {
    let mut search = bayesian(&Space::new(&[]), 1);
    let history = run(&mut search, 14, |_| Some(1.0));
    assert_eq!(history.len(), 1);
}
