//! Object metadata helpers: timestamps, uids, generated names, name and label validation.

use serde_json::{Map, Value};

/// Now, as Kubernetes writes `metav1.Time` (RFC 3339, whole seconds, UTC).
pub fn now_ts() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A random UUID (version 4 layout).
pub fn new_uid() -> String {
    let n: u128 = rand::random();
    let h = format!("{n:032x}");
    format!("{}-{}-4{}-a{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
}

/// `n` random characters from the alphabet Kubernetes uses for generated name suffixes.
pub fn random_suffix(n: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..n).map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char).collect()
}

/// Lowercase random letters (pod names of Jobs: `<job>-<5 lowercase chars>`).
pub fn random_lowercase(n: usize) -> String {
    (0..n).map(|_| (b'a' + rand::random_range(0..26u8)) as char).collect()
}

pub fn meta(obj: &Value) -> &Value {
    &obj["metadata"]
}

/// `metadata`, created as an empty object if missing.
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    let o = obj.as_object_mut().unwrap_or_else(|| unreachable!());
    let m = o.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    if !m.is_object() {
        *m = Value::Object(Map::new());
    }
    m.as_object_mut().unwrap_or_else(|| unreachable!())
}

pub fn name_of(obj: &Value) -> String {
    obj["metadata"]["name"].as_str().unwrap_or_default().to_string()
}

pub fn ns_of(obj: &Value) -> String {
    obj["metadata"]["namespace"].as_str().unwrap_or_default().to_string()
}

pub fn uid_of(obj: &Value) -> String {
    obj["metadata"]["uid"].as_str().unwrap_or_default().to_string()
}

pub fn rv_of(obj: &Value) -> u64 {
    obj["metadata"]["resourceVersion"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0)
}

pub fn finalizers_of(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

pub fn is_deleting(obj: &Value) -> bool {
    obj["metadata"]["deletionTimestamp"].is_string()
}

/// Owner uids from `metadata.ownerReferences`.
pub fn owner_uids(obj: &Value) -> Vec<String> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r["uid"].as_str().map(String::from)).collect())
        .unwrap_or_default()
}

/// Drops empty `finalizers`/`ownerReferences`/`labels`/`annotations`, as the API server's
/// serialization omits them (kube-runtime's finalizer helper tests `/metadata/finalizers` == null).
pub fn normalize(obj: &mut Value) {
    let m = meta_mut(obj);
    for key in ["finalizers", "ownerReferences"] {
        if m.get(key).and_then(|v| v.as_array()).is_some_and(|a| a.is_empty()) || m.get(key).is_some_and(Value::is_null)
        {
            m.remove(key);
        }
    }
    for key in ["labels", "annotations"] {
        if m.get(key).and_then(|v| v.as_object()).is_some_and(|a| a.is_empty())
            || m.get(key).is_some_and(Value::is_null)
        {
            m.remove(key);
        }
    }
}

/// RFC 1123 subdomain (object names): lowercase alphanumerics, '-' and '.', at most 253 characters.
pub fn check_subdomain(name: &str) -> Result<(), String> {
    let ok_chars = name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    let ends_ok = name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().last().is_some_and(|c| c.is_ascii_alphanumeric());
    if name.is_empty() || name.len() > 253 || !ok_chars || !ends_ok {
        return Err(format!(
            "metadata.name: Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case \
             alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
        ));
    }
    Ok(())
}

/// RFC 1123 label (container names, namespaces): like a subdomain without '.', at most 63 characters.
pub fn check_dns_label(field: &str, name: &str) -> Result<(), String> {
    let ok_chars = name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let ends_ok = name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().last().is_some_and(|c| c.is_ascii_alphanumeric());
    if name.is_empty() || name.len() > 63 || !ok_chars || !ends_ok {
        return Err(format!(
            "{field}: Invalid value: \"{name}\": a lowercase RFC 1123 label must consist of lower case \
             alphanumeric characters or '-', start and end with an alphanumeric character, and be at most 63 characters"
        ));
    }
    Ok(())
}

fn label_value_ok(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            && v.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && v.chars().last().is_some_and(|c| c.is_ascii_alphanumeric()))
}

/// Label keys (`[prefix/]name`) and values must be valid, as the API server checks.
pub fn check_labels(obj: &Value, field: &str) -> Result<(), String> {
    let Some(labels) = obj.as_object() else { return Ok(()) };
    for (k, v) in labels {
        let name = k.rsplit('/').next().unwrap_or(k);
        if !label_value_ok(name) || name.is_empty() || k.matches('/').count() > 1 {
            return Err(format!(
                "{field}: Invalid value: \"{k}\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
            ));
        }
        let Some(v) = v.as_str() else {
            return Err(format!("{field}: Invalid value: label \"{k}\" must be a string"));
        };
        if !label_value_ok(v) {
            return Err(format!(
                "{field}: Invalid value: \"{v}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (at most 63 characters)"
            ));
        }
    }
    Ok(())
}
