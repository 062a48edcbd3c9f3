//! Client writes to the store: create, update (replace and patch) and delete, with the API
//! server's metadata rules.

use serde_json::{Value, json};

use super::defaults;
use super::errors::ApiError;
use super::meta::{self, meta_mut};
use super::resources::{CRDS, NAMESPACES, ResourceType};
use super::store::{Deleted, EventType, Store, default_policy, spec_part};

impl Store {
    pub fn create(&self, rt: &ResourceType, ns: &str, body: Value, dry_run: bool) -> Result<Value, ApiError> {
        let mut obj = body;
        if !obj.is_object() {
            return Err(ApiError::bad_request("the request body must be a JSON object"));
        }
        if let Some(k) = obj["kind"].as_str()
            && k != rt.kind
        {
            return Err(ApiError::bad_request(format!(
                "the kind {k:?} does not match the resource {}",
                rt.qualified()
            )));
        }
        obj["apiVersion"] = json!(rt.api_version());
        obj["kind"] = json!(rt.kind);
        let res = rt.qualified();
        let mut inner = self.lock();
        let m = meta_mut(&mut obj);
        let ns = if rt.namespaced {
            if let Some(given) = m.get("namespace").and_then(|v| v.as_str())
                && given != ns
            {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            if !inner.objects.contains_key(&(NAMESPACES.into(), String::new(), ns.to_string())) {
                return Err(ApiError::new(404, "NotFound", format!("namespaces \"{ns}\" not found")));
            }
            m.insert("namespace".into(), json!(ns));
            ns.to_string()
        } else {
            m.remove("namespace");
            String::new()
        };
        let name = match (m.get("name").and_then(|v| v.as_str()), m.get("generateName").and_then(|v| v.as_str())) {
            (Some(n), _) if !n.is_empty() => n.to_string(),
            (_, Some(prefix)) if !prefix.is_empty() => loop {
                let candidate = format!("{prefix}{}", meta::random_suffix(5));
                if !inner.objects.contains_key(&(res.clone(), ns.clone(), candidate.clone())) {
                    break candidate;
                }
            },
            _ => {
                return Err(ApiError::invalid(
                    rt,
                    "",
                    "metadata.name: Required value: name or generateName is required",
                ));
            }
        };
        meta::check_subdomain(&name).map_err(|e| ApiError::invalid(rt, &name, e))?;
        meta::check_labels(&m.get("labels").cloned().unwrap_or(Value::Null), "metadata.labels")
            .map_err(|e| ApiError::invalid(rt, &name, e))?;
        m.insert("name".into(), json!(name));
        m.insert("uid".into(), json!(meta::new_uid()));
        m.insert("creationTimestamp".into(), json!(meta::now_ts()));
        m.insert("generation".into(), json!(1));
        for k in ["resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink"] {
            m.remove(k);
        }
        if rt.status
            && let Some(o) = obj.as_object_mut()
        {
            o.remove("status");
        }
        defaults::on_create(rt, &mut obj).map_err(|e| ApiError::invalid(rt, &name, e))?;
        super::blocked::admit(&inner.objects, &res, &ns, &mut obj)?;
        meta::normalize(&mut obj);
        let key = (res.clone(), ns, name.clone());
        if inner.objects.contains_key(&key) {
            return Err(ApiError::already_exists(rt, &name));
        }
        if dry_run {
            return Ok(obj);
        }
        inner.bump(&mut obj);
        inner.objects.insert(key, obj.clone());
        inner.emit(&res, EventType::Added, obj.clone(), None);
        drop(inner);
        if res == CRDS {
            self.registry.register_crd(&obj);
        }
        Ok(obj)
    }

    /// Read-modify-write of one object: `f` computes the new object from the current one.
    /// A resourceVersion in the new object is a precondition; identity metadata is kept; the
    /// generation is bumped on changes outside metadata and status; a deleting object whose
    /// finalizers became empty is removed. `internal` skips update validation (kubelet writes).
    pub fn update(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        f: impl FnOnce(&Value) -> Result<Value, ApiError>,
        dry_run: bool,
        internal: bool,
    ) -> Result<Value, ApiError> {
        let key = (rt.qualified(), ns.to_string(), name.to_string());
        let mut inner = self.lock();
        let old = inner.objects.get(&key).cloned().ok_or_else(|| ApiError::not_found(rt, name))?;
        let mut new = f(&old)?;
        if !new.is_object() {
            return Err(ApiError::bad_request("the request body must be a JSON object"));
        }
        let old_rv = old["metadata"]["resourceVersion"].clone();
        if let Some(rv) = new["metadata"]["resourceVersion"].as_str()
            && !rv.is_empty()
            && Some(rv) != old_rv.as_str()
        {
            return Err(ApiError::conflict(rt, name));
        }
        new["apiVersion"] = json!(rt.api_version());
        new["kind"] = json!(rt.kind);
        let om = old["metadata"].clone();
        let m = meta_mut(&mut new);
        for k in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            match om.get(k) {
                Some(v) => m.insert(k.into(), v.clone()),
                None => m.remove(k),
            };
        }
        m.insert("resourceVersion".into(), old_rv);
        meta::check_labels(&m.get("labels").cloned().unwrap_or(Value::Null), "metadata.labels")
            .map_err(|e| ApiError::invalid(rt, name, e))?;
        if !internal {
            defaults::on_update(rt, &old, &mut new).map_err(|e| ApiError::invalid(rt, name, e))?;
        }
        meta::normalize(&mut new);
        if spec_part(&old) != spec_part(&new) {
            let g = om["generation"].as_i64().unwrap_or(0) + 1;
            meta_mut(&mut new).insert("generation".into(), json!(g));
        }
        if new == old || dry_run {
            return Ok(new);
        }
        if meta::is_deleting(&new) && meta::finalizers_of(&new).is_empty() {
            return Ok(inner.remove(&key, new, default_policy(&key.0)));
        }
        Ok(inner.put_modified(&key, old, new))
    }

    /// Deletes an object (or marks it deleting while it has finalizers). `policy`: Orphan,
    /// Background or Foreground (dependents are deleted at once either way).
    pub fn delete(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        policy: Option<&str>,
        precondition_uid: Option<&str>,
        dry_run: bool,
    ) -> Result<Deleted, ApiError> {
        let key = (rt.qualified(), ns.to_string(), name.to_string());
        let mut inner = self.lock();
        let obj = inner.objects.get(&key).cloned().ok_or_else(|| ApiError::not_found(rt, name))?;
        if let Some(uid) = precondition_uid
            && uid != meta::uid_of(&obj)
        {
            let msg =
                format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {}", meta::uid_of(&obj));
            return Err(ApiError::new(409, "Conflict", msg));
        }
        if dry_run {
            return Ok(Deleted::Gone(obj));
        }
        if !meta::finalizers_of(&obj).is_empty() {
            return Ok(Deleted::Pending(inner.mark_deleting(&key, &obj)));
        }
        let policy = policy.unwrap_or(default_policy(&key.0)).to_string();
        Ok(Deleted::Gone(inner.remove(&key, obj, &policy)))
    }
}
