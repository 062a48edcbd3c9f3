//! JSON merge patch (RFC 7386; also used for server-side apply and strategic merge patches)
//! and JSON patch (RFC 6902).

use serde_json::{Map, Value};

/// Applies an RFC 7386 merge patch to `target`.
pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else { return };
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// Splits a JSON pointer into its unescaped tokens (`""` is the whole document).
fn tokens(pointer: &str) -> Result<Vec<String>, String> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let rest = pointer.strip_prefix('/').ok_or(format!("invalid JSON pointer {pointer:?}"))?;
    Ok(rest.split('/').map(unescape).collect())
}

fn get<'a>(doc: &'a Value, toks: &[String]) -> Option<&'a Value> {
    let mut v = doc;
    for t in toks {
        v = match v {
            Value::Object(m) => m.get(t)?,
            Value::Array(a) => a.get(t.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(v)
}

fn get_mut<'a>(doc: &'a mut Value, toks: &[String]) -> Option<&'a mut Value> {
    let mut v = doc;
    for t in toks {
        v = match v {
            Value::Object(m) => m.get_mut(t)?,
            Value::Array(a) => a.get_mut(t.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(v)
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    let toks = tokens(path)?;
    let Some((last, parent)) = toks.split_last() else {
        *doc = value;
        return Ok(());
    };
    match get_mut(doc, parent) {
        Some(Value::Object(m)) => {
            m.insert(last.clone(), value);
            Ok(())
        }
        Some(Value::Array(a)) if last == "-" => {
            a.push(value);
            Ok(())
        }
        Some(Value::Array(a)) => match last.parse::<usize>() {
            Ok(i) if i <= a.len() => {
                a.insert(i, value);
                Ok(())
            }
            _ => Err(format!("add operation: index out of range at {path:?}")),
        },
        _ => Err(format!("add operation does not apply: doc is missing path: {path:?}")),
    }
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, String> {
    let toks = tokens(path)?;
    let missing = || format!("remove operation does not apply: doc is missing path: {path:?}");
    let Some((last, parent)) = toks.split_last() else {
        return Ok(std::mem::take(doc));
    };
    match get_mut(doc, parent) {
        Some(Value::Object(m)) => m.remove(last).ok_or_else(missing),
        Some(Value::Array(a)) => match last.parse::<usize>() {
            Ok(i) if i < a.len() => Ok(a.remove(i)),
            _ => Err(missing()),
        },
        _ => Err(missing()),
    }
}

/// Applies an RFC 6902 JSON patch (`ops` is the array of operations). A `test` of a missing
/// path against `null` passes, as in the Kubernetes API server.
pub fn json_patch(doc: &mut Value, ops: &Value) -> Result<(), String> {
    let ops = ops.as_array().ok_or("a JSON patch must be an array of operations")?;
    for op in ops {
        let kind = op["op"].as_str().ok_or("JSON patch operation without \"op\"")?;
        let path = op["path"].as_str().ok_or("JSON patch operation without \"path\"")?;
        match kind {
            "add" => add(doc, path, op["value"].clone())?,
            "remove" => {
                remove(doc, path)?;
            }
            "replace" => {
                let toks = tokens(path)?;
                let slot = get_mut(doc, &toks)
                    .ok_or(format!("replace operation does not apply: doc is missing key: {path:?}"))?;
                *slot = op["value"].clone();
            }
            "move" | "copy" => {
                let from = op["from"].as_str().ok_or("move/copy operation without \"from\"")?;
                let value = if kind == "move" {
                    remove(doc, from)?
                } else {
                    get(doc, &tokens(from)?).cloned().ok_or(format!("copy: missing path {from:?}"))?
                };
                add(doc, path, value)?;
            }
            "test" => {
                let want = &op["value"];
                match get(doc, &tokens(path)?) {
                    Some(got) if got == want => {}
                    None if want.is_null() => {}
                    Some(got) => return Err(format!("testing value {path} failed: {got} != {want}")),
                    None => return Err(format!("testing value {path} failed: missing")),
                }
            }
            other => return Err(format!("unexpected JSON patch operation {other:?}")),
        }
    }
    Ok(())
}
