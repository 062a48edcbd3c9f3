use super::*;

const BASE: &str = r#"
apiVersion: tuna.dev/v1alpha1
kind: Experiment
metadata:
  name: quickstart
spec:
  objective: {metric: accuracy, goal: maximize, target: 0.97, additionalMetrics: [loss]}
  algorithm: {name: random, seed: 7}
  parameters:
    - {name: lr,       type: double, min: 1.0e-4, max: 1.0, scale: log}
    - {name: epochs,   type: int, min: 1, max: 30}
    - {name: penalty,  type: categorical, values: [l1, l2, none]}
    - {name: batch,    type: discrete, values: [16, 32, 64, 128]}
    - {name: momentum, type: double, min: 0.0, max: 0.9, step: 0.1}
  maxTrials: 30
  parallelTrials: 2
  trial:
    command: [python3, train.py, --lr, "${lr}", --epochs, "${epochs}"]
    env: {RUN: "${trial}"}
    timeout: 10m
"#;

/// The problems of BASE with `from` replaced by `to`.
fn problems(from: &str, to: &str) -> Vec<String> {
    assert!(BASE.contains(from), "{from:?} is not in the base document");
    match parse(&BASE.replacen(from, to, 1)) {
        Ok(_) => Vec::new(),
        Err(e) => e.problems().iter().map(ToString::to_string).collect(),
    }
}

fn assert_problem(from: &str, to: &str, expected: &str) {
    let found = problems(from, to);
    assert!(found.iter().any(|p| p.contains(expected)), "expected {expected:?} in {found:#?}");
}

#[test]
fn the_issue_example_is_valid_with_defaults_filled_in() {
    let exp = parse(BASE).unwrap();
    assert_eq!(exp.spec.max_failed_trials, 3);
    assert_eq!(exp.spec.objective.strategy(), Strategy::Max);
    assert_eq!(exp.spec.parameters[3].values[0], Scalar::Number(16.0));
    let json = serde_json::to_string(&exp).unwrap();
    assert_eq!(parse(&json).unwrap().spec, exp.spec, "JSON documents read the same");
}

#[test]
fn range_problems_name_the_field_and_the_fix() {
    assert_problem("min: 1, max: 30", "min: 5, max: 1", "spec.parameters[1].min: (5) must be less than max (1)");
    assert_problem(
        "min: 1.0e-4, max: 1.0, scale: log",
        "min: 0, max: 1.0, scale: log",
        "spec.parameters[0].scale: log needs min > 0",
    );
    assert_problem("min: 1, max: 30", "min: 1.5, max: 30", "spec.parameters[1].min: (1.5) must be an integer");
    assert_problem("min: 1, max: 30", "max: 30", "spec.parameters[1].min: is required for a int parameter");
    assert_problem("step: 0.1}", "step: -1}", "spec.parameters[4].step: (-1) must be a positive number");
    assert_problem("step: 0.1}", "step: 5}", "spec.parameters[4].step: (5) is larger than max - min");
}

#[test]
fn value_list_problems_are_reported() {
    assert_problem(
        "values: [l1, l2, none]",
        "values: []",
        "spec.parameters[2].values: is required for a categorical parameter",
    );
    assert_problem(
        "values: [l1, l2, none]",
        "values: [l1, l1]",
        "spec.parameters[2].values[1]: repeats an earlier value",
    );
    assert_problem("values: [16, 32, 64, 128]", "values: [16, big]", "spec.parameters[3].values[1]: must be a number");
    assert_problem(
        "values: [l1, l2, none]}",
        "values: [l1], min: 0}",
        "spec.parameters[2].min: is not used by a categorical",
    );
}

#[test]
fn names_must_be_unique_identifiers_and_the_experiment_a_dns_label() {
    assert_problem("name: epochs,", "name: lr,", "spec.parameters[1].name: \"lr\" is used by an earlier parameter");
    assert_problem("name: epochs,", "name: 2x,", "spec.parameters[1].name: \"2x\" must start with a letter");
    assert_problem("name: quickstart", "name: Quick_Start", "metadata.name: \"Quick_Start\" is not a DNS-1123 label");
    assert_problem("name: quickstart", &format!("name: {}", "a".repeat(64)), "metadata.name");
}

