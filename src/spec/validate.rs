//! The meaning checks: every rule here adds a `Problem` naming the field and the fix, and all of them
//! run, so a user sees every problem of a document at once.

use std::collections::BTreeSet;

use super::{
    AlgorithmName, Collector, Experiment, ExperimentSpec, ParameterSpec, ParameterType, Problem, Scalar, Scale,
};

/// Placeholders every trial command may use besides its parameters.
pub const BUILTIN_PLACEHOLDERS: &[&str] = &["trial", "experiment", "outputDir"];

/// The most values a categorical or discrete parameter may list: enough for any real choice, and
/// a bound on the work every suggestion does over them.
pub const MAX_VALUES: usize = 10_000;

/// The longest name Kubernetes accepts for a label value and most objects.
const MAX_NAME_LEN: usize = 63;
/// Int bounds are read as doubles, exact up to 2^53.
const MAX_EXACT_INT: f64 = 9_007_199_254_740_992.0;
/// The most values a stepped axis may have: the grid counts them, and beyond this a step is no
/// longer a grid a search can walk.
const MAX_STEPS: f64 = 1e15;

/// Runs every meaning check on a decoded experiment.
pub fn check(experiment: &Experiment) -> Vec<Problem> {
    let mut problems = Vec::new();
    check_name(experiment.metadata.name.as_deref(), &mut problems);
    let spec = &experiment.spec;
    check_objective(spec, &mut problems);
    check_algorithm(spec, &mut problems);
    check_parameters(spec, &mut problems);
    check_budget(spec, &mut problems);
    check_trial(spec, &mut problems);
    check_metrics(spec, &mut problems);
    check_file_on_kubernetes(spec, &mut problems);
    check_promotion(spec, &mut problems);
    check_early_stopping(spec, &mut problems);
    problems
}

fn check_name(name: Option<&str>, problems: &mut Vec<Problem>) {
    let field = "metadata.name";
    let Some(name) = name else {
        problems.push(Problem::new(field, "is required; give the experiment a name such as my-experiment"));
        return;
    };
    let valid_chars = name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let valid_ends =
        name.starts_with(|c: char| c.is_ascii_alphanumeric()) && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if name.is_empty() || name.len() > MAX_NAME_LEN || !valid_chars || !valid_ends {
        problems.push(Problem::new(
            field,
            format!(
                "{name:?} is not a DNS-1123 label: use at most {MAX_NAME_LEN} lower-case letters, \
                 digits and '-', starting and ending with a letter or digit"
            ),
        ));
    }
}

fn check_objective(spec: &ExperimentSpec, problems: &mut Vec<Problem>) {
    let objective = &spec.objective;
    if objective.metric.trim().is_empty() {
        problems.push(Problem::new("spec.objective.metric", "is empty; name the metric the trial reports"));
    }
    if objective.target.is_some_and(|t| !t.is_finite()) {
        problems.push(Problem::new("spec.objective.target", "must be a finite number"));
    }
    for (i, m) in objective.additional_metrics.iter().enumerate() {
        if *m == objective.metric || objective.additional_metrics[..i].contains(m) {
            problems.push(Problem::new(
                format!("spec.objective.additionalMetrics[{i}]"),
                format!("{m:?} is listed twice (or is the objective metric); remove it"),
            ));
        }
    }
}

fn check_algorithm(spec: &ExperimentSpec, problems: &mut Vec<Problem>) {
    let algorithm = &spec.algorithm;
    let Some(settings) = algorithm.name.settings() else {
        let names: Vec<_> = AlgorithmName::KNOWN.iter().map(AlgorithmName::as_str).collect();
        let near = super::words::closest(algorithm.name.as_str(), &names);
        problems.push(Problem::new(
            "spec.algorithm.name",
            format!(
                "{:?} is not one of {}{}",
                algorithm.name.as_str(),
                names.join(", "),
                near.map(|n| format!("; did you mean {n}?")).unwrap_or_default()
            ),
        ));
        return;
    };
    for key in algorithm.settings.keys().filter(|k| !settings.contains(&k.as_str())) {
        let known = if settings.is_empty() { "none".to_string() } else { settings.join(", ") };
        let near = super::words::closest(key, settings).map(|n| format!("; did you mean {n}?")).unwrap_or_default();
        problems.push(Problem::new(
            format!("spec.algorithm.settings.{key}"),
            format!("is not a setting of {} (known settings: {known}){near}", algorithm.name),
        ));
    }
    if algorithm.name == AlgorithmName::Hyperband {
        check_hyperband(spec, problems);
    }
    if let Some(levels) = algorithm.settings.get("levels").filter(|_| algorithm.name == AlgorithmName::Grid)
        && levels.as_u64().is_none_or(|n| !(2..=10_000).contains(&n))
    {
        problems.push(Problem::new(
            "spec.algorithm.settings.levels",
            format!("({levels}) must be a whole number from 2 to 10000: the points on each double without a step"),
        ));
    }
}

