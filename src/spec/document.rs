//! Reading a document: syntax (with line and column), shape (unknown fields, wrong types, each at its
//! path), then meaning (`validate`), so that one reading reports every problem it can.

use std::fmt;

use serde_json::Value;

use super::{API_VERSION, Experiment, shape, validate};

/// One thing wrong with a document, at its field path (`spec.parameters[1].min`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Problem {
    pub field: String,
    pub message: String,
}

impl Problem {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("the document is not valid {format} (line {line}, column {column}): {message}")]
    Syntax { format: &'static str, line: usize, column: usize, message: String },
    #[error("the experiment is invalid:\n{}", list(.0))]
    Invalid(Vec<Problem>),
}

impl SpecError {
    /// The problems, one per field (a syntax error is one problem at the document's root).
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            SpecError::Syntax { .. } => vec![Problem::new("", self.to_string())],
            SpecError::Invalid(problems) => problems.clone(),
        }
    }
}

fn list(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n")
}

/// Parses and validates an experiment document, YAML or JSON.
pub fn parse(text: &str) -> Result<Experiment, SpecError> {
    let value = parse_value(text)?;
    from_value(value)
}

/// Validates an already parsed document (an API body, a custom resource).
pub fn from_value(value: Value) -> Result<Experiment, SpecError> {
    let (experiment, problems) = read(value);
    verdict(experiment, problems)
}

/// The experiment when nothing is wrong with it, else every problem.
pub fn verdict(experiment: Option<Experiment>, problems: Vec<Problem>) -> Result<Experiment, SpecError> {
    match experiment {
        Some(experiment) if problems.is_empty() => Ok(experiment),
        _ => Err(SpecError::Invalid(problems)),
    }
}

/// Reads a document leniently: its shape (wrong types, unknown fields and choices), then its
/// meaning, all in one list. The experiment is `None` only when the document could not be
/// decoded at all (it is not a mapping, or its metadata is unusable).
pub fn read(mut value: Value) -> (Option<Experiment>, Vec<Problem>) {
    let mut problems = header_problems(&value);
    let Some(fields) = value.as_object_mut() else { return (None, problems) };
    let known = ["apiVersion", "kind", "metadata", "spec", "status"];
    for key in fields.keys().filter(|k| !known.contains(&k.as_str())) {
        problems.push(Problem::new(key.clone(), shape::unknown_field(key, &known)));
    }
    fields.retain(|k, _| known.contains(&k.as_str()));
    let shape = match fields.get_mut("spec") {
        Some(spec) => shape::check_spec(spec),
        None => {
            problems.push(Problem::new("spec", "is required: the objective, the parameters and the trial"));
            return (None, problems);
        }
    };
    problems.extend(shape.problems.iter().cloned());
    let experiment = decode(value, &mut problems);
    if let Some(experiment) = &experiment {
        problems.extend(validate::check(experiment).into_iter().filter(|p| !shape.covers(&p.field)));
    }
    (experiment, problems)
}

/// Decodes a shape-checked document; what the shape could not catch (in `metadata`, a value in a
/// `values` list) is reported at its path and removed, and decoding tries again.
fn decode(mut value: Value, problems: &mut Vec<Problem>) -> Option<Experiment> {
    /// Each retry removes one value; a document with more undecodable values than this is
    /// reported as far as it got.
    const RETRIES: usize = 16;
    for _ in 0..RETRIES {
        let mut unknown = Vec::new();
        let decoded: Result<Experiment, _> = {
            let mut note = |path: serde_ignored::Path<'_>| unknown.push(path_string(&path));
            let ignoring = serde_ignored::Deserializer::new(&value, &mut note);
            serde_path_to_error::deserialize(ignoring)
        };
        let err = match decoded {
            Ok(experiment) => {
                for field in unknown.into_iter().filter(|f| f != "apiVersion" && f != "kind") {
                    problems.push(Problem::new(field, "is not a known field; remove it or check its spelling"));
                }
                return Some(experiment);
            }
            Err(err) => err,
        };
        let field = bracket_indices(&err.path().to_string());
        problems.push(Problem::new(field.clone(), plain_words(&err.inner().to_string())));
        if field.is_empty() || !remove(&mut value, &field) {
            return None;
        }
    }
    None
}

/// Removes the value at a field path (`metadata.labels.x`, `spec.parameters[1].values[0]`).
fn remove(value: &mut Value, field: &str) -> bool {
    let pointer: String = field
        .replace('[', ".")
        .replace(']', "")
        .split('.')
        .map(|part| format!("/{}", part.replace('~', "~0").replace('/', "~1")))
        .collect();
    let Some((parent, last)) = pointer.rsplit_once('/') else { return false };
    match value.pointer_mut(parent) {
        Some(Value::Object(map)) => map.remove(&last.replace("~1", "/").replace("~0", "~")).is_some(),
        Some(Value::Array(items)) => match last.parse::<usize>() {
            Ok(i) if i < items.len() => {
                items.remove(i);
                true
            }
            _ => false,
        },
        _ => false,
    }
}

/// A decoder's message with the Rust left out (`expected u32`, `struct ObjectMeta`).
fn plain_words(message: &str) -> String {
    let message = message.split(", expected").next().unwrap_or(message);
    message.replace("invalid type: ", "has the wrong type: ").replace(" map", " mapping").replace(" sequence", " list")
}

pub fn parse_value(text: &str) -> Result<Value, SpecError> {
    if text.trim_start().starts_with('{') {
        return serde_json::from_str(text).map_err(|e| SpecError::Syntax {
            format: "JSON",
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        });
    }
    serde_saphyr::from_str::<Value>(text).map_err(|e| {
        let (line, column) = e.location().map(|l| (l.line() as usize, l.column() as usize)).unwrap_or((0, 0));
        SpecError::Syntax { format: "YAML", line, column, message: e.to_string() }
    })
}

fn header_problems(value: &Value) -> Vec<Problem> {
    let mut problems = Vec::new();
    if !value.is_object() {
        problems.push(Problem::new("", "the document must be a mapping with apiVersion, kind, metadata and spec"));
        return problems;
    }
    match value.get("apiVersion").and_then(Value::as_str) {
        Some(API_VERSION) => {}
        other => problems.push(Problem::new("apiVersion", format!("is {}; it must be {API_VERSION}", describe(other)))),
    }
    match value.get("kind").and_then(Value::as_str) {
        Some("Experiment") => {}
        other => problems.push(Problem::new("kind", format!("is {}; it must be Experiment", describe(other)))),
    }
    problems
}

fn describe(value: Option<&str>) -> String {
    value.map_or_else(|| "missing".to_string(), |v| format!("{v:?}"))
}

/// `spec.parameters.1.min` (serde_ignored) or `spec.parameters[1].min` (serde_path_to_error),
/// both written the second way.
fn path_string(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", path_string(parent)),
        Path::Map { parent, key } => {
            let parent = path_string(parent);
            if parent.is_empty() { key.clone() } else { format!("{parent}.{key}") }
        }
        Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => path_string(parent),
    }
}

fn bracket_indices(path: &str) -> String {
    if path == "." {
        return String::new();
    }
    path.to_string()
}
