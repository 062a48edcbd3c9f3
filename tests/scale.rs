//! A server that stays up under legal but heavy use, end to end over loopback: the real binary,
//! a real store. Every request has a deadline, so a hang fails the test instead of stalling it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed step is a failed test

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use support::server::Server;

/// Longer than any answer takes on a loaded 2-core machine; shorter than "hung".
const ANSWER_WITHIN: Duration = Duration::from_secs(15);

async fn healthy(http: &reqwest::Client, url: &str) {
    let answer = tokio::time::timeout(ANSWER_WITHIN, http.get(format!("{url}/healthz")).send()).await;
    assert!(matches!(answer, Ok(Ok(ref r)) if r.status().is_success()), "/healthz did not answer: {answer:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_trial_ask_and_its_tells_leave_every_route_answering() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), dir.path());
    let client = server.client();
    let http = reqwest::Client::new();
    let doc = json!({"apiVersion": "tuna.dev/v1alpha1", "kind": "Experiment", "metadata": {"name": "wide"},
        "spec": {"objective": {"metric": "value", "goal": "minimize"}, "algorithm": {"name": "random", "seed": 4},
                 "maxTrials": 3000, "parallelTrials": 1000, "executor": "external",
                 "parameters": [{"name": "x", "type": "double", "min": -2, "max": 2}]}});
    client.submit(doc.to_string()).await.unwrap();
    for round in 0..2 {
        let asked = tokio::time::timeout(ANSWER_WITHIN, client.suggest("wide", 1000)).await.expect("ask answers");
        let trials = asked.unwrap().trials;
        assert_eq!(trials.len(), 1000, "round {round}");
        for (i, t) in trials.iter().enumerate() {
            let tell = client.complete("wide", &t.name, BTreeMap::from([("value".to_string(), i as f64)]));
            tokio::time::timeout(ANSWER_WITHIN, tell).await.expect("tell answers").unwrap();
        }
        healthy(&http, &server.url).await;
    }
    let board = tokio::time::timeout(ANSWER_WITHIN, client.leaderboard("wide", Some(3))).await.expect("answers");
    assert_eq!(board.unwrap().trials.len(), 3);
}
