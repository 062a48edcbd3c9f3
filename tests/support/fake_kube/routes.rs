//! The HTTP API: path parsing and the verbs (get, list, watch, create, replace, patch, delete,
//! deletecollection) on resources and their `status`/`log` subresources.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::errors::{ApiError, json_response};
use super::item::item;
use super::kubelet::Kubelet;
use super::meta;
use super::rbac::{self, CONTROLLER_TOKEN, Policy, Subject};
use super::requests::RequestLog;
use super::resources::{Registry, ResourceType};
use super::selector::Selectors;
use super::store::{Deleted, Store};
use super::watch::{out, watch_response};

#[derive(Clone)]
pub struct App {
    pub store: Arc<Store>,
    pub kubelet: Arc<Kubelet>,
    pub requests: Arc<RequestLog>,
    /// The RBAC in force for the controller's and users' tokens (`None`: none loaded, so they may do nothing).
    pub rbac: Arc<std::sync::RwLock<Option<Policy>>>,
    /// Users' bearer tokens (`user_client`), and who each is.
    pub users: Arc<std::sync::RwLock<HashMap<String, Subject>>>,
}

pub(super) type Q = HashMap<String, String>;

pub fn router(app: App) -> Router {
    Router::new().fallback(handle).with_state(app)
}

async fn handle(
    State(app): State<App>,
    method: Method,
    uri: Uri,
    Query(q): Query<Q>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    app.requests.record(method.as_str(), uri.path(), uri.query());
    if let Err(e) = authorize(&app, &method, uri.path(), &q, &headers, &body) {
        app.requests.record_refusal(&e.message);
        return e.into_response();
    }
    dispatch(&app, &method, uri.path(), &q, &headers, &body).unwrap_or_else(IntoResponse::into_response)
}

/// Who a bearer token is: the controller, a registered user, or nobody (401).
fn authenticate(app: &App, auth: &axum::http::HeaderValue) -> Result<Subject, ApiError> {
    let token = auth.to_str().ok().and_then(|v| v.strip_prefix("Bearer "));
    let users = app.users.read().unwrap_or_else(|e| e.into_inner());
    match token {
        Some(CONTROLLER_TOKEN) => Ok(Subject::controller()),
        Some(t) if users.contains_key(t) => Ok(users[t].clone()),
        _ => Err(ApiError::new(401, "Unauthorized", "Unauthorized")),
    }
}

/// RBAC for the controller's and users' tokens; a request without one is the tests' admin.
fn authorize(app: &App, method: &Method, path: &str, q: &Q, headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    let Some(auth) = headers.get(axum::http::header::AUTHORIZATION) else { return Ok(()) };
    let subject = authenticate(app, auth)?;
    let watch = q.get("watch").is_some_and(|w| w == "true" || w == "1");
    let Some(asked) = rbac::attributes(&app.store.registry, method, path, watch) else { return Ok(()) };
    let policy = app.rbac.read().unwrap_or_else(|e| e.into_inner()).clone().unwrap_or_default();
    let mut needed = vec![asked.clone()];
    if matches!(*method, Method::POST | Method::PUT) && !asked.resource.contains('/') {
        let object: Value = serde_json::from_slice(body).unwrap_or_default();
        needed.extend(rbac::owner_checks(&app.store.registry, &object, asked.namespace.as_deref()));
    }
    match needed.into_iter().find(|a| !policy.allows_for(&subject, a)) {
        Some(refused) => Err(refused.forbidden(&subject.user)),
        None => Ok(()),
    }
}

pub(super) fn ok(v: &Value) -> Result<Response, ApiError> {
    Ok(json_response(StatusCode::OK, v))
}

fn dispatch(
    app: &App,
    method: &Method,
    path: &str,
    q: &Q,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let reg = &app.store.registry;
    match segs.as_slice() {
        ["version"] => ok(&Registry::version()),
        ["healthz" | "readyz" | "livez"] => Ok("ok".into_response()),
        ["api"] => ok(&reg.core_versions()),
        ["apis"] => ok(&reg.group_list()),
        ["api", v] => ok(&reg.resource_list("", v).ok_or_else(ApiError::path_not_found)?),
        ["apis", g, v] => ok(&reg.resource_list(g, v).ok_or_else(ApiError::path_not_found)?),
        ["api", v, rest @ ..] => resource(app, method, "", v, rest, q, headers, body),
        ["apis", g, v, rest @ ..] => resource(app, method, g, v, rest, q, headers, body),
        _ => Err(ApiError::path_not_found()),
    }
}

