//! Verbs on one object: get, replace (PUT), patch (merge, apply, strategic-merge, JSON patch),
//! delete, on the object itself and on its `status` subresource; and the pod `log` subresource.

use axum::http::{HeaderMap, Method, StatusCode, header::CONTENT_TYPE};
use axum::response::Response;
use serde_json::{Value, json};

use super::errors::{ApiError, json_response, success_status};
use super::resources::{PODS, ResourceType};
use super::routes::{App, Q, dry_run, ok, parse_body};
use super::store::Deleted;
use super::watch::out;
use super::{logs, meta, patch};

fn set_or_remove(obj: &mut Value, key: &str, v: Value) {
    if let Some(m) = obj.as_object_mut() {
        if v.is_null() {
            m.remove(key);
        } else {
            m.insert(key.into(), v);
        }
    }
}

/// The object to store after a client write of `written` over `old`: a status-subresource
/// write takes only `.status` (and a resourceVersion precondition); a main write keeps the old status.
fn combine(rt: &ResourceType, status_sub: bool, old: &Value, written: Value) -> Value {
    if status_sub {
        let mut n = old.clone();
        set_or_remove(&mut n, "status", written["status"].clone());
        let rv = written["metadata"]["resourceVersion"].clone();
        meta::meta_mut(&mut n).insert("resourceVersion".into(), rv);
        n
    } else if rt.status {
        let mut n = written;
        set_or_remove(&mut n, "status", old["status"].clone());
        n
    } else {
        written
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn item(
    app: &App,
    method: &Method,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    sub: Option<&str>,
    q: &Q,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let store = &app.store;
    let res = rt.qualified();
    let status_sub = match sub {
        None => false,
        Some("status") if rt.status => true,
        Some("log") if res == PODS && *method == Method::GET => return logs::log_response(app, ns, name, q),
        Some(_) => return Err(ApiError::path_not_found()),
    };
    match *method {
        Method::GET => {
            let obj = store.get(&res, ns, name).ok_or_else(|| ApiError::not_found(rt, name))?;
            ok(&out(rt, &obj))
        }
        Method::PUT => {
            let written = parse_body(body)?;
            if let Some(n) = written["metadata"]["name"].as_str()
                && n != name
            {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
            let new = store.update(rt, ns, name, |old| Ok(combine(rt, status_sub, old, written)), dry_run(q), false)?;
            ok(&out(rt, &new))
        }
        Method::PATCH => {
            let ctype = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
            let ctype = ctype.split(';').next().unwrap_or("").trim().to_string();
            let p = parse_body(body)?;
            let is_apply = ctype == "application/apply-patch+yaml";
            if is_apply {
                if q.get("fieldManager").is_none_or(|f| f.is_empty()) {
                    return Err(ApiError::new(
                        422,
                        "Invalid",
                        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                    ));
                }
                if p["apiVersion"].as_str().is_none_or(str::is_empty) || p["kind"].as_str().is_none_or(str::is_empty) {
                    return Err(ApiError::bad_request("apply patches must set apiVersion and kind"));
                }
                if !status_sub && store.get(&res, ns, name).is_none() {
                    let mut obj = p.clone();
                    meta::meta_mut(&mut obj).insert("name".into(), json!(name));
                    let created = store.create(rt, ns, obj, dry_run(q))?;
                    return Ok(json_response(StatusCode::CREATED, &out(rt, &created)));
                }
            }
            let apply = |old: &Value| -> Result<Value, ApiError> {
                let mut doc = old.clone();
                match ctype.as_str() {
                    "application/json-patch+json" => patch::json_patch(&mut doc, &p).map_err(|e| {
                        ApiError::new(
                            422,
                            "Invalid",
                            format!("the server rejected our request due to an error in our request: {e}"),
                        )
                    })?,
                    "application/merge-patch+json"
                    | "application/strategic-merge-patch+json"
                    | "application/apply-patch+yaml" => patch::merge(&mut doc, &p),
                    other => {
                        return Err(ApiError::new(
                            415,
                            "UnsupportedMediaType",
                            format!(
                                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {other:?})"
                            ),
                        ));
                    }
                }
                Ok(combine(rt, status_sub, old, doc))
            };
            let new = store.update(rt, ns, name, apply, dry_run(q), false)?;
            ok(&out(rt, &new))
        }
        Method::DELETE if !status_sub => {
            let opts = if body.is_empty() { json!({}) } else { parse_body(body)? };
            let policy = opts["propagationPolicy"].as_str().or(q.get("propagationPolicy").map(String::as_str));
            if opts["orphanDependents"].as_bool() == Some(true) {
                return delete_reply(rt, name, store.delete(rt, ns, name, Some("Orphan"), None, dry_run(q))?);
            }
            let uid = opts["preconditions"]["uid"].as_str();
            let dry = dry_run(q) || opts["dryRun"].as_array().is_some_and(|a| !a.is_empty());
            delete_reply(rt, name, store.delete(rt, ns, name, policy, uid, dry)?)
        }
        _ => Err(ApiError::method_not_allowed(format!("{method} is not supported here"))),
    }
}

fn delete_reply(rt: &ResourceType, name: &str, d: Deleted) -> Result<Response, ApiError> {
    match d {
        Deleted::Pending(obj) => ok(&out(rt, &obj)),
        Deleted::Gone(obj) => ok(&success_status(rt, name, &meta::uid_of(&obj))),
    }
}