#[test]
fn algorithm_problems_list_the_known_choices() {
    assert_problem("name: random, seed: 7", "name: bayes", "spec.algorithm.name: \"bayes\" is not one of random, grid");
    assert_problem("name: random, seed: 7", "name: bayes", "bayesian, hyperband; did you mean bayesian?");
    assert_problem(
        "name: random, seed: 7",
        "name: random, settings: {foo: 1}",
        "spec.algorithm.settings.foo: is not a setting of random",
    );
    assert!(problems("name: random, seed: 7", "name: grid").is_empty(), "doubles without a step get levels");
    assert_problem(
        "name: random, seed: 7",
        "name: grid, settings: {levels: 1}",
        "spec.algorithm.settings.levels: (1) must be a whole number from 2 to 10000",
    );
}

#[test]
fn placeholders_must_name_a_parameter() {
    assert_problem(
        "\"${epochs}\"]",
        "\"${typo}\"]",
        "spec.trial.command[5]: ${typo} names no parameter; known names: lr, epochs",
    );
    assert_problem("RUN: \"${trial}\"", "RUN: \"${trial\"", "spec.trial.env.RUN: has an unclosed '${'");
    assert!(problems("RUN: \"${trial}\"", "RUN: \"${outputDir}/${experiment}\"").is_empty());
}

#[test]
fn trial_and_metrics_problems_are_reported() {
    assert_problem("timeout: 10m", "timeout: soon", "spec.trial.timeout: \"soon\" is not a duration");
    assert_problem(
        "command: [python3, train.py, --lr, \"${lr}\", --epochs, \"${epochs}\"]",
        "command: []",
        "spec.trial.command: is required",
    );
    assert_problem(
        "timeout: 10m",
        "timeout: 10m\n  metrics: {collector: file}",
        "spec.metrics.file: is required for collector file",
    );
    assert_problem(
        "timeout: 10m",
        "timeout: 10m\n  metrics: {collector: file, file: ../x}",
        "must be a relative path inside",
    );
    assert_problem(
        "timeout: 10m",
        "timeout: 10m\n  metrics: {format: '(\\w+)'}",
        "spec.metrics.format: needs two capture groups",
    );
    assert_problem("maxTrials: 30", "maxTrials: 0", "spec.maxTrials: must be at least 1");
}

#[test]
fn a_metrics_file_is_refused_on_kubernetes_naming_push_and_stdout() {
    assert_problem(
        "timeout: 10m",
        "timeout: 10m\n    image: busybox\n  executor: kubernetes\n  metrics: {collector: file, file: m.txt}",
        "spec.metrics.collector: file cannot work with executor kubernetes (the file stays inside the trial's pod); use push",
    );
}

#[test]
fn unknown_fields_are_all_reported_with_their_paths() {
    let found = problems("maxTrials: 30", "maxTrials: 30\n  maxTrial: 3\n  trial2: {}");
    assert!(found.iter().any(|p| p.starts_with("spec.maxTrial: is not a known field")), "{found:#?}");
    assert!(found.iter().any(|p| p.starts_with("spec.trial2:")), "{found:#?}");
    assert_problem("scale: log}", "scale: log, sclae: log}", "spec.parameters[0].sclae: is not a known field");
}

#[test]
fn every_problem_is_reported_at_once() {
    let doc = BASE
        .replace("min: 1, max: 30", "min: 5, max: 1")
        .replace("name: random, seed: 7", "name: bayes")
        .replace("\"${epochs}\"]", "\"${typo}\"]");
    let SpecError::Invalid(found) = parse(&doc).unwrap_err() else { panic!("expected problems") };
    assert_eq!(found.len(), 3, "{found:#?}");
}

#[test]
fn wrong_types_and_bad_enums_name_the_field() {
    assert_problem(
        "maxTrials: 30",
        "maxTrials: lots",
        "spec.maxTrials: must be a whole number from 1 to 1000000, not the text \"lots\"",
    );
    assert_problem(
        "goal: maximize",
        "goal: maximise",
        "spec.objective.goal: \"maximise\" is not one of maximize, minimize; did you mean maximize?",
    );
    assert_problem(
        "apiVersion: tuna.dev/v1alpha1",
        "apiVersion: v1",
        "apiVersion: is \"v1\"; it must be tuna.dev/v1alpha1",
    );
}

#[test]
fn syntax_errors_give_line_and_column() {
    let err = parse("apiVersion: tuna.dev/v1alpha1\nkind: [unclosed\n").unwrap_err();
    let SpecError::Syntax { line, format, .. } = err else { panic!("expected a syntax error, got {err}") };
    assert_eq!(format, "YAML");
    assert!(line >= 2, "line {line}");
    let err = parse("{\"apiVersion\": \"tuna.dev/v1alpha1\",\n \"kind\": }").unwrap_err();
    assert!(matches!(err, SpecError::Syntax { format: "JSON", line: 2, .. }), "{err}");
}

