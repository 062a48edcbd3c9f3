//! The typed HTTP client the CLI (and tests) use to talk to `tuna serve`.

use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::leaderboard::Leaderboard;
use crate::spec::{Experiment, Problem};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to reach the tuna server at {url} (is `tuna serve` running there? set --server or TUNA_SERVER)")]
    Connect {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{}", api_message(.status, .message, .problems))]
    Api { status: StatusCode, message: String, field: Option<String>, problems: Vec<Problem> },
    #[error("the server's answer to {url} was not what this client expects")]
    Decode {
        url: String,
        #[source]
        source: reqwest::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn api_message(status: &StatusCode, message: &str, problems: &[Problem]) -> String {
    if problems.is_empty() {
        format!("{message} (HTTP {})", status.as_u16())
    } else {
        let lines: Vec<String> = problems.iter().map(|p| format!("  - {p}")).collect();
        format!("the server refused the experiment:\n{}", lines.join("\n"))
    }
}

/// A client for one server.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    pub fn new(base: &str, token: Option<String>) -> Self {
        Self { http: reqwest::Client::new(), base: base.trim_end_matches('/').to_string(), token }
    }

    fn request(&self, method: Method, path: &str) -> (String, RequestBuilder) {
        let url = format!("{}{path}", self.base);
        let mut builder = self.http.request(method, &url);
        if let Some(token) = &self.token {
            builder = builder.bearer_auth(token);
        }
        (url, builder)
    }

    /// Sends a request; a non-2xx answer becomes `Error::Api` with the server's sentence and field.
    async fn send(&self, url: String, builder: RequestBuilder) -> Result<reqwest::Response> {
        let response = builder.send().await.map_err(|source| Error::Connect { url: url.clone(), source })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body: Value = response.json().await.unwrap_or_default();
        let error = &body["error"];
        Err(Error::Api {
            status,
            message: error["message"].as_str().unwrap_or("the server gave no reason").to_string(),
            field: error["field"].as_str().map(String::from),
            problems: serde_json::from_value(error["problems"].clone()).unwrap_or_default(),
        })
    }

    async fn json<T: DeserializeOwned>(&self, method: Method, path: &str, body: Option<Value>) -> Result<T> {
        let (url, mut builder) = self.request(method, path);
        if let Some(body) = body {
            builder = builder.json(&body);
        }
        let response = self.send(url.clone(), builder).await?;
        response.json().await.map_err(|source| Error::Decode { url, source })
    }

    /// Creates an experiment from a document (YAML or JSON text).
    pub async fn submit(&self, document: String) -> Result<Experiment> {
        let (url, builder) = self.request(Method::POST, "/api/v1/experiments");
        let response =
            self.send(url.clone(), builder.header("content-type", "application/yaml").body(document)).await?;
        response.json().await.map_err(|source| Error::Decode { url, source })
    }

    pub async fn list(&self) -> Result<Value> {
        self.json(Method::GET, "/api/v1/experiments", None).await
    }

    pub async fn get(&self, name: &str) -> Result<Experiment> {
        self.json(Method::GET, &format!("/api/v1/experiments/{name}"), None).await
    }

    pub async fn leaderboard(&self, name: &str, top: Option<usize>) -> Result<Leaderboard> {
        let query = top.map(|n| format!("?top={n}")).unwrap_or_default();
        self.json(Method::GET, &format!("/api/v1/experiments/{name}/leaderboard{query}"), None).await
    }

    pub async fn trials(&self, name: &str) -> Result<Value> {
        self.json(Method::GET, &format!("/api/v1/experiments/{name}/trials"), None).await
    }

    /// A trial's output; with `follow` the response streams until the trial ends.
    pub async fn logs(&self, name: &str, trial: &str, follow: bool) -> Result<reqwest::Response> {
        let (url, builder) =
            self.request(Method::GET, &format!("/api/v1/experiments/{name}/trials/{trial}/logs?follow={follow}"));
        self.send(url, builder).await
    }

    pub async fn stop(&self, name: &str) -> Result<Experiment> {
        self.json(Method::POST, &format!("/api/v1/experiments/{name}/stop"), None).await
    }

    pub async fn resume(&self, name: &str, max_trials: Option<u32>) -> Result<Experiment> {
        let body = max_trials.map(|n| json!({ "maxTrials": n })).unwrap_or_else(|| json!({}));
        self.json(Method::POST, &format!("/api/v1/experiments/{name}/resume"), Some(body)).await
    }

    pub async fn delete(&self, name: &str) -> Result<Value> {
        self.json(Method::DELETE, &format!("/api/v1/experiments/{name}"), None).await
    }

    /// Promotes `trial` (the best when `None`); waits until it is served.
    pub async fn promote(&self, name: &str, trial: Option<&str>) -> Result<Value> {
        let body = trial.map(|t| json!({ "trial": t })).unwrap_or_else(|| json!({}));
        self.json(Method::POST, &format!("/api/v1/experiments/{name}/promote"), Some(body)).await
    }

    /// Serves an earlier version again (`None`: the one before the current).
    pub async fn rollback(&self, name: &str, to: Option<&str>) -> Result<Value> {
        let body = to.map(|v| json!({ "to": v })).unwrap_or_else(|| json!({}));
        self.json(Method::POST, &format!("/api/v1/experiments/{name}/rollback"), Some(body)).await
    }

    pub async fn promotions(&self, name: &str) -> Result<Value> {
        self.json(Method::GET, &format!("/api/v1/experiments/{name}/promotions"), None).await
    }

    /// Ask: up to `count` new trials of an external experiment.
    pub async fn suggest(&self, name: &str, count: usize) -> Result<Value> {
        self.json(Method::POST, &format!("/api/v1/experiments/{name}/suggestions"), Some(json!({ "count": count })))
            .await
    }

    /// Tell: a trial's final metrics.
    pub async fn complete(&self, name: &str, trial: &str, metrics: Value) -> Result<Value> {
        let path = format!("/api/v1/experiments/{name}/trials/{trial}/complete");
        self.json(Method::POST, &path, Some(json!({ "metrics": metrics }))).await
    }
}
