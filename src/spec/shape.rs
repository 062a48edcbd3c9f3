//! The document's shape, checked against the schema the CRD publishes (one source: the Rust types)
//! before anything is decoded, so that a wrong type, an unknown field or an unknown choice is one
//! problem among all the others instead of the end of the reading.
//!
//! ```text
//! spec value ──walk(schema)──▶ problems (words, "did you mean")  +  a cleaned value:
//!                              bad values removed (defaults apply), required ones stood in for
//! ```
//! The cleaned value then decodes, and the meaning checks run on it; the caller drops meaning
//! problems at fields already reported here (`Shape::covers`).

use std::sync::OnceLock;

use serde_json::{Map, Value};

use super::Problem;
use super::words::{a_value, closest, whole_range};

/// Fields whose value the meaning checks report themselves, with more to say than the schema
/// (an unknown algorithm is kept as `AlgorithmName::Unknown` and reported with the known ones).
const CHECKED_LATER: &[&str] = &["spec.algorithm.name"];

/// What the walk found.
#[derive(Debug, Default)]
pub struct Shape {
    pub problems: Vec<Problem>,
    /// Paths whose meaning problems are already said: a reported field, and everything in the
    /// object of a required choice that was stood in for (its siblings' checks depend on it).
    covered: Vec<String>,
}

impl Shape {
    /// Whether a problem at `field` is already said by the shape.
    pub fn covers(&self, field: &str) -> bool {
        self.covered
            .iter()
            .any(|c| field == c || field.strip_prefix(c.as_str()).is_some_and(|rest| rest.starts_with(['.', '['])))
    }

    fn report(&mut self, path: &str, message: String) {
        self.problems.push(Problem::new(path, message));
        self.covered.push(path.to_string());
    }
}

/// The `spec` schema of the CRD (structural: type, format, properties, required, items,
/// additionalProperties, enum, nullable), built once.
fn spec_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let crd = serde_json::to_value(<super::Experiment as kube::CustomResourceExt>::crd()).unwrap_or(Value::Null);
        crd.pointer("/spec/versions/0/schema/openAPIV3Schema/properties/spec").cloned().unwrap_or(Value::Null)
    })
}

/// Checks the `spec` of a document against its schema, cleaning `spec` in place.
pub fn check_spec(spec: &mut Value) -> Shape {
    let mut shape = Shape::default();
    walk(spec, spec_schema(), "spec", &mut shape);
    shape
}

/// Checks `value` at `path`; returns false when the value is unusable and must go.
fn walk(value: &mut Value, schema: &Value, path: &str, shape: &mut Shape) -> bool {
    if schema.is_null() || CHECKED_LATER.contains(&path) {
        return true;
    }
    if value.is_null() {
        if schema.get("nullable").and_then(Value::as_bool) == Some(true) {
            return true;
        }
        shape.report(path, format!("is empty; give {} or remove the field", expected(schema, path)));
        return false;
    }
    if let Some(choices) = schema.get("enum").and_then(Value::as_array) {
        return check_choice(value, choices, path, shape);
    }
    let kind = schema.get("type").and_then(Value::as_str).unwrap_or("");
    let fits = match kind {
        "integer" => return check_whole(value, schema, path, shape),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => true,
    };
    if !fits {
        let hint = if kind == "string" { boolean_hint(value) } else { String::new() };
        shape.report(path, format!("must be {}, not {}{hint}", expected(schema, path), a_value(value)));
        return false;
    }
    match value {
        Value::Array(items) => check_items(items, schema, path, shape),
        Value::Object(fields) => check_fields(fields, schema, path, shape),
        _ => {}
    }
    true
}

fn check_items(items: &mut [Value], schema: &Value, path: &str, shape: &mut Shape) {
    let Some(item_schema) = schema.get("items") else { return };
    // A bad item is stood in for, not removed, so that later items keep their index.
    for (index, item) in items.iter_mut().enumerate() {
        if !walk(item, item_schema, &format!("{path}[{index}]"), shape) {
            *item = stand_in(item_schema);
        }
    }
}

