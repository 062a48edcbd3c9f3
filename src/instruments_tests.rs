use super::*;

fn line<'a>(text: &'a str, start: &str) -> Option<&'a str> {
    text.lines().find(|l| l.starts_with(start))
}

fn value(text: &str, start: &str) -> f64 {
    let l = line(text, start).unwrap_or_else(|| panic!("no line starting {start} in\n{text}"));
    l.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no value in {l}"))
}

#[test]
fn counters_are_named_total_and_controller_families_have_their_prefix() {
    let m = Instruments::new();
    m.reconciled("ok", 0.01);
    m.trial_started("local");
    m.trial_ended("succeeded", "local", Some(3.0));
    m.suggested("random", "local", 0.001);
    let text = m.encode().unwrap();
    assert!(text.contains("# TYPE tuna_controller_reconciles counter"), "{text}");
    assert_eq!(value(&text, "tuna_controller_reconciles_total{result=\"ok\"}"), 1.0);
    assert_eq!(value(&text, "tuna_controller_trials_started_total{executor=\"local\"}"), 1.0);
    assert_eq!(value(&text, "tuna_controller_trials_ended_total{reason=\"succeeded\",executor=\"local\"}"), 1.0);
    assert!(text.contains("# TYPE tuna_controller_trial_duration_seconds histogram"), "{text}");
    assert!(
        line(&text, "tuna_controller_suggestion_duration_seconds_count{algorithm=\"random\",executor=\"local\"}")
            .is_some()
    );
}

#[test]
fn api_requests_are_labelled_by_status_class() {
    let m = Instruments::new();
    m.request("/api/v1/experiments/{name}", "GET", 404, 0.002);
    let text = m.encode().unwrap();
    let start =
        "tuna_api_request_duration_seconds_count{route=\"/api/v1/experiments/{name}\",method=\"GET\",status=\"4xx\"}";
    assert_eq!(value(&text, start), 1.0, "{text}");
}

#[test]
fn experiment_writes_move_the_phase_counts_instead_of_adding_to_them() {
    let m = Instruments::new();
    m.experiment_written("ns/a", "Pending", 0, None);
    m.experiment_written("ns/a", "Running", 2, Some(0.5));
    m.experiment_written("b", "Running", 1, None);
    let text = m.encode().unwrap();
    assert_eq!(value(&text, "tuna_experiments{phase=\"Pending\"}"), 0.0);
    assert_eq!(value(&text, "tuna_experiments{phase=\"Running\"}"), 2.0);
    assert_eq!(value(&text, "tuna_experiment_trials_running{experiment=\"ns/a\",namespace=\"ns\"}"), 2.0);
    assert_eq!(value(&text, "tuna_experiment_best_objective{experiment=\"ns/a\",namespace=\"ns\"}"), 0.5);
    assert!(line(&text, "tuna_experiment_best_objective{experiment=\"b\"").is_none(), "no best yet: no series");
    m.experiment_deleted("ns/a");
    let text = m.encode().unwrap();
    assert_eq!(value(&text, "tuna_experiments{phase=\"Running\"}"), 1.0);
    assert!(!text.contains("experiment=\"ns/a\""), "a deleted experiment's series are gone:\n{text}");
}

#[test]
fn experiments_beyond_the_cap_are_summed_under_other() {
    let m = Instruments::new();
    for i in 0..MAX_LABELLED_EXPERIMENTS + 3 {
        m.experiment_written(&format!("e{i}"), "Running", 1, Some(i as f64));
    }
    let text = m.encode().unwrap();
    let labelled = text.lines().filter(|l| l.starts_with("tuna_experiment_trials_running{")).count();
    assert_eq!(labelled, MAX_LABELLED_EXPERIMENTS + 1, "the cap plus _other");
    assert_eq!(value(&text, "tuna_experiment_trials_running{experiment=\"_other\""), 3.0);
    let best = text.lines().filter(|l| l.starts_with("tuna_experiment_best_objective{")).count();
    assert_eq!(best, MAX_LABELLED_EXPERIMENTS, "an aggregated best objective would mean nothing");
    m.experiment_written(&format!("e{}", MAX_LABELLED_EXPERIMENTS + 1), "Succeeded", 0, Some(1.0));
    let text = m.encode().unwrap();
    assert_eq!(value(&text, "tuna_experiment_trials_running{experiment=\"_other\""), 2.0);
}