/// Hyperband's resource: an int parameter from at least 1 to a larger max, which tuna sets per rung.
fn check_hyperband(spec: &ExperimentSpec, problems: &mut Vec<Problem>) {
    let settings = &spec.algorithm.settings;
    let field = "spec.algorithm.settings.resourceParameter";
    let ints: Vec<&str> =
        spec.parameters.iter().filter(|p| p.kind == ParameterType::Int).map(|p| p.name.as_str()).collect();
    match settings.get("resourceParameter").map(|v| v.as_str()) {
        None => problems.push(Problem::new(
            field,
            format!(
                "is required for hyperband: name the int parameter it sets per rung (int parameters: {})",
                list(&ints)
            ),
        )),
        Some(None) => problems.push(Problem::new(field, "must be text: the name of an int parameter")),
        Some(Some(name)) => match spec.parameters.iter().find(|p| p.name == name) {
            Some(p) if p.kind == ParameterType::Int && p.min.is_some_and(|m| m >= 1.0) => {}
            Some(p) if p.kind == ParameterType::Int => problems.push(Problem::new(
                field,
                format!(
                    "{name:?} must have min at least 1 (a resource of {} steps is none)",
                    p.min.unwrap_or_default()
                ),
            )),
            _ => problems.push(Problem::new(
                field,
                format!("{name:?} is not an int parameter of spec.parameters (int parameters: {})", list(&ints)),
            )),
        },
    }
    if let Some(eta) = settings.get("eta")
        && eta.as_u64().is_none_or(|n| !(2..=1000).contains(&n))
    {
        problems.push(Problem::new(
            "spec.algorithm.settings.eta",
            format!("({eta}) must be a whole number from 2 to 1000"),
        ));
    }
}

fn list(names: &[&str]) -> String {
    if names.is_empty() { "none; add one".to_string() } else { names.join(", ") }
}

fn check_parameters(spec: &ExperimentSpec, problems: &mut Vec<Problem>) {
    if spec.parameters.is_empty() {
        problems.push(Problem::new("spec.parameters", "is empty; add at least one parameter"));
    }
    let mut seen = BTreeSet::new();
    for (i, p) in spec.parameters.iter().enumerate() {
        let at = |f: &str| format!("spec.parameters[{i}].{f}");
        if !is_identifier(&p.name) {
            problems.push(Problem::new(
                at("name"),
                format!("{:?} must start with a letter or '_' and hold only letters, digits and '_'", p.name),
            ));
        } else if !seen.insert(p.name.as_str()) {
            problems
                .push(Problem::new(at("name"), format!("{:?} is used by an earlier parameter; rename one", p.name)));
        }
        match p.kind {
            ParameterType::Double | ParameterType::Int => check_range(p, &at, problems),
            ParameterType::Categorical | ParameterType::Discrete => check_values(p, &at, problems),
        }
    }
}

fn check_range(p: &ParameterSpec, at: &dyn Fn(&str) -> String, problems: &mut Vec<Problem>) {
    let int = p.kind == ParameterType::Int;
    if !p.values.is_empty() {
        problems.push(Problem::new(at("values"), "is only for categorical and discrete parameters; use min and max"));
    }
    let (min, max) = match (p.min, p.max) {
        (Some(min), Some(max)) => (min, max),
        (min, max) => {
            for (name, v) in [("min", min), ("max", max)] {
                if v.is_none() {
                    problems.push(Problem::new(at(name), format!("is required for a {} parameter", kind_name(p.kind))));
                }
            }
            return;
        }
    };
    for (name, v) in [("min", min), ("max", max)] {
        if !v.is_finite() || (int && v.fract() != 0.0) {
            let what = if int { "an integer" } else { "a finite number" };
            problems.push(Problem::new(at(name), format!("({v}) must be {what}")));
        } else if int && v.abs() > MAX_EXACT_INT {
            problems.push(Problem::new(at(name), format!("({v}) must be between -2^53 and 2^53")));
        }
    }
    if min >= max {
        problems.push(Problem::new(at("min"), format!("({min}) must be less than max ({max})")));
    }
    if p.scale == Scale::Log && min <= 0.0 {
        problems.push(Problem::new(at("scale"), format!("log needs min > 0 (min is {min}); raise min or use linear")));
    }
    if let Some(step) = p.step {
        if step.is_nan() || step <= 0.0 || (int && step.fract() != 0.0) {
            problems.push(Problem::new(
                at("step"),
                format!("({step}) must be a positive {}", if int { "integer" } else { "number" }),
            ));
        } else if min < max && step > max - min {
            problems
                .push(Problem::new(at("step"), format!("({step}) is larger than max - min ({}); lower it", max - min)));
        } else if (max - min) / step > MAX_STEPS {
            problems.push(Problem::new(
                at("step"),
                format!("({step}) makes more than 10^15 values between min and max; raise it or remove it"),
            ));
        }
        if p.scale == Scale::Log {
            problems.push(Problem::new(at("step"), "cannot be combined with scale log; remove one"));
        }
    }
}

