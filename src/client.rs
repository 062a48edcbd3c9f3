//! The typed HTTP client the CLI (and tests) use to talk to `tuna serve`: requests and answers
//! are the server's own wire structs (`api::types`).

use std::collections::BTreeMap;

use reqwest::{Method, RequestBuilder, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::types::{
    AskRequest, DeleteAnswer, ErrorBody, Experiment, ExperimentList, Leaderboard, Problem, PromoteAnswer,
    PromoteRequest, PromotionHistory, PushAnswer, ReportRequest, ResumeRequest, RollbackRequest, Suggestions,
    TellAnswer, TellRequest, TrialList,
};

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
    #[error("the CA certificate file is not PEM")]
    ReadCaCertificate(#[source] reqwest::Error),
    #[error("the CA certificate file holds no certificate (expected -----BEGIN CERTIFICATE-----)")]
    NoCaCertificate,
    #[error("failed to set up TLS with the CA certificate")]
    SetUpTls(#[source] reqwest::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// TLS through rustls with ring (the provider kube already uses), installed once per process.
fn use_ring() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

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
    /// A client for `base` (`http://` or `https://`), trusting the system's certificate authorities.
    pub fn new(base: &str, token: Option<String>) -> Self {
        use_ring();
        Self { http: reqwest::Client::new(), base: base.trim_end_matches('/').to_string(), token }
    }

    /// [`Client::new`], also trusting the certificate authorities in `ca_pem` (a PEM bundle: a
    /// private CA).
    pub fn with_ca_cert(base: &str, token: Option<String>, ca_pem: &[u8]) -> Result<Self> {
        use_ring();
        let certs = reqwest::Certificate::from_pem_bundle(ca_pem).map_err(Error::ReadCaCertificate)?;
        if certs.is_empty() {
            return Err(Error::NoCaCertificate);
        }
        let http = reqwest::Client::builder().tls_certs_merge(certs).build().map_err(Error::SetUpTls)?;
        Ok(Self { http, base: base.trim_end_matches('/').to_string(), token })
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
        // Anything but tuna's error body (a proxy's page, an empty 405) still gives a sentence.
        let (message, field, problems) = match response.json::<ErrorBody>().await {
            Ok(ErrorBody { error }) => (error.message, error.field, error.problems.unwrap_or_default()),
            Err(_) => ("the server gave no reason".to_string(), None, Vec::new()),
        };
        Err(Error::Api { status, message, field, problems })
    }

    /// Sends the request and reads the answer as `T`.
    async fn answer<T: DeserializeOwned>(&self, url: String, builder: RequestBuilder) -> Result<T> {
        let response = self.send(url.clone(), builder).await?;
        response.json().await.map_err(|source| Error::Decode { url, source })
    }

    /// A request without a body.
    async fn call<T: DeserializeOwned>(&self, method: Method, path: &str) -> Result<T> {
        let (url, builder) = self.request(method, path);
        self.answer(url, builder).await
    }

    /// A request with a JSON body.
    async fn call_with<T: DeserializeOwned>(&self, method: Method, path: &str, body: &impl Serialize) -> Result<T> {
        let (url, builder) = self.request(method, path);
        self.answer(url, builder.json(body)).await
    }

    /// Creates an experiment from a document (YAML or JSON text).
    pub async fn submit(&self, document: String) -> Result<Experiment> {
        let (url, builder) = self.request(Method::POST, "/api/v1/experiments");
        self.answer(url, builder.header("content-type", "application/yaml").body(document)).await
    }

    pub async fn list(&self) -> Result<ExperimentList> {
        self.call(Method::GET, "/api/v1/experiments").await
    }

    pub async fn get(&self, name: &str) -> Result<Experiment> {
        let name = &segment(name);
        self.call(Method::GET, &format!("/api/v1/experiments/{name}")).await
    }

    pub async fn leaderboard(&self, name: &str, top: Option<usize>) -> Result<Leaderboard> {
        let name = &segment(name);
        let query = top.map(|n| format!("?top={n}")).unwrap_or_default();
        self.call(Method::GET, &format!("/api/v1/experiments/{name}/leaderboard{query}")).await
    }

    /// Every trial, read page by page.
    pub async fn trials(&self, name: &str) -> Result<TrialList> {
        let name = &segment(name);
        let mut all = TrialList { trials: Vec::new(), next: None, revision: None, full: None };
        let mut after = String::new();
        loop {
            let path = format!("/api/v1/experiments/{name}/trials?limit=10000{after}");
            let page: TrialList = self.call(Method::GET, &path).await?;
            all.trials.extend(page.trials);
            match page.next {
                Some(next) => after = format!("&after={next}"),
                None => return Ok(all),
            }
        }
    }

    /// A trial's output; with `follow` the response streams until the trial ends.
    pub async fn logs(&self, name: &str, trial: &str, follow: bool) -> Result<reqwest::Response> {
        let name = &segment(name);
        let trial = &segment(trial);
        let (url, builder) =
            self.request(Method::GET, &format!("/api/v1/experiments/{name}/trials/{trial}/logs?follow={follow}"));
        self.send(url, builder).await
    }

    pub async fn stop(&self, name: &str) -> Result<Experiment> {
        let name = &segment(name);
        self.call(Method::POST, &format!("/api/v1/experiments/{name}/stop")).await
    }

    pub async fn resume(&self, name: &str, max_trials: Option<u32>) -> Result<Experiment> {
        let name = &segment(name);
        let body = ResumeRequest { max_trials, ..Default::default() };
        self.call_with(Method::POST, &format!("/api/v1/experiments/{name}/resume"), &body).await
    }

    /// Deleted (200), or still stopping its trials (202).
    pub async fn delete(&self, name: &str) -> Result<DeleteAnswer> {
        let name = &segment(name);
        self.call(Method::DELETE, &format!("/api/v1/experiments/{name}")).await
    }

    /// Promotes `trial` (the best when `None`); waits until it is served.
    pub async fn promote(&self, name: &str, trial: Option<&str>) -> Result<PromoteAnswer> {
        let name = &segment(name);
        let body = PromoteRequest { trial: trial.map(String::from) };
        self.call_with(Method::POST, &format!("/api/v1/experiments/{name}/promote"), &body).await
    }

    /// Serves an earlier version again (`None`: the one before the current).
    pub async fn rollback(&self, name: &str, to: Option<&str>) -> Result<PromoteAnswer> {
        let name = &segment(name);
        let body = RollbackRequest { to: to.map(|v| serde_json::Value::String(v.to_string())) };
        self.call_with(Method::POST, &format!("/api/v1/experiments/{name}/rollback"), &body).await
    }

    pub async fn promotions(&self, name: &str) -> Result<PromotionHistory> {
        let name = &segment(name);
        self.call(Method::GET, &format!("/api/v1/experiments/{name}/promotions")).await
    }

    /// Plot-ready data: `kind` is `history`, `parameters`, `importance` or `intermediate`.
    pub async fn plot<T: DeserializeOwned>(&self, name: &str, kind: &str) -> Result<T> {
        self.call(Method::GET, &format!("/api/v1/experiments/{name}/plots/{kind}")).await
    }

    /// Ask: up to `count` new trials of an external experiment.
    pub async fn suggest(&self, name: &str, count: usize) -> Result<Suggestions> {
        let name = &segment(name);
        self.call_with(Method::POST, &format!("/api/v1/experiments/{name}/suggestions"), &AskRequest { count }).await
    }

    /// Tell: a trial's final metrics.
    pub async fn complete(&self, name: &str, trial: &str, metrics: BTreeMap<String, f64>) -> Result<TellAnswer> {
        let name = &segment(name);
        let trial = &segment(trial);
        let path = format!("/api/v1/experiments/{name}/trials/{trial}/complete");
        self.call_with(Method::POST, &path, &TellRequest { metrics, ..Default::default() }).await
    }

    /// Report: an external trial's values at `step`; whether the early-stopping rule stopped it
    /// (it has then ended `EarlyStopped`, and takes no tell).
    pub async fn report(&self, name: &str, trial: &str, step: i64, metrics: BTreeMap<String, f64>) -> Result<bool> {
        let path = format!("/api/v1/experiments/{name}/trials/{trial}/report");
        let answer: PushAnswer = self.call_with(Method::POST, &path, &ReportRequest { step, metrics }).await?;
        Ok(answer.should_stop)
    }
}

/// A name as one path segment: a custom resource's experiment is `namespace/name`, whose `/` must
/// not split the path (the server decodes `%2F` back).
fn segment(name: &str) -> String {
    name.replace('%', "%25").replace('/', "%2F")
}