#[allow(clippy::too_many_arguments)]
fn resource(
    app: &App,
    method: &Method,
    group: &str,
    version: &str,
    rest: &[&str],
    q: &Q,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let reg = &app.store.registry;
    let namespaced = |plural: &str| reg.find(group, version, plural).filter(|rt| rt.namespaced);
    let cluster = |plural: &str| reg.find(group, version, plural).filter(|rt| !rt.namespaced);
    match rest {
        [plural] => {
            let rt = reg.find(group, version, plural).ok_or_else(ApiError::path_not_found)?;
            collection(app, method, &rt, None, q, body)
        }
        ["namespaces", ns, plural] if namespaced(plural).is_some() => {
            let rt = namespaced(plural).ok_or_else(ApiError::path_not_found)?;
            collection(app, method, &rt, Some(ns), q, body)
        }
        [plural, name] => {
            let rt = cluster(plural).ok_or_else(ApiError::path_not_found)?;
            item(app, method, &rt, "", name, None, q, headers, body)
        }
        [plural, name, sub] => {
            let rt = cluster(plural).ok_or_else(ApiError::path_not_found)?;
            item(app, method, &rt, "", name, Some(sub), q, headers, body)
        }
        ["namespaces", ns, plural, name] => {
            let rt = namespaced(plural).ok_or_else(ApiError::path_not_found)?;
            item(app, method, &rt, ns, name, None, q, headers, body)
        }
        ["namespaces", ns, plural, name, sub] => {
            let rt = namespaced(plural).ok_or_else(ApiError::path_not_found)?;
            item(app, method, &rt, ns, name, Some(sub), q, headers, body)
        }
        _ => Err(ApiError::path_not_found()),
    }
}

pub(super) fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("error decoding request body as JSON: {e}")))
}

pub(super) fn dry_run(q: &Q) -> bool {
    q.get("dryRun").is_some_and(|v| !v.is_empty())
}

fn selectors(q: &Q) -> Result<Selectors, ApiError> {
    Selectors::parse(q.get("labelSelector").map(String::as_str), q.get("fieldSelector").map(String::as_str))
        .map_err(ApiError::bad_request)
}

fn collection(
    app: &App,
    method: &Method,
    rt: &ResourceType,
    ns: Option<&str>,
    q: &Q,
    body: &[u8],
) -> Result<Response, ApiError> {
    let res = rt.qualified();
    match *method {
        Method::GET if q.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            watch_response(&app.store, rt.clone(), ns.map(String::from), q)
        }
        Method::GET => {
            let sel = selectors(q)?;
            let (items, rv) = app.store.list(&res, ns);
            let items: Vec<Value> = items.iter().filter(|o| sel.matches(o)).map(|o| out(rt, o)).collect();
            let offset: usize = q.get("continue").and_then(|c| c.parse().ok()).unwrap_or(0);
            let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).filter(|l| *l > 0).unwrap_or(usize::MAX);
            let total = items.len();
            let page: Vec<Value> = items.into_iter().skip(offset).take(limit).collect();
            let mut metadata = json!({"resourceVersion": rv.to_string()});
            let next = offset.saturating_add(page.len());
            if next < total {
                metadata["continue"] = json!(next.to_string());
                metadata["remainingItemCount"] = json!(total - next);
            }
            ok(&json!({"apiVersion": rt.api_version(), "kind": rt.list_kind(), "metadata": metadata, "items": page}))
        }
        Method::POST => {
            let ns = match (rt.namespaced, ns) {
                (true, Some(ns)) => ns,
                (false, None) => "",
                _ => {
                    return Err(ApiError::method_not_allowed(
                        "create requires a namespaced path for a namespaced resource",
                    ));
                }
            };
            let created = app.store.create(rt, ns, parse_body(body)?, dry_run(q))?;
            Ok(json_response(StatusCode::CREATED, &out(rt, &created)))
        }
        Method::DELETE => {
            let sel = selectors(q)?;
            let (items, rv) = app.store.list(&res, ns);
            let mut deleted = Vec::new();
            // DeleteOptions come in the body (as kube-rs sends them) or the query, as for one object.
            let opts = if body.is_empty() { json!({}) } else { parse_body(body)? };
            let orphan = opts["orphanDependents"].as_bool() == Some(true);
            for o in items.iter().filter(|o| sel.matches(o)) {
                let policy = if orphan { Some("Orphan") } else { opts["propagationPolicy"].as_str() }
                    .or(q.get("propagationPolicy").map(String::as_str));
                match app.store.delete(rt, &meta::ns_of(o), &meta::name_of(o), policy, None, dry_run(q)) {
                    Ok(Deleted::Pending(v) | Deleted::Gone(v)) => deleted.push(out(rt, &v)),
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
            ok(&json!({"apiVersion": rt.api_version(), "kind": rt.list_kind(),
                "metadata": {"resourceVersion": rv.to_string()}, "items": deleted}))
        }
        _ => Err(ApiError::method_not_allowed(format!("{method} is not supported on a collection"))),
    }
}
