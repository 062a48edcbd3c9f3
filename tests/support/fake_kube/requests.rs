//! The request log: every HTTP request the API server answered, in order, so tests can count
//! what a controller costs a cluster (status writes on an idle experiment, requests per trial).

use std::sync::Mutex;

/// One request as the API server saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// The raw query string ("" when none).
    pub query: String,
    /// Milliseconds since the fake started.
    pub at_ms: u64,
}

impl Request {
    /// A watch (a long-lived GET), which costs the API server once, not per event.
    pub fn is_watch(&self) -> bool {
        self.query.split('&').any(|p| p == "watch=true" || p == "watch=1")
    }
}

/// Every request so far.
#[derive(Default)]
pub struct RequestLog {
    started: Option<std::time::Instant>,
    entries: Mutex<Vec<Request>>,
    /// The messages of the 403s given to the controller's token, in order.
    refusals: Mutex<Vec<String>>,
}

impl RequestLog {
    pub fn new() -> Self {
        Self { started: Some(std::time::Instant::now()), entries: Mutex::default(), refusals: Mutex::default() }
    }

    pub fn record(&self, method: &str, path: &str, query: Option<&str>) {
        let at_ms = self.started.map_or(0, |s| s.elapsed().as_millis() as u64);
        let request =
            Request { method: method.into(), path: path.into(), query: query.unwrap_or_default().into(), at_ms };
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).push(request);
    }

    /// How many requests so far (a mark for `since`).
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The requests after `mark` (a value of `len`).
    pub fn since(&self, mark: usize) -> Vec<Request> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).get(mark..).map(<[Request]>::to_vec).unwrap_or_default()
    }

    pub fn record_refusal(&self, message: &str) {
        self.refusals.lock().unwrap_or_else(|e| e.into_inner()).push(message.to_string());
    }

    /// What RBAC refused the controller so far (each a 403's message): empty when the shipped
    /// RBAC grants everything the controller did.
    pub fn refusals(&self) -> Vec<String> {
        self.refusals.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
