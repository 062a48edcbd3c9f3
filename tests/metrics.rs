//! `/metrics` of a real `tuna serve` after a small experiment: the families exist with their
//! types, counters are named `_total`, the values moved with what happened, and the Grafana
//! dashboard in `deploy/` asks only for metrics that the server exposes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed step is a failed test

mod support;

use std::collections::BTreeMap;

use support::server::Server;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Family name → type, from the `# TYPE` lines.
fn families(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let (name, kind) = l.split_once(' ').unwrap();
            (name.to_string(), kind.to_string())
        })
        .collect()
}

fn value(text: &str, start: &str) -> f64 {
    Server::metric(text, start)
}

#[test]
fn metrics_after_an_experiment_count_its_trials_by_outcome_and_name_counters_total() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), dir.path());
    let spec = dir.path().join("m.yaml");
    // Trials with x above 500 fail, the others succeed; 8 trials, failures allowed to all of them.
    std::fs::write(
        &spec,
        "apiVersion: tuna.dev/v1alpha1\nkind: Experiment\nmetadata: {name: observed}\nspec:\n  \
         objective: {metric: score, goal: maximize}\n  algorithm: {name: random, seed: 3}\n  \
         parameters: [{name: x, type: int, min: 1, max: 1000}]\n  maxTrials: 8\n  parallelTrials: 2\n  \
         maxFailedTrials: 8\n  trial:\n    command: [sh, -c, \"test ${x} -gt 500 && exit 3; echo score=${x}\"]\n",
    )
    .unwrap();
    let out = server.cli(&["submit", spec.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let done = server.wait_finished("observed");
    let succeeded = done["status"]["trials"]["succeeded"].as_u64().unwrap() as f64;
    let failed = done["status"]["trials"]["failed"].as_u64().unwrap() as f64;
    assert_eq!(succeeded + failed, 8.0, "{done}");
    assert!(succeeded > 0.0 && failed > 0.0, "both outcomes, so both reasons are counted: {done}");

    let text = server.metrics();
    let types = families(&text);
    for (name, kind) in [
        ("tuna_experiments", "gauge"),
        ("tuna_experiment_trials_running", "gauge"),
        ("tuna_experiment_best_objective", "gauge"),
        ("tuna_api_request_duration_seconds", "histogram"),
        ("tuna_controller_reconciles", "counter"),
        ("tuna_controller_reconcile_duration_seconds", "histogram"),
        ("tuna_controller_trials_started", "counter"),
        ("tuna_controller_trials_ended", "counter"),
        ("tuna_controller_trial_duration_seconds", "histogram"),
        ("tuna_controller_suggestion_duration_seconds", "histogram"),
    ] {
        assert_eq!(types.get(name).map(String::as_str), Some(kind), "{name} in\n{text}");
    }
    for (name, _) in types.iter().filter(|(_, k)| *k == "counter") {
        let samples: Vec<&str> = text.lines().filter(|l| l.starts_with(name.as_str())).collect();
        assert!(
            samples.iter().all(|l| l.starts_with(&format!("{name}_total"))),
            "counter samples end _total: {samples:?}"
        );
    }

    let ended = |reason: &str| {
        value(&text, &format!("tuna_controller_trials_ended_total{{reason=\"{reason}\",executor=\"local\"}}"))
    };
    assert_eq!((ended("succeeded"), ended("failed")), (succeeded, failed), "{text}");
    assert_eq!(value(&text, "tuna_controller_trials_started_total{executor=\"local\"}"), 8.0, "{text}");
    let durations = "tuna_controller_trial_duration_seconds_count{reason=\"succeeded\"}";
    assert_eq!(value(&text, durations), succeeded, "{text}");
    let suggestions = "tuna_controller_suggestion_duration_seconds_count{algorithm=\"random\",executor=\"local\"}";
    assert!(value(&text, suggestions) >= 1.0, "{text}");
    assert_eq!(value(&text, "tuna_experiments{phase=\"Succeeded\"}"), 1.0, "{text}");
    let series = "{experiment=\"observed\",namespace=\"\"}";
    assert_eq!(value(&text, &format!("tuna_experiment_trials_running{series}")), 0.0, "{text}");
    let best = done["status"]["bestTrial"]["objective"].as_f64().unwrap();
    assert_eq!(value(&text, &format!("tuna_experiment_best_objective{series}")), best, "{text}");
    let route =
        "tuna_api_request_duration_seconds_count{route=\"/api/v1/experiments/{name}\",method=\"GET\",status=\"2xx\"}";
    assert!(value(&text, route) >= 1.0, "requests are labelled by route template: {text}");

    // The dashboard asks only for what is exposed (a renamed metric fails here, not in Grafana).
    dashboard_uses_only(&types);
}

/// Every `tuna_…` name in the dashboard's queries is an exposed family (or one of its samples).
fn dashboard_uses_only(types: &BTreeMap<String, String>) {
    let path = format!("{ROOT}/deploy/grafana/tuna-dashboard.json");
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let names = regex::Regex::new(r"tuna_[a-z_]+").unwrap();
    let mut asked = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for name in names.find_iter(expr).map(|m| m.as_str()) {
                let family = ["_total", "_bucket", "_count", "_sum"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|f| types.contains_key(*f)))
                    .unwrap_or(name);
                let kind = types.get(family).unwrap_or_else(|| panic!("the dashboard asks for {name}: not exposed"));
                let suffix = &name[family.len()..];
                let fits = match kind.as_str() {
                    "counter" => suffix == "_total",
                    "histogram" => ["_bucket", "_count", "_sum"].contains(&suffix),
                    _ => suffix.is_empty(),
                };
                assert!(fits, "the dashboard asks for {name}, but {family} is a {kind}");
                asked += 1;
            }
        }
    }
    assert!(asked >= 8, "the dashboard's queries were read: {asked}");
}