#[test]
fn durations_parse_in_the_usual_units() {
    use std::time::Duration;
    assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
    assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
    assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
    assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
    assert_eq!(parse_duration("0s"), None);
    assert_eq!(parse_duration("5 minutes"), Some(Duration::from_secs(300)), "jiff's friendly format");
    assert_eq!(parse_duration("5 parsecs"), None);
}

#[test]
fn type_enum_unknown_field_and_meaning_problems_come_out_in_one_report() {
    let doc = BASE
        .replace("maxTrials: 30", "maxTrials: lots\n  trials: {}")
        .replace("goal: maximize", "goal: maximise")
        .replace("type: categorical", "type: categorial")
        .replace("min: 1, max: 30", "min: 5, max: 1")
        .replace("timeout: 10m", "timeout: \"1e30\"");
    let SpecError::Invalid(found) = parse(&doc).unwrap_err() else { panic!("expected problems") };
    let found: Vec<String> = found.iter().map(ToString::to_string).collect();
    for expected in [
        "spec.maxTrials: must be a whole number",
        "spec.trials: is not a known field; did you mean trial?",
        "spec.objective.goal: \"maximise\" is not one of maximize, minimize; did you mean maximize?",
        "spec.parameters[2].type: \"categorial\" is not one of double, int, categorical, discrete; did you mean categorical?",
        "spec.parameters[1].min: (5) must be less than max (1)",
        "spec.trial.timeout: \"1e30\" is longer than 30 days",
    ] {
        assert!(found.iter().any(|p| p.starts_with(expected)), "expected {expected:?} in {found:#?}");
    }
    assert_eq!(found.len(), 6, "nothing said twice, nothing from a stand-in value: {found:#?}");
    assert!(found.iter().all(|p| !p.contains("expected") && !p.contains("u32")), "{found:#?}");
}

#[test]
fn a_parameter_named_n_gets_the_yaml_boolean_hint() {
    let found = problems("name: epochs,", "name: n,");
    assert!(
        found.iter().any(|p| p.starts_with("spec.parameters[1].name: must be text, not the boolean false")
            && p.contains("put the word in quotes")),
        "{found:#?}"
    );
}

#[test]
fn bounds_and_shapes_of_every_kind_are_reported_without_rust_words() {
    assert_problem("parallelTrials: 2", "parallelTrials: 100000", "spec.parallelTrials: must be at most 10000");
    assert_problem("parallelTrials: 2", "parallelTrials: -1", "spec.parallelTrials: must be at least 1");
    assert_problem("parallelTrials: 2", "parallelTrials: 2.5", "spec.parallelTrials: must be a whole number");
    assert!(problems("parallelTrials: 2", "parallelTrials: 2.0").is_empty(), "2.0 is a whole number");
    assert_problem("parameters:\n", "parameters: 3\n  p:\n", "spec.parameters: must be a list, not the number 3");
    assert_problem("env: {RUN: \"${trial}\"}", "env: {RUN: 5}", "spec.trial.env.RUN: must be text, not the number 5");
    assert!(problems("seed: 7", "seed: 18446744073709551615").is_empty(), "every u64 is a seed");
    assert_problem("metadata:\n  name: quickstart", "metadata: [1]", "metadata: has the wrong type");
    assert_problem("apiVersion", "spek: {}\napiVersion", "spek: is not a known field; did you mean spec?");
    assert_problem("metric: accuracy, ", "", "spec.objective.metric: is required; give text");
    let found = problems("metric: accuracy, ", "");
    assert!(!found.iter().any(|p| p.contains("is empty")), "no second problem from the stand-in: {found:#?}");
}

#[test]
fn a_parameter_with_too_many_values_is_refused_at_its_field_and_checked_in_linear_time() {
    let many: Vec<String> = (0..20_000).map(|i| i.to_string()).collect();
    let doc = format!(
        "apiVersion: tuna.dev/v1alpha1\nkind: Experiment\nmetadata: {{name: big}}\nspec:\n  objective: {{metric: m, goal: minimize}}\n  parameters: [{{name: d, type: discrete, values: [{}]}}]\n  trial: {{command: [\"true\"]}}\n",
        many.join(", ")
    );
    let err = crate::spec::parse(&doc).unwrap_err().to_string();
    assert!(err.contains("spec.parameters[0].values: lists 20000 values; at most 10000"), "{err}");
    let ok: Vec<String> = (0..9_999).map(|i| i.to_string()).collect();
    let doc = doc.replace(&many.join(", "), &format!("{}, 3", ok.join(", ")));
    let err = crate::spec::parse(&doc).unwrap_err().to_string();
    assert!(err.contains("spec.parameters[0].values[9999]: repeats an earlier value"), "{err}");
}