fn check_values(p: &ParameterSpec, at: &dyn Fn(&str) -> String, problems: &mut Vec<Problem>) {
    for (name, given) in [("min", p.min.is_some()), ("max", p.max.is_some()), ("step", p.step.is_some())] {
        if given {
            problems.push(Problem::new(
                at(name),
                format!("is not used by a {} parameter; list the choices in values", kind_name(p.kind)),
            ));
        }
    }
    if p.scale != Scale::Linear {
        problems
            .push(Problem::new(at("scale"), format!("is not used by a {} parameter; remove it", kind_name(p.kind))));
    }
    if p.values.is_empty() {
        problems.push(Problem::new(
            at("values"),
            format!("is required for a {} parameter; list at least one value", kind_name(p.kind)),
        ));
    }
    if p.values.len() > MAX_VALUES {
        problems.push(Problem::new(
            at("values"),
            format!(
                "lists {} values; at most {MAX_VALUES} are allowed (use an int or double range for more)",
                p.values.len()
            ),
        ));
        return;
    }
    let mut seen = std::collections::HashSet::with_capacity(p.values.len());
    for (j, v) in p.values.iter().enumerate() {
        let key = match v {
            Scalar::Number(n) => format!("n{}", (n + 0.0).to_bits()), // + 0.0: -0 and 0 are one value
            Scalar::Text(t) => format!("t{t}"),
        };
        if !seen.insert(key) {
            problems.push(Problem::new(format!("{}[{j}]", at("values")), "repeats an earlier value; remove it"));
        }
        if p.kind == ParameterType::Discrete && !matches!(v, Scalar::Number(n) if n.is_finite()) {
            problems.push(Problem::new(
                format!("{}[{j}]", at("values")),
                "must be a number (discrete values are ordered numbers; use categorical for names)",
            ));
        }
    }
}

/// The counts' bounds are the shape's (`words::WHOLE_BOUNDS`); this checks what the decoded
/// value alone shows, for experiments built in code.
fn check_budget(spec: &ExperimentSpec, problems: &mut Vec<Problem>) {
    for (field, value) in [("spec.maxTrials", spec.max_trials), ("spec.parallelTrials", spec.parallel_trials)] {
        if value == 0 {
            problems.push(Problem::new(field, "must be at least 1 (it is 0)"));
        }
    }
}

fn check_trial(spec: &ExperimentSpec, problems: &mut Vec<Problem>) {
    let trial = &spec.trial;
    let needs_command = spec.executor == super::ExecutorKind::Local
        || (spec.executor == super::ExecutorKind::Kubernetes && trial.pod_template.is_none());
    if needs_command && (trial.command.is_empty() || trial.command[0].trim().is_empty()) {
        problems.push(Problem::new(
            "spec.trial.command",
            format!("is required for the {} executor; give the program and its arguments", executor_name(spec)),
        ));
    }
    if spec.executor == super::ExecutorKind::Kubernetes {
        check_kubernetes(trial, problems);
    }
    let mut known: Vec<&str> = Vec::new();
    let names = spec.parameters.iter().map(|p| p.name.as_str()).filter(|n| !n.is_empty());
    for name in names.chain(BUILTIN_PLACEHOLDERS.iter().copied()) {
        if !known.contains(&name) {
            known.push(name);
        }
    }
    let templates = trial
        .command
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("spec.trial.command[{i}]"), s))
        .chain(trial.env.iter().map(|(k, v)| (format!("spec.trial.env.{k}"), v)));
    for (field, template) in templates {
        for placeholder in placeholders(template) {
            match placeholder {
                Placeholders::Name(name) if known.contains(&name) => {}
                Placeholders::Name(name) => problems.push(Problem::new(
                    field.clone(),
                    format!("${{{name}}} names no parameter; known names: {}", known.join(", ")),
                )),
                Placeholders::Unclosed => {
                    problems.push(Problem::new(field.clone(), "has an unclosed '${'; close it with '}'"))
                }
            }
        }
    }
    if let Some(Err(e)) = trial.start_timeout.as_deref().map(super::read_duration) {
        problems.push(Problem::new("spec.trial.startTimeout", e.to_string()));
    }
    if let Some(Err(e)) = trial.timeout.as_deref().map(super::read_duration) {
        problems.push(Problem::new("spec.trial.timeout", e.to_string()));
    }
}

