//! The object store: objects keyed by (resource, namespace, name), a global resourceVersion
//! counter, a bounded history of changes for watches, watch fan-out, finalizers and garbage
//! collection through ownerReferences.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

use super::errors::ApiError;
use super::meta::{self, meta_mut};
use super::resources::{JOBS, Registry, ResourceType};

/// (resource as `plural.group`, namespace or "", name)
pub type Key = (String, String, String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as watches see it.
#[derive(Debug)]
pub struct Record {
    pub rv: u64,
    pub res: String,
    pub kind: EventType,
    pub object: Value,
    pub old: Option<Value>,
}

/// What a new watch starts from: a synthetic listing (no resourceVersion given), or the
/// history after the given resourceVersion; then `rx` delivers every later change.
pub struct WatchStart {
    pub initial: Vec<Value>,
    pub replay: Vec<Arc<Record>>,
    pub rx: mpsc::UnboundedReceiver<Arc<Record>>,
    pub rv: u64,
}

/// The result of a delete: the object still exists with a deletionTimestamp (finalizers), or is gone.
pub enum Deleted {
    Pending(Value),
    Gone(Value),
}

/// Changes kept for watches that resume from a resourceVersion (older ones get 410 Expired).
pub const HISTORY: usize = 20_000;

pub(super) struct Inner {
    pub(super) rv: u64,
    pub(super) objects: BTreeMap<Key, Value>,
    history: VecDeque<Arc<Record>>,
    /// Every change with rv > oldest is in `history`.
    oldest: u64,
    history_cap: usize,
    subs: Vec<mpsc::UnboundedSender<Arc<Record>>>,
    notify: Arc<Notify>,
}

pub struct Store {
    inner: Mutex<Inner>,
    /// Signalled on every change (the fake kubelet waits on it).
    pub changed: Arc<Notify>,
    pub registry: Registry,
}

pub(super) fn spec_part(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        for k in ["metadata", "status", "apiVersion", "kind"] {
            m.remove(k);
        }
    }
    v
}

impl Inner {
    pub(super) fn emit(&mut self, res: &str, kind: EventType, object: Value, old: Option<Value>) {
        let rec = Arc::new(Record { rv: self.rv, res: res.to_string(), kind, object, old });
        self.history.push_back(rec.clone());
        while self.history.len() > self.history_cap {
            if let Some(r) = self.history.pop_front() {
                self.oldest = r.rv;
            }
        }
        self.subs.retain(|s| s.send(rec.clone()).is_ok());
        self.notify.notify_one();
    }

    pub(super) fn bump(&mut self, obj: &mut Value) {
        self.rv += 1;
        meta_mut(obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
    }

    pub(super) fn put_modified(&mut self, key: &Key, old: Value, mut new: Value) -> Value {
        self.bump(&mut new);
        self.objects.insert(key.clone(), new.clone());
        self.emit(&key.0, EventType::Modified, new.clone(), Some(old));
        new
    }

    pub(super) fn mark_deleting(&mut self, key: &Key, obj: &Value) -> Value {
        if meta::is_deleting(obj) {
            return obj.clone();
        }
        let mut new = obj.clone();
        let m = meta_mut(&mut new);
        m.insert("deletionTimestamp".into(), json!(meta::now_ts()));
        m.insert("deletionGracePeriodSeconds".into(), json!(0));
        self.put_modified(key, obj.clone(), new)
    }

    /// Removes an object, then deletes (or orphans) its dependents.
    pub(super) fn remove(&mut self, key: &Key, mut obj: Value, policy: &str) -> Value {
        self.objects.remove(key);
        self.bump(&mut obj);
        self.emit(&key.0, EventType::Deleted, obj.clone(), None);
        let uid = meta::uid_of(&obj);
        let dependents: Vec<(Key, Value)> = self
            .objects
            .iter()
            .filter(|(_, v)| meta::owner_uids(v).contains(&uid))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (dkey, dep) in dependents {
            if policy == "Orphan" {
                let mut new = dep.clone();
                if let Some(refs) = meta_mut(&mut new).get_mut("ownerReferences").and_then(|r| r.as_array_mut()) {
                    refs.retain(|r| r["uid"].as_str() != Some(uid.as_str()));
                }
                meta::normalize(&mut new);
                self.put_modified(&dkey, dep, new);
            } else if !meta::finalizers_of(&dep).is_empty() {
                self.mark_deleting(&dkey, &dep);
            } else {
                self.remove(&dkey, dep, "Background");
            }
        }
        obj
    }
}

pub(super) fn default_policy(res: &str) -> &'static str {
    // batch/v1 Jobs deleted through the API orphan their pods unless told otherwise, as in Kubernetes.
    if res == JOBS { "Orphan" } else { "Background" }
}

