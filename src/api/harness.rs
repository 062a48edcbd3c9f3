//! The API as its unit tests drive it: the real router over a real store in a temporary folder,
//! called with `oneshot` (no socket).

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode};
use tower::ServiceExt;

use super::{ApiState, router};
use crate::store::Store;
use crate::token::TrialSecret;

pub struct Api {
    pub router: axum::Router,
    pub state: Arc<ApiState>,
    _dir: tempfile::TempDir,
}

impl Api {
    /// A fresh store, with the server token `token` and trial secret `[secret; 32]`.
    pub fn new(token: Option<&str>, secret: u8) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let state = Arc::new(ApiState::new(store, token.map(String::from), TrialSecret::from_bytes([secret; 32]), 0));
        Api { router: router(Arc::clone(&state)), state, _dir: dir }
    }

    /// One request; the answer's status and body.
    pub async fn send(&self, method: &str, uri: &str, body: &str, bearer: Option<&str>) -> (StatusCode, Bytes) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = bearer {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = self.router.clone().oneshot(request.body(Body::from(body.to_string())).unwrap()).await.unwrap();
        let status = response.status();
        (status, axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap())
    }

    /// One GET with these headers; the answer's status, headers and body.
    pub async fn get_with(&self, uri: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, Bytes) {
        let mut request = Request::builder().method("GET").uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self.router.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        (status, headers, axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap())
    }

    /// An ask/tell experiment `name` minimizing `value` over one double `x`, with `trials` trials
    /// all asked for (open at once); the suggestions' answer.
    pub async fn open_external(&self, name: &str, trials: u32) -> serde_json::Value {
        let doc = serde_json::json!({"apiVersion": "tuna.dev/v1alpha1", "kind": "Experiment", "metadata": {"name": name},
            "spec": {"objective": {"metric": "value", "goal": "minimize"}, "algorithm": {"name": "random", "seed": 1},
                     "maxTrials": trials, "parallelTrials": trials, "executor": "external",
                     "parameters": [{"name": "x", "type": "double", "min": 0, "max": 1}]}});
        let (status, created) = self.send("POST", "/api/v1/experiments", &doc.to_string(), None).await;
        assert_eq!(status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&created));
        let uri = format!("/api/v1/experiments/{name}/suggestions");
        let (status, asked) = self.send("POST", &uri, &format!(r#"{{"count": {trials}}}"#), None).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&asked));
        serde_json::from_slice(&asked).unwrap()
    }
}
