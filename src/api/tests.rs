use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;

use super::harness::Api;

fn api(token: Option<&str>) -> Api {
    Api::new(token, 3)
}

impl Api {
    async fn call(&self, method: &str, uri: &str, body: &str, bearer: Option<&str>) -> (StatusCode, Value) {
        let (status, bytes) = self.send(method, uri, body, bearer).await;
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into())))
    }
}

impl Api {
    /// Creates the experiment and returns its spec with a search built as the server builds it
    /// (same seed), to compare the API's suggestions against.
    async fn create_with_reference(
        &self,
        document: &Value,
    ) -> (crate::spec::ExperimentSpec, Box<dyn crate::search::Search>) {
        let (status, created) = self.call("POST", "/api/v1/experiments", &document.to_string(), None).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let spec: crate::spec::ExperimentSpec = serde_json::from_value(created["spec"].clone()).unwrap();
        let reference = crate::search::build(&spec, created["status"]["seed"].as_u64().unwrap()).unwrap();
        (spec, reference)
    }
}

fn external(name: &str, max_trials: u32) -> String {
    json!({
        "apiVersion": "tuna.dev/v1alpha1", "kind": "Experiment", "metadata": {"name": name},
        "spec": {"objective": {"metric": "value", "goal": "minimize"}, "algorithm": {"name": "random", "seed": 1},
                 "maxTrials": max_trials, "parallelTrials": 2, "executor": "external",
                 "parameters": [{"name": "x", "type": "double", "min": 0, "max": 1}]}
    })
    .to_string()
}

#[tokio::test]
async fn create_answers_201_then_409_for_the_same_name() {
    let api = api(None);
    let (status, body) = api.call("POST", "/api/v1/experiments", &external("e", 3), None).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["kind"], "Experiment");
    assert_eq!(body["status"]["phase"], "Pending");
    let (status, body) = api.call("POST", "/api/v1/experiments", &external("e", 3), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "Conflict");
}