impl Store {
    pub fn new() -> Self {
        let notify = Arc::new(Notify::new());
        let inner = Inner {
            rv: 0,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            oldest: 0,
            history_cap: HISTORY,
            subs: Vec::new(),
            notify: notify.clone(),
        };
        Store { inner: Mutex::new(inner), changed: notify, registry: Registry::builtin() }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many changes watches can resume from; fewer makes "too old resourceVersion" (410) likely.
    pub fn set_history_cap(&self, n: usize) {
        let mut inner = self.lock();
        inner.history_cap = n;
        while inner.history.len() > n {
            if let Some(r) = inner.history.pop_front() {
                inner.oldest = r.rv;
            }
        }
    }

    /// Ends every open watch stream.
    pub fn close_watches(&self) {
        self.lock().subs.clear();
    }

    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    pub fn get(&self, res: &str, ns: &str, name: &str) -> Option<Value> {
        self.lock().objects.get(&(res.to_string(), ns.to_string(), name.to_string())).cloned()
    }

    /// Objects of `res` (in `ns`, or all namespaces), and the current resourceVersion.
    pub fn list(&self, res: &str, ns: Option<&str>) -> (Vec<Value>, u64) {
        let inner = self.lock();
        (matching(&inner.objects, res, ns), inner.rv)
    }

    /// All objects whose resource key satisfies `f`.
    pub fn objects_where(&self, f: impl Fn(&str) -> bool) -> Vec<Value> {
        self.lock().objects.iter().filter(|((r, _, _), _)| f(r)).map(|(_, v)| v.clone()).collect()
    }

    /// Subscribes a watch on `res` from resourceVersion `from` (None or 0: current state as ADDED).
    pub fn watch_start(&self, res: &str, ns: Option<&str>, from: Option<u64>) -> Result<WatchStart, ApiError> {
        let mut inner = self.lock();
        let (initial, replay) = match from {
            None | Some(0) => (matching(&inner.objects, res, ns), Vec::new()),
            Some(rv) if rv < inner.oldest => {
                return Err(ApiError::gone(format!("too old resource version: {rv} ({})", inner.oldest + 1)));
            }
            Some(rv) => (Vec::new(), inner.history.iter().filter(|r| r.rv > rv).cloned().collect()),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        inner.subs.push(tx);
        Ok(WatchStart { initial, replay, rx, rv: inner.rv })
    }

    // Internal (kubelet/fixture) helpers that address resources by storage key.

    pub fn rt(&self, res: &str) -> ResourceType {
        self.registry.find_by_name(res).unwrap_or_else(|| panic!("fake kube: unknown resource {res}"))
    }

    pub fn create_internal(&self, res: &str, ns: &str, obj: Value) -> Result<Value, ApiError> {
        self.create(&self.rt(res), ns, obj, false)
    }

    /// Mutates an object in place (no preconditions, no validation); None if it does not exist.
    pub fn mutate(&self, res: &str, ns: &str, name: &str, f: impl FnOnce(&mut Value)) -> Option<Value> {
        let rt = self.rt(res);
        self.update(
            &rt,
            ns,
            name,
            |old| {
                let mut new = old.clone();
                f(&mut new);
                meta_mut(&mut new).remove("resourceVersion");
                Ok(new)
            },
            false,
            true,
        )
        .ok()
    }

    pub fn delete_internal(&self, res: &str, ns: &str, name: &str, policy: Option<&str>) -> bool {
        self.delete(&self.rt(res), ns, name, policy, None, false).is_ok()
    }
}

/// The objects of `res`, in `ns` or (when `None`) in every namespace.
fn matching(objects: &BTreeMap<Key, Value>, res: &str, ns: Option<&str>) -> Vec<Value> {
    objects.iter().filter(|((r, n, _), _)| r == res && ns.is_none_or(|ns| ns == n)).map(|(_, v)| v.clone()).collect()
}
