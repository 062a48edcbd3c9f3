//! `shouldStop` over HTTP: the report route (ask/tell) and the push route answer from the same
//! early-stopping decision as the experiment loop, stored with the trial.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::super::harness::Api;
use crate::trial::TrialPhase;

async fn call(api: &Api, uri: &str, body: Value, bearer: Option<&str>) -> (StatusCode, Value) {
    let (status, bytes) = api.send("POST", uri, &body.to_string(), bearer).await;
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into())))
}

/// An external experiment minimizing `value` with ASHA (rungs 1 and 3), two trials asked for.
async fn asha() -> Api {
    asha_with(4, 2).await
}

/// The same with `max_trials` trials, `open` of them asked for (and open at once).
async fn asha_with(max_trials: u32, open: usize) -> Api {
    let api = Api::new(None, 5);
    let document = json!({
        "apiVersion": "tuna.dev/v1alpha1", "kind": "Experiment", "metadata": {"name": "e"},
        "spec": {"objective": {"metric": "value", "goal": "minimize"}, "algorithm": {"name": "random", "seed": 1},
                 "maxTrials": max_trials, "parallelTrials": open, "executor": "external",
                 "earlyStopping": {"rule": "asha", "settings": {"minResource": 1, "maxResource": 9}},
                 "parameters": [{"name": "x", "type": "double", "min": 0, "max": 1}]}
    });
    let (status, created) = call(&api, "/api/v1/experiments", document, None).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, asked) = call(&api, "/api/v1/experiments/e/suggestions", json!({"count": open}), None).await;
    assert_eq!((status, asked["trials"].as_array().map(Vec::len)), (StatusCode::OK, Some(open)), "{asked}");
    api
}

#[tokio::test]
async fn a_report_that_falls_behind_is_answered_should_stop_and_ends_the_trial_early_stopped() {
    let api = asha().await;
    let report = |trial: &str| format!("/api/v1/experiments/e/trials/{trial}/report");
    let (status, answer) = call(&api, &report("e-0000"), json!({"step": 1, "metrics": {"value": 0.2}}), None).await;
    assert_eq!((status, answer), (StatusCode::OK, json!({"shouldStop": false})), "the first at rung 1 goes on");
    let (_, answer) = call(&api, &report("e-0001"), json!({"step": 1, "metrics": {"value": 0.9}}), None).await;
    assert_eq!(answer, json!({"shouldStop": true}));
    let stopped = api.state.store.trial("e", 1).unwrap().unwrap();
    assert_eq!(stopped.phase, TrialPhase::EarlyStopped);
    assert_eq!(stopped.message.as_deref(), Some("at step 1: asha: rung 1, not in top 1/3 of 2"));
    assert_eq!((stopped.objective, stopped.last_step), (Some(0.9), Some(1)), "its values are kept");
    let (status, _) = call(&api, &report("e-0001"), json!({"step": 2, "metrics": {"value": 0.1}}), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "a stopped trial takes no more reports");
    let (status, _) = call(&api, "/api/v1/experiments/e/trials/e-0001/complete", json!({}), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "nor a tell");
    let (_, asked) = call(&api, "/api/v1/experiments/e/suggestions", json!({"count": 2}), None).await;
    assert_eq!(asked["trials"].as_array().map(Vec::len), Some(1), "its slot is free again");
}

#[tokio::test]
async fn a_report_without_a_step_or_metrics_is_refused_at_its_field() {
    let api = asha().await;
    let uri = "/api/v1/experiments/e/trials/e-0000/report";
    let (status, answer) = call(&api, uri, json!({"metrics": {"value": 0.2}}), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer.to_string().contains("step"), "{answer}");
    let (status, answer) = call(&api, uri, json!({"step": 1, "metrics": {}}), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer.to_string().contains("metrics"), "{answer}");
}

#[tokio::test]
async fn a_push_that_falls_behind_is_answered_should_stop_and_the_decision_is_stored_with_the_trial() {
    let api = asha().await;
    let push = |trial: &str| format!("/api/v1/experiments/e/trials/{trial}/metrics");
    let (first, second) = (api.state.trial_token("e", "e-0000"), api.state.trial_token("e", "e-0001"));
    let (status, answer) =
        call(&api, &push("e-0000"), json!({"step": 1, "metrics": {"value": 0.2}}), Some(&first)).await;
    assert_eq!((status, answer), (StatusCode::OK, json!({"shouldStop": false})));
    let (_, answer) = call(&api, &push("e-0001"), json!({"step": 1, "metrics": {"value": 0.9}}), Some(&second)).await;
    assert_eq!(answer, json!({"shouldStop": true}));
    let trial = api.state.store.trial("e", 1).unwrap().unwrap();
    assert!(!trial.phase.is_finished(), "the trial ends when its process does");
    assert_eq!(trial.early_stop.map(|d| d.reason), Some("asha: rung 1, not in top 1/3 of 2".to_string()));
    let (_, answer) = call(&api, &push("e-0001"), json!({"metrics": {"value": 0.1}}), Some(&second)).await;
    assert_eq!(answer, json!({"shouldStop": true}), "every later push is told the same");
}

/// The reports kept between judgements decide exactly as a full read of every trial's
/// observations: the same interleaved reports go to two servers, one of which forgets what it
/// kept before each report, and every answer and stored decision agree.
#[tokio::test]
async fn judging_from_the_kept_reports_decides_as_a_full_read_of_every_trial() {
    let (kept, read) = (asha_with(4, 4).await, asha_with(4, 4).await);
    // Four trials' curves at steps 1..9 (rungs 1, 3, 9): early leaders that fade, and late ones.
    let value = |trial: u32, step: u32| {
        let start = [0.5, 0.3, 0.8, 0.4][trial as usize];
        let slope = [0.05, -0.01, 0.09, 0.02][trial as usize];
        start - slope * f64::from(step)
    };
    let (mut stops, mut stopped) = (0, [false; 4]);
    for step in 1..=9u32 {
        // Arrivals in a different order at each rung, so that some trials are judged behind.
        let order = match step {
            1 | 2 => [2u32, 0, 3, 1],
            3..=8 => [0, 3, 1, 2],
            _ => [3, 1, 0, 2],
        };
        for trial in order {
            if stopped[trial as usize] {
                continue;
            }
            let uri = format!("/api/v1/experiments/e/trials/e-000{trial}/report");
            let body = json!({"step": step, "metrics": {"value": value(trial, step)}});
            read.state.reports.0.lock().unwrap().clear();
            let (a, answer) = call(&kept, &uri, body.clone(), None).await;
            let (b, expected) = call(&read, &uri, body, None).await;
            assert_eq!((a, &answer), (b, &expected), "trial {trial} at step {step}");
            if answer == json!({"shouldStop": true}) {
                stopped[trial as usize] = true;
                stops += 1;
            }
        }
    }
    assert!(stops >= 1, "the sequence stops a trial at a rung, so it checks a stop too: {stops}");
    for index in 0..4 {
        let (a, b) = (kept.state.store.trial("e", index).unwrap(), read.state.store.trial("e", index).unwrap());
        assert_eq!(a.map(|t| (t.phase, t.message)), b.map(|t| (t.phase, t.message)), "trial {index}");
    }
}
