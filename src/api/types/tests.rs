//! The server's JSON read into the client's types: answers of the real router (`oneshot`, no
//! socket) read from their bytes as the client reads them, and the exact shapes the handlers
//! wrote with `json!` before these structs existed.

use std::sync::Arc;

use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::*;
use crate::api::harness::Api;
use crate::store::Desired;

fn api() -> Api {
    Api::new(None, 5)
}

/// The calls of these tests: answers read as the client's types.
trait Typed {
    async fn call<T: DeserializeOwned>(&self, method: &str, uri: &str, body: &str) -> (StatusCode, T);
    async fn call_as<T: DeserializeOwned>(
        &self,
        method: &str,
        uri: &str,
        body: &str,
        bearer: Option<&str>,
    ) -> (StatusCode, T);
    async fn create(&self) -> Experiment;
    async fn told(&self);
}

impl Typed for Api {
    /// The answer's status and its body read as `T`, straight from the bytes.
    async fn call<T: DeserializeOwned>(&self, method: &str, uri: &str, body: &str) -> (StatusCode, T) {
        self.call_as(method, uri, body, None).await
    }

    async fn call_as<T: DeserializeOwned>(
        &self,
        method: &str,
        uri: &str,
        body: &str,
        bearer: Option<&str>,
    ) -> (StatusCode, T) {
        let (status, bytes) = self.send(method, uri, body, bearer).await;
        let text = String::from_utf8_lossy(&bytes);
        (status, serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{method} {uri}: {e} in {text}")))
    }

    /// Creates external experiment `e` (random search, maxTrials 3, 2 in parallel).
    async fn create(&self) -> Experiment {
        let document = json!({
            "apiVersion": "tuna.dev/v1alpha1", "kind": "Experiment", "metadata": {"name": "e"},
            "spec": {"objective": {"metric": "value", "goal": "minimize"}, "algorithm": {"name": "random", "seed": 1},
                     "maxTrials": 3, "parallelTrials": 2, "executor": "external",
                     "parameters": [{"name": "x", "type": "double", "min": 0, "max": 1}]}
        });
        let (status, experiment) = self.call("POST", "/api/v1/experiments", &document.to_string()).await;
        assert_eq!(status, StatusCode::CREATED);
        experiment
    }

    /// `e` with two trials asked for: e-0000 pushed 0.5 and told, e-0001 told it failed.
    async fn told(&self) {
        self.create().await;
        let _: (_, Suggestions) = self.call("POST", "/api/v1/experiments/e/suggestions", r#"{"count": 2}"#).await;
        let own = self.state.trial_token("e", "e-0000");
        let push = r#"{"metrics": {"value": 0.5}, "step": 1}"#;
        let _: (_, PushAnswer) =
            self.call_as("POST", "/api/v1/experiments/e/trials/e-0000/metrics", push, Some(&own)).await;
        let _: (_, TellAnswer) = self.call("POST", "/api/v1/experiments/e/trials/e-0000/complete", "{}").await;
        let failed = r#"{"state": "failed", "reason": "OOM"}"#;
        let _: (_, TellAnswer) = self.call("POST", "/api/v1/experiments/e/trials/e-0001/complete", failed).await;
    }
}

fn body(request: &impl Serialize) -> String {
    serde_json::to_string(request).unwrap()
}

fn value(answer: &impl Serialize) -> serde_json::Value {
    serde_json::to_value(answer).unwrap()
}

#[tokio::test]
async fn ask_push_and_tell_answers_read_into_their_types_and_the_clients_requests_are_taken() {
    let api = api();
    assert_eq!(api.create().await.metadata.name.as_deref(), Some("e"));
    let (status, asked): (_, Suggestions) =
        api.call("POST", "/api/v1/experiments/e/suggestions", &body(&AskRequest { count: 5 })).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = asked.trials.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["e-0000", "e-0001"], "parallelTrials: 2");
    assert_eq!(asked.trials[0].parameters, api.state.store.trial("e", 0).unwrap().unwrap().parameters);
    let push = PushRequest { metrics: [("value".to_string(), 0.5)].into(), step: Some(1), artifact: None };
    let own = api.state.trial_token("e", "e-0000");
    let uri = "/api/v1/experiments/e/trials/e-0000/metrics";
    let (status, pushed): (_, PushAnswer) = api.call_as("POST", uri, &body(&push), Some(&own)).await;
    assert_eq!((status, pushed), (StatusCode::OK, PushAnswer { should_stop: false }));
    let (_, told): (_, TellAnswer) =
        api.call("POST", "/api/v1/experiments/e/trials/e-0000/complete", &body(&TellRequest::default())).await;
    let succeeded = TellAnswer { name: "e-0000".into(), phase: TrialPhase::Succeeded, objective: Some(0.5) };
    assert_eq!(told, succeeded, "the pushed value is the trial's result");
    let fail = TellRequest { state: Some("failed".into()), reason: Some("OOM".into()), ..Default::default() };
    let (_, told): (_, TellAnswer) =
        api.call("POST", "/api/v1/experiments/e/trials/e-0001/complete", &body(&fail)).await;
    assert_eq!(told, TellAnswer { name: "e-0001".into(), phase: TrialPhase::Failed, objective: None });
}

#[tokio::test]
async fn every_read_answer_reads_into_its_type_as_the_store_holds_it() {
    let api = api();
    api.told().await;
    let store = &api.state.store;
    let (_, list): (_, ExperimentList) = api.call("GET", "/api/v1/experiments", "").await;
    let names: Vec<(&str, &str, u32)> =
        list.experiments.iter().map(|e| (e.name.as_str(), e.algorithm.as_str(), e.max_trials)).collect();
    assert_eq!(names, [("e", "random", 3)]);
    let (_, trials): (_, TrialList) = api.call("GET", "/api/v1/experiments/e/trials", "").await;
    assert_eq!(trials.trials, store.trials("e").unwrap(), "every field, timestamps and floats exact");
    let (_, view): (_, TrialView) = api.call("GET", "/api/v1/experiments/e/trials/e-0000", "").await;
    assert_eq!(view.trial, store.trial("e", 0).unwrap().unwrap());
    assert_eq!(view.output_dir, None, "an external trial has no folder");
    assert!(view.duration_seconds.is_some_and(|s| s >= 0.0), "{view:?}");
    let (_, raw): (_, serde_json::Value) = api.call("GET", "/api/v1/experiments/e/trials/e-0000", "").await;
    assert_eq!((raw.get("outputDir"), &raw["name"]), (Some(&serde_json::Value::Null), &json!("e-0000")), "{raw}");
    let (_, observed): (_, ObservationList) =
        api.call("GET", "/api/v1/experiments/e/trials/e-0000/observations", "").await;
    assert_eq!(observed.trial, "e-0000");
    assert_eq!(observed.observations, store.observations("e", 0).unwrap());
    let (_, board): (_, Leaderboard) = api.call("GET", "/api/v1/experiments/e/leaderboard", "").await;
    let rows: Vec<(&str, Option<f64>)> = board.trials.iter().map(|r| (r.name.as_str(), r.objective)).collect();
    assert_eq!(rows, [("e-0000", Some(0.5)), ("e-0001", None)]);
    let (_, history): (_, PromotionHistory) = api.call("GET", "/api/v1/experiments/e/promotions", "").await;
    assert_eq!(history, PromotionHistory { experiment: "e".into(), serving: None, promotions: Vec::new() });
}

#[tokio::test]
async fn a_resume_and_a_delete_read_into_their_types() {
    let api = api();
    api.create().await;
    let resume = ResumeRequest { max_trials: Some(4), ..Default::default() };
    let (status, resumed): (_, Experiment) = api.call("POST", "/api/v1/experiments/e/resume", &body(&resume)).await;
    assert_eq!((status, resumed.spec.max_trials), (StatusCode::OK, 4));
    // A stand-in for the controller: it removes the experiment once a delete is asked for.
    let state = Arc::clone(&api.state);
    let controller = tokio::spawn(async move {
        while !state.store.experiment("e").unwrap().is_some_and(|r| r.desired == Desired::Delete) {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        state.store.delete_experiment("e").unwrap();
    });
    let (status, deleted): (_, DeleteAnswer) = api.call("DELETE", "/api/v1/experiments/e", "").await;
    assert_eq!((status, deleted), (StatusCode::OK, DeleteAnswer::Deleted(Deleted { deleted: "e".into() })));
    controller.await.unwrap();
}

#[tokio::test]
async fn error_answers_read_into_the_error_body_with_every_problem() {
    let api = api();
    let yaml = "apiVersion: tuna.dev/v1alpha1\nkind: Experiment\nmetadata: {name: why}\nspec:\n  objective: {metric: v, goal: minimize}\n  maxTrials: 0\n  parameters: [{name: x, type: int, min: 5, max: 1}]\n";
    let (status, invalid): (_, ErrorBody) = api.call("POST", "/api/v1/experiments", yaml).await;
    assert_eq!((status, invalid.error.code), (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::Invalid));
    let problems = invalid.error.problems.unwrap();
    assert!(problems.iter().any(|p| p.field == "spec.maxTrials"), "{problems:?}");
    assert_eq!(invalid.error.field.as_deref(), Some(problems[0].field.as_str()));
    let (status, missing): (_, ErrorBody) = api.call("GET", "/api/v1/experiments/nope", "").await;
    assert_eq!((status, missing.error.code), (StatusCode::NOT_FOUND, ErrorCode::NotFound));
    assert_eq!((missing.error.field, missing.error.problems), (None, None));
    let (_, raw): (_, serde_json::Value) = api.call("GET", "/api/v1/experiments/nope", "").await;
    assert_eq!(
        raw["error"],
        json!({"code": "NotFound", "message": "no experiment named nope", "field": null, "problems": null})
    );
    let (status, bad): (_, ErrorBody) =
        api.call("POST", "/api/v1/experiments/nope/suggestions", r#"{"count": 0}"#).await;
    assert_eq!(
        (status, bad.error.code, bad.error.field.as_deref()),
        (StatusCode::BAD_REQUEST, ErrorCode::BadRequest, Some("count"))
    );
}

#[test]
fn answers_write_the_json_the_handlers_wrote_with_json_macros() {
    let tell = TellAnswer { name: "e-0001".into(), phase: TrialPhase::Failed, objective: None };
    assert_eq!(value(&tell), json!({"name": "e-0001", "phase": "Failed", "objective": null}));
    assert_eq!(value(&PushAnswer { should_stop: false }), json!({"shouldStop": false}));
    let deleting = DeleteAnswer::Deleting(Deleting { deleting: "e".into(), message: "stopping".into() });
    assert_eq!(value(&deleting), json!({"deleting": "e", "message": "stopping"}));
    assert_eq!(value(&DeleteAnswer::Deleted(Deleted { deleted: "e".into() })), json!({"deleted": "e"}));
    let promoted = PromoteAnswer { version: None, message: "kept".into(), serving: None };
    assert_eq!(value(&promoted), json!({"version": null, "message": "kept", "serving": null}));
    let summary = ExperimentSummary {
        name: "e".into(),
        phase: ExperimentPhase::Running,
        algorithm: "grid".into(),
        max_trials: 3,
        trials: TrialCounts::default(),
        best_objective: None,
        start_time: None,
    };
    let expected = json!({"name": "e", "phase": "Running", "algorithm": "grid", "maxTrials": 3,
                          "trials": TrialCounts::default(), "bestObjective": null, "startTime": null});
    assert_eq!(value(&summary), expected);
}

#[test]
fn requests_leave_out_what_the_client_did_not_set() {
    assert_eq!(body(&ResumeRequest::default()), "{}");
    assert_eq!(body(&ResumeRequest { max_trials: Some(9), ..Default::default() }), r#"{"maxTrials":9}"#);
    assert_eq!(body(&PromoteRequest::default()), "{}");
    assert_eq!(body(&RollbackRequest { to: Some(json!("v1")) }), r#"{"to":"v1"}"#);
    assert_eq!(body(&AskRequest { count: 2 }), r#"{"count":2}"#);
    let tell = TellRequest { metrics: [("value".to_string(), 1.5)].into(), ..Default::default() };
    assert_eq!(body(&tell), r#"{"metrics":{"value":1.5}}"#);
    let ask: AskRequest = serde_json::from_str("{}").unwrap();
    assert_eq!(ask.count, 1, "an empty ask asks for one");
}

#[test]
fn an_error_code_this_client_does_not_know_still_reads_with_its_message() {
    let text = r#"{"error": {"code": "SomethingNewer", "message": "slow down", "field": null, "problems": null}}"#;
    let body: ErrorBody = serde_json::from_str(text).unwrap();
    assert_eq!((body.error.code, body.error.message.as_str()), (ErrorCode::Unknown, "slow down"));
}