#[test]
fn a_start_timeout_that_is_no_duration_is_refused_at_its_field() {
    assert_problem(
        "timeout: 10m",
        "timeout: 10m\n    startTimeout: whenever",
        "spec.trial.startTimeout: \"whenever\" is not a duration",
    );
    assert!(problems("timeout: 10m", "timeout: 10m\n    startTimeout: 5m").is_empty());
}

#[test]
fn early_stopping_reads_each_rule_with_its_defaults() {
    let read = |to: &str| parse(&BASE.replacen("  maxTrials: 30", &format!("{to}\n  maxTrials: 30"), 1));
    assert_eq!(parse(BASE).unwrap().spec.stopping(), None, "none when absent");
    let median = read("  earlyStopping: {rule: median}").unwrap();
    assert_eq!(median.spec.stopping(), Some(StoppingSettings::Median { min_trials_required: 3, start_step: 4 }));
    let asha = read("  earlyStopping: {rule: asha, settings: {minResource: 2, maxResource: 30}}").unwrap();
    assert_eq!(
        asha.spec.stopping(),
        Some(StoppingSettings::Asha {
            min_resource: 2,
            reduction_factor: 3,
            max_resource: Some(30),
            grace_period: 2,
            brackets: 1
        })
    );
    assert_eq!(read("  earlyStopping: {rule: none}").unwrap().spec.stopping(), None);
}

#[test]
fn early_stopping_problems_are_each_named_at_their_field_in_one_report() {
    let with = |to: &str| problems("  maxTrials: 30", &format!("{to}\n  maxTrials: 30"));
    let found = with(
        "  earlyStopping: {rule: median, settings: {minTrialsRequired: 0, startStep: 2.5, startstep: 3, gracePeriod: 1}}",
    );
    let expect = [
        "spec.earlyStopping.settings.minTrialsRequired: (0) must be a whole number from 1",
        "spec.earlyStopping.settings.startStep: (2.5) must be a whole number from 0",
        "spec.earlyStopping.settings.startstep: is not a setting of rule median (known settings: minTrialsRequired, startStep); did you mean startStep?",
        "spec.earlyStopping.settings.gracePeriod: is not a setting of rule median",
    ];
    for e in expect {
        assert!(found.iter().any(|p| p.contains(e)), "expected {e:?} in {found:#?}");
    }
    let found = with("  earlyStopping: {rule: asha, settings: {reductionFactor: 1, minResource: 4, maxResource: 4}}");
    assert!(found.iter().any(|p| p.contains("settings.reductionFactor: (1) must be a whole number from 2 to 1000")));
    assert!(found.iter().any(|p| p.contains("settings.maxResource: (4) must be larger than minResource (4)")));
    let found = with("  earlyStopping: {rule: asha, settings: {minResource: 1, maxResource: 9, brackets: 3}}");
    assert!(
        found.iter().any(|p| p.contains("settings.brackets: (3): the last bracket's first rung, minResource·reductionFactor^2 = 9, is not below maxResource (9)")),
        "{found:#?}"
    );
    let found = with("  earlyStopping: {rule: asha, settings: {brackets: 0}}");
    assert!(
        found.iter().any(|p| p.contains("settings.brackets: (0) must be a whole number from 1 to 16")),
        "{found:#?}"
    );
    let found = with("  earlyStopping: {rule: hyperband, setting: {}}");
    assert!(
        found.iter().any(|p| p.contains("spec.earlyStopping.rule: \"hyperband\" is not one of none, median, asha"))
    );
    assert!(
        found.iter().any(|p| p.contains("spec.earlyStopping.setting: is not a known field; did you mean settings?"))
    );
    let found = with("  earlyStopping: {rule: none, settings: {startStep: 1}}");
    assert!(found.iter().any(|p| p.contains("is not a setting of rule none (known settings: none)")), "{found:#?}");
}