#[tokio::test]
async fn an_invalid_document_gets_422_with_every_problem_at_its_field() {
    let api = api(None);
    let yaml = "apiVersion: tuna.dev/v1alpha1\nkind: Experiment\nmetadata: {name: why}\nspec:\n  objective: {metric: v, goal: minimize}\n  maxTrials: 0\n  parameters: [{name: x, type: int, min: 5, max: 1}]\n";
    let (status, body) = api.call("POST", "/api/v1/experiments", yaml, None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> =
        body["error"]["problems"].as_array().unwrap().iter().map(|p| p["field"].as_str().unwrap()).collect();
    assert!(fields.contains(&"spec.parameters[0].min") && fields.contains(&"spec.maxTrials"), "{fields:?}");
    assert_eq!(body["error"]["field"], fields[0]);
    let (status, _) = api.call("GET", "/api/v1/experiments/why", "", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was stored");
}

#[tokio::test]
async fn ask_stays_within_parallel_trials_and_max_trials_and_tell_records_the_objective() {
    let api = api(None);
    api.call("POST", "/api/v1/experiments", &external("e", 3), None).await;
    let ask = |count: u32| {
        let api = &api;
        async move {
            let (status, body) =
                api.call("POST", "/api/v1/experiments/e/suggestions", &format!(r#"{{"count": {count}}}"#), None).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["trials"].as_array().unwrap().len()
        }
    };
    assert_eq!(ask(5).await, 2, "parallelTrials: 2 open at most");
    assert_eq!(ask(5).await, 0, "both still open");
    let (status, body) =
        api.call("POST", "/api/v1/experiments/e/trials/e-0001/complete", r#"{"metrics": {"value": 0.25}}"#, None).await;
    assert_eq!((status, body["phase"].as_str()), (StatusCode::OK, Some("Succeeded")));
    assert_eq!(body["objective"], 0.25);
    assert_eq!(ask(5).await, 1, "3 in all");
    let (status, _) =
        api.call("POST", "/api/v1/experiments/e/trials/e-0001/complete", r#"{"metrics": {"value": 1}}"#, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "a finished trial takes no second result");
    let (status, body) = api
        .call("POST", "/api/v1/experiments/e/trials/e-0002/complete", r#"{"state": "failed", "reason": "OOM"}"#, None)
        .await;
    assert_eq!((status, body["phase"].as_str()), (StatusCode::OK, Some("Failed")));
    api.call("POST", "/api/v1/experiments/e/trials/e-0000/complete", r#"{"metrics": {"value": 2}}"#, None).await;
    assert_eq!(ask(5).await, 0, "the budget is spent");
    let (status, _) = api.call("POST", "/api/v1/experiments/e/suggestions", r#"{"count": 0}"#, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_server_token_guards_every_api_route() {
    let api = api(Some("s3cret"));
    let (status, body) = api.call("GET", "/api/v1/experiments", "", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "Unauthorized");
    assert_eq!(api.call("GET", "/api/v1/experiments", "", Some("wrong")).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(api.call("GET", "/api/v1/experiments", "", Some("s3cret")).await.0, StatusCode::OK);
    assert_eq!(api.call("GET", "/healthz", "", None).await.0, StatusCode::OK, "probes need no token");
}

#[tokio::test]
async fn a_push_needs_the_trials_own_token_and_an_open_trial() {
    let api = api(Some("s3cret"));
    api.call("POST", "/api/v1/experiments", &external("e", 3), Some("s3cret")).await;
    api.call("POST", "/api/v1/experiments/e/suggestions", r#"{"count": 2}"#, Some("s3cret")).await;
    let push = r#"{"metrics": {"value": 0.5}, "step": 1}"#;
    let uri = "/api/v1/experiments/e/trials/e-0000/metrics";
    let own = api.state.trial_token("e", "e-0000");
    let other = api.state.trial_token("e", "e-0001");
    let (status, body) = api.call("POST", uri, push, Some(&own)).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"shouldStop": false})));
    assert_eq!(api.call("POST", uri, push, Some(&other)).await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        api.call("POST", uri, push, Some("s3cret")).await.0,
        StatusCode::FORBIDDEN,
        "the server token is no trial's"
    );
    assert_eq!(api.call("POST", uri, push, None).await.0, StatusCode::UNAUTHORIZED);
    let (_, body) = api.call("POST", "/api/v1/experiments/e/trials/e-0000/complete", "{}", Some("s3cret")).await;
    assert_eq!(body["objective"], 0.5, "the pushed value is the trial's result");
    assert_eq!(api.call("POST", uri, push, Some(&own)).await.0, StatusCode::CONFLICT, "the trial has finished");
    assert_eq!(api.call("GET", "/api/v1/experiments", "", Some(&own)).await.0, StatusCode::UNAUTHORIZED, "no reads");
}

#[tokio::test]
async fn openapi_names_every_route_and_every_named_route_exists() {
    let api = api(None);
    let (_, doc) = api.call("GET", "/api/v1/openapi.json", "", None).await;
    for (method, path, _) in ROUTES {
        assert!(doc["paths"][*path][*method].is_object(), "{method} {path} is not in the document");
        let uri = path.replace("{name}", "nope").replace("{trial}", "nope-0000");
        let (status, body) = api.call(&method.to_uppercase(), &uri, "{}", None).await;
        let unrouted = status == StatusCode::METHOD_NOT_ALLOWED
            || body["error"]["message"].as_str().is_some_and(|m| m.starts_with("no such route"));
        assert!(!unrouted, "{method} {path} is documented but not served ({status})");
    }
    assert_eq!(
        doc["paths"].as_object().unwrap().values().map(|p| p.as_object().unwrap().len()).sum::<usize>(),
        ROUTES.len()
    );
    assert_eq!(super::openapi::undescribed(), Vec::<String>::new(), "every route has its operation");
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let api = api(None);
    let big = "x".repeat(BODY_LIMIT + 1);
    let (status, _) = api.call("POST", "/api/v1/experiments", &big, None).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn a_suggestion_prepared_after_a_tell_is_the_one_the_search_computes_on_the_spot() {
    let api = api(None);
    let document = json!({
        "apiVersion": "tuna.dev/v1alpha1", "kind": "Experiment", "metadata": {"name": "b"},
        "spec": {"objective": {"metric": "value", "goal": "minimize"},
                 "algorithm": {"name": "bayesian", "seed": 5, "settings": {"initialPoints": 3}},
                 "maxTrials": 8, "executor": "external",
                 "parameters": [{"name": "x", "type": "double", "min": 0, "max": 1},
                                {"name": "n", "type": "int", "min": 1, "max": 4}]}
    });
    let (_, mut reference) = api.create_with_reference(&document).await;
    let mut history = Vec::new();
    let mut prepared_uses = 0;
    for k in 0..7 {
        // Every other ask waits for the tell's background preparation; the rest race it.
        if k % 2 == 1 {
            let slot = api.state.ask_slot("b");
            for _ in 0..2000 {
                if slot.lock().await.prepared.is_some() {
                    prepared_uses += 1;
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
        let (status, body) = api.call("POST", "/api/v1/experiments/b/suggestions", r#"{"count": 1}"#, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let trial = &body["trials"][0];
        let parameters: crate::space::Assignment = serde_json::from_value(trial["parameters"].clone()).unwrap();
        let expected = reference.suggest(&history, 1).unwrap();
        assert_eq!(vec![parameters.clone()], expected, "trial {k}");
        let value = (k as f64 * 0.7).sin();
        let path = format!("/api/v1/experiments/b/trials/{}/complete", trial["name"].as_str().unwrap());
        let (status, _) = api.call("POST", &path, &json!({"metrics": {"value": value}}).to_string(), None).await;
        assert_eq!(status, StatusCode::OK);
        history.push(crate::search::Past { parameters, outcome: crate::search::Outcome::Loss(value) });
    }
    assert_eq!(prepared_uses, 3, "three asks found their suggestion prepared");
    // A suggestion prepared before the experiment ended is not handed out after.
    let slot = api.state.ask_slot("b");
    while slot.lock().await.prepared.is_none() {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let stop = |r: &mut crate::store::ExperimentRecord| {
        r.experiment.status.get_or_insert_with(Default::default).phase = crate::spec::ExperimentPhase::Stopped;
    };
    api.state.store.update_experiment("b", crate::store::Durability::Lazy, stop).unwrap();
    let (status, body) = api.call("POST", "/api/v1/experiments/b/suggestions", r#"{"count": 1}"#, None).await;
    assert_eq!((status, body["trials"].as_array().map(Vec::len)), (StatusCode::OK, Some(0)), "{body}");
}

#[tokio::test]
async fn a_trial_written_after_the_preparation_makes_the_ask_compute_afresh() {
    let api = api(None);
    let document = json!({
        "apiVersion": "tuna.dev/v1alpha1", "kind": "Experiment", "metadata": {"name": "w"},
        "spec": {"objective": {"metric": "value", "goal": "minimize"},
                 "algorithm": {"name": "bayesian", "seed": 2, "settings": {"initialPoints": 2}},
                 "maxTrials": 6, "parallelTrials": 2, "executor": "external",
                 "parameters": [{"name": "x", "type": "double", "min": 0, "max": 1}]}
    });
    let (spec, mut reference) = api.create_with_reference(&document).await;
    let ask = |count: usize| {
        let api = &api;
        async move {
            let (_, body) =
                api.call("POST", "/api/v1/experiments/w/suggestions", &json!({"count": count}).to_string(), None).await;
            body["trials"].as_array().unwrap().clone()
        }
    };
    let tell = |trial: &str, value: f64| {
        let api = &api;
        let path = format!("/api/v1/experiments/w/trials/{trial}/complete");
        async move { api.call("POST", &path, &json!({"metrics": {"value": value}}).to_string(), None).await }
    };
    for (k, t) in ask(2).await.iter().enumerate() {
        tell(t["name"].as_str().unwrap(), k as f64).await;
    }
    let open = ask(2).await;
    tell(open[0]["name"].as_str().unwrap(), 0.5).await;
    let slot = api.state.ask_slot("w");
    while slot.lock().await.prepared.is_none() {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    // The other open trial fails behind the API's back (as a timeout would fail it).
    let mut failed = api.state.store.trial("w", 3).unwrap().unwrap();
    failed.move_to(crate::trial::TrialPhase::Failed);
    api.state.store.put_trial(&failed).unwrap();
    let trials = api.state.store.trials("w").unwrap();
    let expected = reference.suggest(&crate::experiment::history(&spec, &trials), 1).unwrap();
    let got = ask(1).await;
    let parameters: crate::space::Assignment = serde_json::from_value(got[0]["parameters"].clone()).unwrap();
    assert_eq!(vec![parameters], expected);
    assert_eq!(got[0]["name"], "w-0004");
}

/// A random search that records what the API asks of it ahead of time.
struct Recording {
    inner: crate::search::Random,
    ahead: Arc<std::sync::Mutex<Vec<Vec<crate::search::Past>>>>,
}

impl crate::search::Search for Recording {
    fn suggest(
        &mut self,
        history: &[crate::search::Past],
        count: usize,
    ) -> crate::search::Result<Vec<crate::space::Assignment>> {
        self.inner.suggest(history, count)
    }

    fn anticipate(&mut self, history: &[crate::search::Past]) {
        self.ahead.lock().unwrap().push(history.to_vec());
    }

    fn costly(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn after_an_ask_the_search_anticipates_with_the_handed_out_trials_pending() {
    let api = api(None);
    let (spec, _) = api.create_with_reference(&serde_json::from_str(&external("r", 5)).unwrap()).await;
    let ahead = Arc::new(std::sync::Mutex::new(Vec::new()));
    let inner = crate::search::Random::new(crate::space::Space::new(&spec.parameters), 1);
    api.state.ask_slot("r").lock().await.search = Some(Box::new(Recording { inner, ahead: Arc::clone(&ahead) }));
    let (status, body) = api.call("POST", "/api/v1/experiments/r/suggestions", r#"{"count": 2}"#, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for _ in 0..2000 {
        if !ahead.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let seen = ahead.lock().unwrap().clone();
    let handed: Vec<crate::space::Assignment> = body["trials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| serde_json::from_value(t["parameters"].clone()).unwrap())
        .collect();
    assert_eq!(seen.len(), 1, "one anticipation per ask");
    let pending: Vec<_> = seen[0].iter().map(|p| (p.parameters.clone(), p.outcome.clone())).collect();
    assert_eq!(pending, handed.into_iter().map(|a| (a, crate::search::Outcome::Pending)).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_preparation_for_an_experiment_replaced_since_its_tell_builds_no_search() {
    // A tell prepares with the record it read; if the experiment was deleted and created again
    // (or changed) meanwhile, its emptied slot must not get a search built from the old spec.
    let api = api(None);
    let document = json!({
        "apiVersion": "tuna.dev/v1alpha1", "kind": "Experiment", "metadata": {"name": "r"},
        "spec": {"objective": {"metric": "value", "goal": "minimize"},
                 "algorithm": {"name": "bayesian", "seed": 4}, "maxTrials": 5, "executor": "external",
                 "parameters": [{"name": "x", "type": "double", "min": 0, "max": 1}]}
    });
    let (status, _) = api.call("POST", "/api/v1/experiments", &document.to_string(), None).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = api.call("POST", "/api/v1/experiments/r/suggestions", r#"{"count": 1}"#, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let record = api.state.experiment("r").unwrap();
    let trial = api.state.trial("r", body["trials"][0]["name"].as_str().unwrap()).unwrap();
    assert!(api.state.ask_slot("r").lock().await.search.is_some(), "the ask built the search");
    api.state.forget_search("r");
    let state = Arc::clone(&api.state);
    let _ = trial;
    tokio::task::spawn_blocking(move || super::asktell::prepare(&state, &record)).await.unwrap();
    let slot = api.state.ask_slot("r");
    let asker = slot.lock().await;
    assert!(asker.search.is_none() && asker.prepared.is_none(), "the next ask builds the search");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_tells_for_one_trial_record_exactly_one_result() {
    let api = Arc::new(api(None));
    let (status, _) = api.call("POST", "/api/v1/experiments", &external("race", 400), None).await;
    assert_eq!(status, StatusCode::CREATED);
    let mut wins = Vec::new();
    for round in 0..200 {
        let (status, asked) = api.call("POST", "/api/v1/experiments/race/suggestions", r#"{"count": 1}"#, None).await;
        assert_eq!(status, StatusCode::OK, "{asked}");
        let trial = asked["trials"][0]["name"].as_str().unwrap().to_string();
        let uri = format!("/api/v1/experiments/race/trials/{trial}/complete");
        let tells: Vec<_> = [1.0, 2.0]
            .into_iter()
            .map(|v| {
                let (api, uri) = (Arc::clone(&api), uri.clone());
                tokio::spawn(async move {
                    api.call("POST", &uri, &format!(r#"{{"metrics": {{"value": {v}}}}}"#), None).await
                })
            })
            .collect();
        let mut answers = Vec::new();
        for t in tells {
            answers.push(t.await.unwrap());
        }
        let ok: Vec<&Value> = answers.iter().filter(|(s, _)| *s == StatusCode::OK).map(|(_, b)| b).collect();
        assert_eq!(ok.len(), 1, "round {round}: exactly one tell wins: {answers:?}");
        assert!(answers.iter().any(|(s, _)| *s == StatusCode::CONFLICT), "the other is refused: {answers:?}");
        let stored = api.state.store.trial("race", round).unwrap().unwrap();
        assert_eq!(stored.objective, ok[0]["objective"].as_f64(), "round {round}: the stored result is the winner's");
        let observations = api.state.store.observations("race", round).unwrap();
        assert_eq!(observations.len(), 1, "round {round}: only the winner's metrics are kept: {observations:?}");
        wins.push(stored.objective);
    }
    assert_eq!(wins.len(), 200);
}

#[tokio::test]
async fn framework_rejections_come_back_in_the_one_error_shape() {
    let api = api(None);
    api.call("POST", "/api/v1/experiments", &external("e", 3), None).await;
    let cases: Vec<(&str, String, Vec<u8>, StatusCode, &str)> = vec![
        ("GET", "/api/v1/experiments/e/leaderboard?top=lots".into(), vec![], StatusCode::BAD_REQUEST, "BadRequest"),
        ("POST", "/api/v1/experiments".into(), vec![0xff, 0xfe, b'{'], StatusCode::BAD_REQUEST, "BadRequest"),
        ("POST", "/api/v1/experiments".into(), vec![b' '; BODY_LIMIT + 1], StatusCode::PAYLOAD_TOO_LARGE, "TooLarge"),
        ("PUT", "/api/v1/experiments/e".into(), vec![], StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed"),
        ("GET", "/api/v1/nothing".into(), vec![], StatusCode::NOT_FOUND, "NotFound"),
    ];
    for (method, uri, body, status, code) in cases {
        let request = Request::builder().method(method).uri(&uri).body(Body::from(body)).unwrap();
        let response = api.router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), status, "{method} {uri}");
        let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_string());
        assert_eq!(content_type.as_deref(), Some("application/json"), "{method} {uri}");
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let parsed: crate::api::types::ErrorBody = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(format!("{:?}", parsed.error.code), code, "{method} {uri}");
        assert!(!parsed.error.message.is_empty(), "{method} {uri}");
    }
}

#[tokio::test]
async fn a_token_is_good_for_one_incarnation_and_one_attempt_only() {
    let api = api(None);
    let push = r#"{"metrics": {"value": 0.5}}"#;
    let uri = "/api/v1/experiments/e/trials/e-0000/metrics";
    api.call("POST", "/api/v1/experiments", &external("e", 3), None).await;
    api.call("POST", "/api/v1/experiments/e/suggestions", r#"{"count": 1}"#, None).await;
    let old = api.state.trial_token("e", "e-0000");
    assert_eq!(api.call("POST", uri, push, Some(&old)).await.0, StatusCode::OK);
    // Deleted and created again under the same name: a new experiment, whose trial e-0000 the
    // old token must not reach.
    api.state.store.delete_experiment("e").unwrap();
    api.state.forget_search("e");
    api.call("POST", "/api/v1/experiments", &external("e", 3), None).await;
    api.call("POST", "/api/v1/experiments/e/suggestions", r#"{"count": 1}"#, None).await;
    assert_eq!(api.call("POST", uri, push, Some(&old)).await.0, StatusCode::FORBIDDEN, "the old incarnation's token");
    let new = api.state.trial_token("e", "e-0000");
    assert_ne!(new, old);
    assert_eq!(api.call("POST", uri, push, Some(&new)).await.0, StatusCode::OK);
    // The trial's next attempt gets a token of its own; the first attempt's stops working.
    let mut trial = api.state.store.trial("e", 0).unwrap().unwrap();
    trial.attempts = 2;
    api.state.store.put_trial(&trial).unwrap();
    assert_eq!(api.call("POST", uri, push, Some(&new)).await.0, StatusCode::FORBIDDEN, "an ended attempt's token");
    assert_eq!(api.call("POST", uri, push, Some(&api.state.trial_token("e", "e-0000"))).await.0, StatusCode::OK);
}

#[tokio::test]
async fn failed_authentications_past_the_allowance_are_told_to_wait() {
    let api = api(Some("s3cret"));
    let mut statuses = Vec::new();
    for _ in 0..30 {
        statuses.push(api.call("GET", "/api/v1/experiments", "", Some("guess")).await.0);
    }
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::UNAUTHORIZED).count(), FAILED_AUTH_PER_SECOND as usize);
    assert!(statuses.iter().skip(FAILED_AUTH_PER_SECOND as usize).all(|s| *s == StatusCode::TOO_MANY_REQUESTS));
    assert_eq!(api.call("GET", "/api/v1/experiments", "", Some("s3cret")).await.0, StatusCode::OK, "the right token");
}

#[tokio::test]
async fn the_trial_list_is_paginated_with_a_cursor() {
    let api = api(None);
    api.call("POST", "/api/v1/experiments", &external("p", 10), None).await;
    for _ in 0..3 {
        api.call("POST", "/api/v1/experiments/p/suggestions", r#"{"count": 2}"#, None).await;
        for i in 0..2 {
            let trials = api.state.store.trials("p").unwrap();
            let open: Vec<_> = trials.iter().filter(|t| !t.phase.is_finished()).collect();
            if let Some(t) = open.get(i.min(open.len().saturating_sub(1))) {
                let uri = format!("/api/v1/experiments/p/trials/{}/complete", t.name);
                api.call("POST", &uri, r#"{"metrics": {"value": 1}}"#, None).await;
            }
        }
    }
    let (status, first) = api.call("GET", "/api/v1/experiments/p/trials?limit=4", "", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["trials"].as_array().unwrap().len(), 4);
    let next = first["next"].as_u64().expect("more follow");
    let (_, rest) = api.call("GET", &format!("/api/v1/experiments/p/trials?limit=4&after={next}"), "", None).await;
    assert_eq!(rest["trials"].as_array().unwrap().len(), 2);
    assert!(rest.get("next").is_none(), "the last page says so");
    let (status, _) = api.call("GET", "/api/v1/experiments/p/trials?limit=0", "", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_server_warms_its_open_ask_tell_experiments_before_it_is_ready() {
    let api = api(None);
    api.call("POST", "/api/v1/experiments", &external("warm", 10), None).await;
    api.call("POST", "/api/v1/experiments", &external("done", 10), None).await;
    api.state
        .store
        .update_experiment("done", crate::store::Durability::Flushed, |r| {
            r.experiment.status.get_or_insert_with(Default::default).phase = crate::spec::ExperimentPhase::Succeeded;
        })
        .unwrap();
    // A new server on the same store: nothing built until warmed.
    let restarted = Arc::new(ApiState::new(api.state.store.clone(), None, TrialSecret::from_bytes([3; 32]), 0));
    assert!(restarted.ask_slot("warm").try_lock().unwrap().search.is_none());
    let state = Arc::clone(&restarted);
    let warmed = tokio::task::spawn_blocking(move || warm(&state)).await.unwrap().unwrap();
    assert_eq!(warmed, 1, "the open one only");
    assert!(restarted.ask_slot("warm").try_lock().unwrap().search.is_some());
    assert!(restarted.ask_slot("done").try_lock().unwrap().search.is_none());
}

#[tokio::test]
async fn metrics_serve_the_process_instruments_as_openmetrics() {
    // The instruments are process-wide and other tests here move them at the same time: their
    // values are checked on instances of their own (instruments_tests) and through a real server
    // (tests/serve.rs); here, that the route serves them, families and types.
    let api = api(None);
    api.call("POST", "/api/v1/experiments", &external("metrics-route", 10), None).await;
    let (status, text) = api.call("GET", "/metrics", "", None).await;
    assert_eq!(status, StatusCode::OK);
    let text = text.as_str().unwrap();
    assert!(text.contains("# TYPE tuna_experiments gauge"), "{text}");
    assert!(text.contains("# TYPE tuna_controller_reconciles counter"), "{text}");
    assert!(text.contains("tuna_controller_reconciles_total{result=\"error\"} "), "at 0 from the start: {text}");
    assert!(text.contains("# TYPE tuna_api_request_duration_seconds histogram"), "{text}");
    assert!(text.contains("route=\"/api/v1/experiments\",method=\"POST\",status=\"2xx\""), "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");
}

/// `GET …/trials?since=REV` answers only the trials written after REV (the dashboard's table
/// merges them by index); an unknown revision gets a full read, page by page as without `since`.
#[tokio::test]
async fn trials_since_a_revision_are_only_those_written_after_it() {
    let api = api(None);
    api.open_external("t", 3).await;
    let (status, first) = api.call("GET", "/api/v1/experiments/t/trials", "", None).await;
    assert_eq!((status, first["trials"].as_array().map(Vec::len)), (StatusCode::OK, Some(3)), "{first}");
    assert!(first.get("full").is_none(), "no since, no full: {first}");
    let since = |revision: &Value| format!("/api/v1/experiments/t/trials?since={}", revision.as_str().unwrap());
    let (_, nothing) = api.call("GET", &since(&first["revision"]), "", None).await;
    assert_eq!((nothing["full"].clone(), nothing["trials"].clone()), (json!(false), json!([])), "{nothing}");

    let tell = "/api/v1/experiments/t/trials/t-0002/complete";
    let (status, told) = api.call("POST", tell, r#"{"metrics": {"value": 0.25}}"#, None).await;
    assert_eq!(status, StatusCode::OK, "{told}");
    let (_, delta) = api.call("GET", &since(&first["revision"]), "", None).await;
    assert_eq!(delta["full"], false, "{delta}");
    let names: Vec<&str> = delta["trials"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["t-0002"], "only the told trial: {delta}");
    assert_eq!(delta["trials"][0]["phase"], "Succeeded");
    assert_ne!(delta["revision"], first["revision"]);
    let (_, after) = api.call("GET", &since(&delta["revision"]), "", None).await;
    assert_eq!(after["trials"], json!([]), "nothing after the latest: {after}");

    let (status, all) =
        api.call("GET", "/api/v1/experiments/t/trials?since=0123456789abcdef-1&limit=2", "", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((all["full"].clone(), all["trials"].as_array().map(Vec::len)), (json!(true), Some(2)), "{all}");
    assert_eq!(all["next"], 1, "a full read pages as without since: {all}");
    let (status, bad) = api.call("GET", "/api/v1/experiments/t/trials?since=soon", "", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(bad["error"]["field"], "since", "{bad}");
}