fn executor_name(spec: &ExperimentSpec) -> &'static str {
    match spec.executor {
        super::ExecutorKind::Local => "local",
        super::ExecutorKind::External => "external",
        super::ExecutorKind::Kubernetes => "kubernetes",
    }
}

/// The pod a trial runs in: an image, or a pod template with a primary container.
fn check_kubernetes(trial: &super::TrialTemplate, problems: &mut Vec<Problem>) {
    match &trial.pod_template {
        None if trial.image.as_deref().is_none_or(|i| i.trim().is_empty()) => problems.push(Problem::new(
            "spec.trial.image",
            "is required for the kubernetes executor (or give a whole spec.trial.podTemplate)",
        )),
        None => {}
        Some(template) => {
            let containers = template.pointer("/spec/containers").and_then(|c| c.as_array());
            let names: Vec<&str> =
                containers.into_iter().flatten().filter_map(|c| c.get("name").and_then(|n| n.as_str())).collect();
            if names.is_empty() {
                problems.push(Problem::new(
                    "spec.trial.podTemplate.spec.containers",
                    "must list at least one named container",
                ));
            } else if let Some(primary) = trial.primary_container.as_deref().filter(|p| !names.contains(p)) {
                problems.push(Problem::new(
                    "spec.trial.primaryContainer",
                    format!("{primary:?} is not a container of podTemplate (containers: {})", names.join(", ")),
                ));
            }
        }
    }
    if let Some(v) = trial.shm_size.as_deref().filter(|v| !is_quantity(v)) {
        problems.push(Problem::new(
            "spec.trial.shmSize",
            format!("{v:?} is not a Kubernetes quantity; write it like 512Mi or 1Gi"),
        ));
    }
    for (field, value) in [("cpu", &trial.resources.cpu), ("memory", &trial.resources.memory)] {
        if let Some(v) = value.as_deref().filter(|v| !is_quantity(v)) {
            problems.push(Problem::new(
                format!("spec.trial.resources.{field}"),
                format!("{v:?} is not a Kubernetes quantity; write it like 500m, 2, 512Mi or 1Gi"),
            ));
        }
    }
}

/// A Kubernetes resource quantity: a decimal number and an optional suffix.
fn is_quantity(text: &str) -> bool {
    const SUFFIXES: &[&str] = &["", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    let digits = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, suffix) = text.split_at(digits);
    !number.is_empty() && number.parse::<f64>().is_ok() && SUFFIXES.contains(&suffix)
}

