use jiff::Timestamp;

use super::*;
use crate::space::{Assignment, ParamValue};
use crate::spec::{ExperimentSpec, ParameterSpec, ParameterType, Scalar};

fn trial(index: u32, phase: TrialPhase, objective: Option<f64>, params: &[(&str, ParamValue)]) -> Trial {
    let parameters: Assignment = params.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    let mut t = Trial::new("e", index, parameters, Timestamp::UNIX_EPOCH);
    t.phase = phase;
    t.objective = objective;
    t
}

/// Two parameters: a double `a` in [0, 1] and a categorical `b` of `lo`, `hi`.
fn two_parameters() -> Experiment {
    let mut spec = ExperimentSpec::test();
    spec.parameters = vec![
        ParameterSpec::range("a", ParameterType::Double, 0.0, 1.0),
        ParameterSpec::choices(
            "b",
            ParameterType::Categorical,
            vec![Scalar::Text("lo".into()), Scalar::Text("hi".into())],
        ),
    ];
    spec.named("e")
}

fn point(index: u32, a: f64, b: &str, y: f64) -> Trial {
    trial(index, TrialPhase::Succeeded, Some(y), &[("a", ParamValue::Float(a)), ("b", ParamValue::Text(b.into()))])
}

#[test]
fn history_keeps_the_best_so_far_of_succeeded_trials_only() {
    let experiment = ExperimentSpec::test().named("e"); // minimize
    let trials = [
        trial(2, TrialPhase::Succeeded, Some(0.5), &[]),
        trial(0, TrialPhase::Succeeded, Some(0.8), &[]),
        trial(1, TrialPhase::Failed, Some(0.1), &[]),
        trial(3, TrialPhase::Running, None, &[]),
        trial(4, TrialPhase::Succeeded, Some(0.7), &[]),
    ];
    let h = history(&experiment, &trials);
    let seen: Vec<(u32, Option<f64>)> = h.points.iter().map(|p| (p.index, p.best)).collect();
    assert_eq!(seen, [(0, Some(0.8)), (1, Some(0.8)), (2, Some(0.5)), (3, Some(0.5)), (4, Some(0.5))]);
    assert_eq!(h.points[1].phase, TrialPhase::Failed, "a failed trial stays in the history as failed");
    let json = serde_json::to_value(&h).unwrap();
    assert_eq!(json["points"][1]["phase"], "Failed");
    assert_eq!(json["goal"], "minimize");
}

#[test]
fn a_categorical_parameter_sits_at_its_label_s_index_and_a_log_axis_maps_in_log_space() {
    let mut experiment = two_parameters();
    experiment.spec.parameters[0] = ParameterSpec::range("a", ParameterType::Double, 1.0, 100.0);
    experiment.spec.parameters[0].scale = crate::spec::Scale::Log;
    let data = parameters(&experiment, &[point(0, 10.0, "hi", 1.0)]);
    assert_eq!(data.trials[0].values, [Some(10.0), Some(1.0)]);
    assert_eq!(data.axes[1].labels, ["lo", "hi"]);
    assert!(data.axes[0].log);
    assert!((data.axes[0].unit(10.0) - 0.5).abs() < 1e-12, "10 is halfway from 1 to 100 in log space");
    assert_eq!(data.axes[1].unit(1.0), 1.0);
}

#[test]
fn importance_is_each_parameter_s_share_of_the_variance_as_computed_by_hand() {
    // y = 3·[a ≥ 0.5] + [b = hi] over the four corners: y = 0, 1, 3, 4, mean 2, Σ(y − mean)² = 10.
    // a's bins have means 0.5 and 3.5: 2·1.5² + 2·1.5² = 9 → η² = 0.9; b's: 1.5, 2.5 → 1 → 0.1.
    let trials =
        [point(0, 0.1, "lo", 0.0), point(1, 0.2, "hi", 1.0), point(2, 0.8, "lo", 3.0), point(3, 0.9, "hi", 4.0)];
    let result = importance(&parameters(&two_parameters(), &trials));
    assert_eq!(result.trials, 4);
    let found: Vec<(&str, f64)> = result.parameters.iter().map(|p| (p.name.as_str(), p.explained)).collect();
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].0, "a", "the most important first");
    assert!((found[0].1 - 0.9).abs() < 1e-12 && (found[1].1 - 0.1).abs() < 1e-12, "{found:?}");
    assert!((result.parameters[0].importance - 0.9).abs() < 1e-12, "the shares are normalized");
}

#[test]
fn importance_finds_the_parameter_a_function_depends_on_and_ignores_failures() {
    // y = sin(6a) over a 7 × 7 grid: b never matters, whatever its label.
    let mut trials = Vec::new();
    for i in 0..7 {
        for j in 0..7 {
            let a = f64::from(i) / 6.0;
            let b = if j % 2 == 0 { "lo" } else { "hi" };
            trials.push(point(i * 7 + j, a, b, (6.0 * a).sin()));
        }
    }
    trials.push(trial(99, TrialPhase::Failed, Some(1e9), &[("a", ParamValue::Float(0.0))]));
    let result = importance(&parameters(&two_parameters(), &trials));
    assert_eq!(result.trials, 49, "only succeeded trials count");
    assert_eq!(result.parameters[0].name, "a");
    assert!(result.parameters[0].explained > 0.8, "{:?}", result.parameters);
    assert!(result.parameters[1].explained < 0.01, "{:?}", result.parameters);
}

#[test]
fn importance_without_variance_is_zero_everywhere() {
    let trials = [point(0, 0.1, "lo", 2.0), point(1, 0.9, "hi", 2.0)];
    let result = importance(&parameters(&two_parameters(), &trials));
    assert!(result.parameters.iter().all(|p| p.explained == 0.0 && p.importance == 0.0));
}

#[test]
fn a_curve_is_the_latest_attempt_s_reports_of_the_metric_by_step() {
    let t = trial(0, TrialPhase::Running, None, &[]);
    let obs = |attempt, metric: &str, value, step| Observation {
        attempt,
        metric: metric.into(),
        value,
        step,
        time: Timestamp::UNIX_EPOCH,
    };
    let observations = [
        obs(1, "loss", 9.0, Some(1)),
        obs(2, "loss", 0.9, Some(1)),
        obs(2, "acc", 0.5, Some(1)),
        obs(2, "loss", 0.7, Some(5)),
        obs(2, "loss", 0.6, None),
    ];
    let c = curve(&t, "loss", &observations);
    assert_eq!(c.points, [[1.0, 0.9], [5.0, 0.7], [6.0, 0.6]]);
}