#[test]
fn hyperband_needs_an_int_resource_parameter_and_a_sane_eta() {
    let to = "name: hyperband, seed: 7, settings: {resourceParameter: epochs, eta: 3}";
    assert!(problems("name: random, seed: 7", to).is_empty(), "{:?}", problems("name: random, seed: 7", to));
    assert_problem(
        "name: random, seed: 7",
        "name: hyperband",
        "spec.algorithm.settings.resourceParameter: is required for hyperband: name the int parameter it sets per rung (int parameters: epochs)",
    );
    assert_problem(
        "name: random, seed: 7",
        "name: hyperband, settings: {resourceParameter: lr}",
        "spec.algorithm.settings.resourceParameter: \"lr\" is not an int parameter of spec.parameters (int parameters: epochs)",
    );
    assert_problem(
        "name: random, seed: 7",
        "name: hyperband, settings: {resourceParameter: epochs, eta: 1}",
        "spec.algorithm.settings.eta: (1) must be a whole number from 2 to 1000",
    );
    assert_problem(
        "name: random, seed: 7",
        "name: hyperband, settings: {resourceParameter: epochs, etta: 2}",
        "spec.algorithm.settings.etta: is not a setting of hyperband (known settings: resourceParameter, eta); did you mean eta?",
    );
}

#[test]
fn an_autoscaled_kubernetes_server_needs_a_cpu_request_to_scale_on() {
    let on_kubernetes = "timeout: 10m\n    image: busybox\n  executor: kubernetes\n  promotion:\n    serve:\n      \
                         image: serve:1\n      autoscale: {minReplicas: 1, maxReplicas: 3}";
    assert_problem(
        "timeout: 10m",
        on_kubernetes,
        "spec.promotion.serve.resources.cpu: is required with serve.autoscale: the autoscaler scales on CPU use",
    );
    let requested = format!("{on_kubernetes}\n      resources: {{cpu: 500m, memory: 1Gi}}");
    assert_eq!(problems("timeout: 10m", &requested), Vec::<String>::new());
    let bad = format!("{on_kubernetes}\n      resources: {{cpu: lots}}");
    assert_problem("timeout: 10m", &bad, "spec.promotion.serve.resources.cpu: \"lots\" is not a Kubernetes quantity");
    let template = "timeout: 10m\n    image: busybox\n  executor: kubernetes\n  promotion:\n    serve:\n      \
                    autoscale: {minReplicas: 1, maxReplicas: 3}\n      \
                    podTemplate: {spec: {containers: [{name: s, image: serve:1}]}}";
    assert_problem(
        "timeout: 10m",
        template,
        "spec.promotion.serve.podTemplate: its first container needs resources.requests.cpu",
    );
}

#[test]
fn shm_size_must_be_a_kubernetes_quantity() {
    let on_kubernetes = "timeout: 10m\n    image: busybox\n  executor: kubernetes";
    let good = "timeout: 10m\n    image: busybox\n    shmSize: 1Gi\n  executor: kubernetes";
    assert_eq!(problems("timeout: 10m", good), Vec::<String>::new());
    let bad = "timeout: 10m\n    image: busybox\n    shmSize: 1 gig\n  executor: kubernetes";
    assert_problem("timeout: 10m", bad, "spec.trial.shmSize: \"1 gig\" is not a Kubernetes quantity");
    assert_eq!(problems("timeout: 10m", on_kubernetes), Vec::<String>::new());
}

#[test]
fn a_serving_progress_deadline_must_be_a_duration() {
    let on_kubernetes = "timeout: 10m\n    image: busybox\n  executor: kubernetes\n  promotion:\n    serve:\n      \
                         image: serve:1\n      progressDeadline: 5m";
    assert!(problems("timeout: 10m", on_kubernetes).is_empty(), "{:?}", problems("timeout: 10m", on_kubernetes));
    assert_problem(
        "timeout: 10m",
        &on_kubernetes.replace("5m", "soon"),
        "spec.promotion.serve.progressDeadline: \"soon\" is not a duration",
    );
    assert_problem(
        "timeout: 10m",
        &on_kubernetes.replace("5m", "90d"),
        "spec.promotion.serve.progressDeadline: \"90d\" is longer than 30 days",
    );
}

#[test]
fn the_progress_deadline_counts_whole_seconds_and_defaults_to_ten_minutes() {
    let serve = |d: Option<&str>| ServeSpec { progress_deadline: d.map(String::from), ..Default::default() };
    assert_eq!(serve(None).progress_deadline_seconds(), Ok(600));
    assert_eq!(serve(Some("1.5s")).progress_deadline_seconds(), Ok(2));
    assert_eq!(serve(Some("2m")).progress_deadline_seconds(), Ok(120));
}