fn check_promotion(spec: &ExperimentSpec, problems: &mut Vec<Problem>) {
    let Some(promotion) = &spec.promotion else { return };
    if let Some(super::Gate { min: Some(min), max: Some(max) }) = &promotion.gate
        && min > max
    {
        problems.push(Problem::new("spec.promotion.gate.min", format!("({min}) must not exceed max ({max})")));
    }
    let Some(serve) = &promotion.serve else { return };
    for (i, part) in serve.command.iter().enumerate() {
        for placeholder in placeholders(part) {
            match placeholder {
                Placeholders::Name("modelDir" | "port" | "version") => {}
                Placeholders::Name(name) => problems.push(Problem::new(
                    format!("spec.promotion.serve.command[{i}]"),
                    format!("${{{name}}} is not known here; use ${{modelDir}}, ${{port}} or ${{version}}"),
                )),
                Placeholders::Unclosed => problems.push(Problem::new(
                    format!("spec.promotion.serve.command[{i}]"),
                    "has an unclosed '${'; close it with '}'",
                )),
            }
        }
    }
    let kubernetes = spec.executor == super::ExecutorKind::Kubernetes;
    if !kubernetes && serve.command.is_empty() {
        problems.push(Problem::new(
            "spec.promotion.serve.command",
            "is required to serve locally; give the server program",
        ));
    }
    if kubernetes && serve.image.is_none() && serve.pod_template.is_none() {
        problems.push(Problem::new(
            "spec.promotion.serve.image",
            "is required to serve on Kubernetes (or give serve.podTemplate)",
        ));
    }
    if let Some(a) = serve.autoscale.as_ref().filter(|a| a.min_replicas < 1 || a.min_replicas > a.max_replicas) {
        problems.push(Problem::new(
            "spec.promotion.serve.autoscale",
            format!("minReplicas ({}) must be at least 1 and at most maxReplicas ({})", a.min_replicas, a.max_replicas),
        ));
    }
    if let Err(e) = serve.progress_deadline_seconds() {
        problems.push(Problem::new("spec.promotion.serve.progressDeadline", e.to_string()));
    }
    let resources = serve.resources.clone().unwrap_or_default();
    for (field, value) in [("cpu", &resources.cpu), ("memory", &resources.memory)] {
        if let Some(v) = value.as_deref().filter(|v| !is_quantity(v)) {
            problems.push(Problem::new(
                format!("spec.promotion.serve.resources.{field}"),
                format!("{v:?} is not a Kubernetes quantity; write it like 500m, 2, 512Mi or 1Gi"),
            ));
        }
    }
    // An autoscaler on CPU utilization needs a CPU request to measure against: without one it
    // never scales. A pod template says it in its own first container.
    let template_cpu =
        serve.pod_template.as_ref().map(|t| !t["spec"]["containers"][0]["resources"]["requests"]["cpu"].is_null());
    if kubernetes && serve.autoscale.is_some() {
        match template_cpu {
            Some(false) => problems.push(Problem::new(
                "spec.promotion.serve.podTemplate",
                "its first container needs resources.requests.cpu with serve.autoscale: the autoscaler scales \
                 on CPU use relative to that request",
            )),
            None if resources.cpu.is_none() => problems.push(Problem::new(
                "spec.promotion.serve.resources.cpu",
                "is required with serve.autoscale: the autoscaler scales on CPU use relative to this request \
                 (e.g. 500m)",
            )),
            _ => {}
        }
    }
}

/// The rule's settings, each bad one at its field (`EarlyStopping::read` is the one reading of them).
fn check_early_stopping(spec: &ExperimentSpec, problems: &mut Vec<Problem>) {
    let Some(early) = &spec.early_stopping else { return };
    if let Err(found) = early.read() {
        problems.extend(found);
    }
}

/// A Kubernetes trial's files stay in its pod; the controller could never read the metrics file.
fn check_file_on_kubernetes(spec: &ExperimentSpec, problems: &mut Vec<Problem>) {
    if spec.collector() == Collector::File && spec.executor == super::ExecutorKind::Kubernetes {
        problems.push(Problem::new(
            "spec.metrics.collector",
            "file cannot work with executor kubernetes (the file stays inside the trial's pod); \
             use push (the trial POSTs its metrics, e.g. with tuna_push.py) or stdout (metric lines in the log)",
        ));
    }
}

fn check_metrics(spec: &ExperimentSpec, problems: &mut Vec<Problem>) {
    let metrics = &spec.metrics;
    if spec.collector() == Collector::File {
        match metrics.file.as_deref() {
            None | Some("") => problems.push(Problem::new(
                "spec.metrics.file",
                "is required for collector file; name the file the trial writes",
            )),
            Some(f) if f.starts_with('/') || f.split('/').any(|c| c == "..") => problems.push(Problem::new(
                "spec.metrics.file",
                format!("{f:?} must be a relative path inside the trial's output directory"),
            )),
            Some(_) => {}
        }
    }
    if let Some(format) = &metrics.format {
        match regex::Regex::new(format) {
            Ok(re) if re.captures_len() >= 3 => {}
            Ok(_) => problems.push(Problem::new(
                "spec.metrics.format",
                "needs two capture groups: the metric's name, then its value",
            )),
            Err(e) => problems.push(Problem::new("spec.metrics.format", format!("is not a regular expression: {e}"))),
        }
    }
}

fn kind_name(kind: ParameterType) -> &'static str {
    match kind {
        ParameterType::Double => "double",
        ParameterType::Int => "int",
        ParameterType::Categorical => "categorical",
        ParameterType::Discrete => "discrete",
    }
}

fn is_identifier(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A `${…}` found in a template.
#[derive(Debug, PartialEq, Eq)]
pub enum Placeholders<'a> {
    Name(&'a str),
    Unclosed,
}

/// Every `${name}` in a template, in order.
pub fn placeholders(template: &str) -> Vec<Placeholders<'_>> {
    let mut found = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                found.push(Placeholders::Name(&after[..end]));
                rest = &after[end + 1..];
            }
            None => {
                found.push(Placeholders::Unclosed);
                break;
            }
        }
    }
    found
}
