//! The OpenAPI document a real `tuna serve` serves passes a real validator (openapi-spec-validator,
//! installed by scripts/test.sh into .venv-k8s), with and without a server token; the operations
//! carry ids, typed bodies and answers.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step is a failed test

mod support;

use std::path::Path;

use serde_json::Value;
use support::server::Server;

fn validate(doc: &Value, dir: &Path) {
    let bin = support::validate::validator_bin().unwrap().join("openapi-spec-validator");
    assert!(
        bin.is_file(),
        "openapi-spec-validator is not installed: run `bash scripts/test.sh`, or `.venv-k8s/bin/pip install openapi-spec-validator`"
    );
    let file = dir.join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(doc).unwrap()).unwrap();
    let out = std::process::Command::new(bin).arg(&file).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.contains("OK"), "{said}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_served_openapi_document_validates_and_types_every_operation() {
    let _ = rustls::crypto::ring::default_provider().install_default(); // reqwest's TLS, as tuna's client installs it
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), dir.path());
    let doc: Value = reqwest::get(format!("{}/api/v1/openapi.json", server.url)).await.unwrap().json().await.unwrap();
    validate(&doc, dir.path());
    let ask = &doc["paths"]["/api/v1/experiments/{name}/suggestions"]["post"];
    assert_eq!(ask["operationId"], "ask");
    assert_eq!(ask["requestBody"]["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/AskRequest");
    assert_eq!(
        ask["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Suggestions"
    );
    assert_eq!(
        ask["responses"]["404"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorBody"
    );
    assert_eq!(ask["security"], serde_json::json!([]), "no token on this server: none asked for");
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in ["Experiment", "Trial", "Observation", "Leaderboard", "ErrorBody", "TrialList", "PromotionHistory"] {
        assert!(schemas.contains_key(name), "{name} is not among {:?}", schemas.keys().collect::<Vec<_>>());
    }
    let ids: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|p| p.as_object().unwrap().values())
        .map(|o| o["operationId"].as_str().unwrap())
        .collect();
    let unique: std::collections::BTreeSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "operation ids are unique: {ids:?}");
    let board = &doc["paths"]["/api/v1/experiments/{name}/leaderboard"]["get"]["parameters"];
    assert!(board.as_array().unwrap().iter().any(|p| p["name"] == "top" && p["in"] == "query"), "{board}");
    let curves = &doc["paths"]["/api/v1/experiments/{name}/plots/intermediate"]["get"];
    let named = |name: &str, place: &str| {
        curves["parameters"].as_array().unwrap().iter().any(|p| p["name"] == name && p["in"] == place)
    };
    assert!(named("since", "query") && named("If-None-Match", "header"), "{curves}");
    assert!(
        curves["responses"]["304"].is_object() && curves["responses"]["200"]["headers"]["ETag"].is_object(),
        "{curves}"
    );

    // A server with a token says which operations need it, and which take the trial's.
    let token = "0123456789abcdef0123456789abcdef";
    let secured = Server::start_with(&dir.path().join("data2"), dir.path(), &["--token", token], &[]);
    let doc: Value = reqwest::get(format!("{}/api/v1/openapi.json", secured.url)).await.unwrap().json().await.unwrap();
    validate(&doc, dir.path());
    let paths = &doc["paths"];
    assert_eq!(paths["/api/v1/experiments"]["get"]["security"], serde_json::json!([{"serverToken": []}]));
    assert_eq!(
        paths["/api/v1/experiments/{name}/trials/{trial}/metrics"]["post"]["security"],
        serde_json::json!([{"trialToken": []}])
    );
    assert_eq!(paths["/healthz"]["get"]["security"], serde_json::json!([]));
    assert!(paths["/api/v1/experiments"]["get"]["responses"]["401"].is_object());
}

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_server_error_and_no_answer_off_its_schema() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let bin = support::validate::validator_bin().unwrap().join("schemathesis");
    assert!(
        bin.is_file(),
        "schemathesis is not installed: run `bash scripts/test.sh`, or `.venv-k8s/bin/pip install schemathesis`"
    );
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), dir.path());
    // An ask/tell experiment with a told and an open trial, so generated calls also reach real
    // records (schemathesis picks names from the document's examples and at random).
    let doc = serde_json::json!({"apiVersion": "tuna.dev/v1alpha1", "kind": "Experiment", "metadata": {"name": "e"},
        "spec": {"objective": {"metric": "value", "goal": "minimize"}, "maxTrials": 50, "parallelTrials": 5,
                 "executor": "external", "parameters": [{"name": "x", "type": "double", "min": 0, "max": 1}]}});
    let client = server.client();
    client.submit(doc.to_string()).await.unwrap();
    let asked = client.suggest("e", 2).await.unwrap().trials;
    client.complete("e", &asked[0].name, [("value".to_string(), 0.5)].into()).await.unwrap();
    let out = std::process::Command::new(bin)
        .current_dir(dir.path()) // its cache folder goes there, not into the checkout
        .args(["run", &format!("{}/api/v1/openapi.json", server.url)])
        .args(["--max-examples", "15", "--workers", "1", "--seed", "1", "--no-color"])
        .args([
            "--checks",
            "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance",
        ])
        // A followed log stays open until its trial ends, and a delete may wait for its trials.
        .args(["--exclude-path", "/api/v1/experiments/{name}/trials/{trial}/logs"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    // The count line: "1631 generated, 1631 passed".
    let summary = said.lines().map(str::trim).find(|l| l.contains(" generated, ")).unwrap_or_default();
    assert!(summary.contains("passed") && !summary.contains("failed"), "{said}");
    println!("schemathesis: {summary}");
}