fn check_fields(fields: &mut Map<String, Value>, schema: &Value, path: &str, shape: &mut Shape) {
    if let Some(values) = schema.get("additionalProperties") {
        fields.retain(|key, value| walk(value, values, &format!("{path}.{key}"), shape));
        return;
    }
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else { return };
    let known: Vec<&str> = properties.keys().map(String::as_str).collect();
    fields.retain(|key, value| match properties.get(key) {
        Some(field_schema) => walk(value, field_schema, &format!("{path}.{key}"), shape),
        None => {
            shape.report(&format!("{path}.{key}"), unknown_field(key, &known));
            false
        }
    });
    let required = schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str);
    for key in required {
        if fields.contains_key(key) {
            continue;
        }
        let field_schema = properties.get(key).unwrap_or(&Value::Null);
        let field = format!("{path}.{key}");
        if !shape.covers(&field) {
            shape.report(&field, format!("is required; give {}", expected(field_schema, &field)));
        }
        if field_schema.get("enum").is_some() {
            shape.covered.push(path.to_string());
        }
        fields.insert(key.to_string(), stand_in(field_schema));
    }
}

/// The message for a field the schema does not have, with the nearest known name.
pub fn unknown_field(key: &str, known: &[&str]) -> String {
    match closest(key, known) {
        Some(near) => format!("is not a known field; did you mean {near}?"),
        None => format!("is not a known field; remove it (known fields here: {})", known.join(", ")),
    }
}

fn check_choice(value: &Value, choices: &[Value], path: &str, shape: &mut Shape) -> bool {
    if choices.contains(value) {
        return true;
    }
    let names: Vec<&str> = choices.iter().filter_map(Value::as_str).collect();
    let near =
        value.as_str().and_then(|v| closest(v, &names)).map(|n| format!("; did you mean {n}?")).unwrap_or_default();
    let shown = value.as_str().map_or_else(|| a_value(value), |s| format!("{s:?}"));
    shape.report(path, format!("{shown} is not one of {}{near}{}", names.join(", "), boolean_hint(value)));
    false
}

fn check_whole(value: &mut Value, schema: &Value, path: &str, shape: &mut Shape) -> bool {
    let (min, max) = whole_range(schema, path);
    let number = value.as_f64().filter(|n| n.fract() == 0.0);
    match number {
        Some(n) if n < min as f64 => shape.report(path, format!("must be at least {min} (it is {value})")),
        Some(n) if n > max as f64 => shape.report(path, format!("must be at most {max} (it is {value})")),
        Some(n) => {
            // `3.0` is a whole number to a user; the decoder wants it written `3`.
            if value.is_f64() {
                *value = if n < 0.0 { Value::from(n as i64) } else { Value::from(n as u64) };
            }
            return true;
        }
        None => shape.report(path, format!("must be {}, not {}", expected(schema, path), a_value(value))),
    }
    false
}

/// A short description of what a schema accepts, in a user's words.
fn expected(schema: &Value, path: &str) -> String {
    if let Some(choices) = schema.get("enum").and_then(Value::as_array) {
        let names: Vec<&str> = choices.iter().filter_map(Value::as_str).collect();
        return format!("one of {}", names.join(", "));
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("integer") => {
            let (min, max) = whole_range(schema, path);
            format!("a whole number from {min} to {max}")
        }
        Some("number") => "a number".into(),
        Some("string") => "text".into(),
        Some("boolean") => "true or false".into(),
        Some("array") => "a list".into(),
        Some("object") => "a mapping (key: value)".into(),
        _ => "a value".into(),
    }
}

/// YAML 1.1 reads some bare words as booleans (`n`, `no`, `off`, `y`, `yes`, `on`): say so where
/// a word was wanted.
fn boolean_hint(value: &Value) -> String {
    match value {
        Value::Bool(b) => format!(
            " (YAML reads a bare {} as the boolean {b}: put the word in quotes, e.g. \"{}\")",
            if *b { "y, yes, on or true" } else { "n, no, off or false" },
            if *b { "y" } else { "n" }
        ),
        _ => String::new(),
    }
}

/// A value of the schema's shape that stands in for a missing required one, so that the rest of
/// the document can still be decoded and checked.
fn stand_in(schema: &Value) -> Value {
    if let Some(first) = schema.get("enum").and_then(Value::as_array).and_then(|c| c.first()) {
        return first.clone();
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("integer" | "number") => Value::from(0),
        Some("string") => Value::from(""),
        Some("boolean") => Value::Bool(false),
        Some("array") => Value::Array(Vec::new()),
        _ => {
            let mut object = Map::new();
            let required = schema.get("required").and_then(Value::as_array).into_iter().flatten();
            for key in required.filter_map(Value::as_str) {
                let field = schema.pointer(&format!("/properties/{key}")).unwrap_or(&Value::Null);
                object.insert(key.to_string(), stand_in(field));
            }
            Value::Object(object)
        }
    }
}
