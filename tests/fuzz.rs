//! A bounded fuzz run over everything that reads a user's document or body: the document parser
//! and validator (`search::parse_document` on mutated YAML text, `check_document` on mutated
//! trees), the search each valid document builds, and the API's JSON bodies through
//! `api::router` (oneshot, no socket). Any panic, and any 5xx answer to a bad body, fails it.
//! (Promote and rollback are left out: with no promoter running they wait out their minute.)
//!
//! `cargo test --test fuzz` runs a few thousand inputs; `TUNA_FUZZ_CASES=200000 cargo test
//! --release --test fuzz -- --nocapture` is the long run (`TUNA_FUZZ_SEED` picks another start).
//! It prints the inputs tried.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed step is a failed test
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};
use tower::ServiceExt;

/// The cases a plain `cargo test` tries (about a second per thousand on a debug build).
const DEFAULT_CASES: usize = 3000;

fn seeds() -> Vec<(String, Value)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/experiments");
    let mut seeds = Vec::new();
    for name in ["quickstart.yaml", "quickstart-bayesian.yaml", "grid.yaml", "quickstart-push.yaml", "pytorch-gpu.yaml"]
    {
        let text = std::fs::read_to_string(format!("{dir}/{name}")).unwrap();
        let value = tuna::spec::parse_value(&text).unwrap();
        seeds.push((text, value));
    }
    assert!(seeds.len() >= 5, "the fuzz run needs its seed documents");
    seeds
}

/// Values that have broken parsers before: bounds, huge and odd numbers, odd text.
fn nasty(rng: &mut StdRng) -> Value {
    let pool = [
        json!(null),
        json!(true),
        json!(false),
        json!(0),
        json!(-1),
        json!(1.5),
        json!(1e308),
        json!(-1e308),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(4294967296u64),
        json!(65536),
        json!(""),
        json!("1e30"),
        json!("999999999999999999999d"),
        json!("-5m"),
        json!("PT1H"),
        json!("${"),
        json!("${x"),
        json!("${}"),
        json!("n"),
        json!("ünïcødé ✓"),
        json!("a".repeat(300)),
        json!([]),
        json!([1, "a", null]),
        json!({}),
        json!({"a": {"b": [1]}}),
        json!("random"),
        json!("grid"),
        json!("bayesian"),
        json!("kubernetes"),
        json!("external"),
        json!("file"),
        json!("push"),
        json!("log"),
        json!("int"),
        json!("discrete"),
        json!("categorical"),
        json!("(\\w+)"),
        json!("(a)(b)"),
        json!("["),
        json!(1e-300),
        json!(0.1),
    ];
    pool[rng.random_range(0..pool.len())].clone()
}

/// Every path to a node of the tree, as JSON pointers.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match value {
        Value::Object(map) => map.iter().for_each(|(k, v)| pointers(v, format!("{at}/{k}"), out)),
        Value::Array(items) => items.iter().enumerate().for_each(|(i, v)| pointers(v, format!("{at}/{i}"), out)),
        _ => {}
    }
}

/// One random edit of a tree: replace, remove, add a (near-)known key, or copy a node elsewhere.
fn mutate(value: &mut Value, rng: &mut StdRng) {
    let mut all = Vec::new();
    pointers(value, String::new(), &mut all);
    let target = all[rng.random_range(0..all.len())].clone();
    let donor = value.pointer(&all[rng.random_range(0..all.len())]).cloned().unwrap_or(Value::Null);
    let keys = [
        "maxTrials",
        "trial",
        "trials",
        "timeout",
        "min",
        "max",
        "step",
        "values",
        "settings",
        "levels",
        "xi",
        "candidates",
        "gpu",
        "port",
        "retries",
        "workingDir",
        "command",
        "goal",
        "target",
        "autoscale",
    ];
    let Some(node) = value.pointer_mut(&target) else { return };
    match rng.random_range(0..5) {
        0 | 1 => *node = nasty(rng),
        2 => *node = donor,
        3 => {
            if let Value::Object(map) = node {
                map.insert(keys[rng.random_range(0..keys.len())].to_string(), nasty(rng));
            }
        }
        _ => match node {
            Value::Object(map) if !map.is_empty() => {
                let key = map.keys().nth(rng.random_range(0..map.len())).cloned().unwrap_or_default();
                map.remove(&key);
            }
            Value::Array(items) if !items.is_empty() => {
                items.remove(rng.random_range(0..items.len()));
            }
            _ => *node = nasty(rng),
        },
    }
}

/// One random edit of a text: delete a span, insert YAML-significant characters, or cut it short.
fn mutate_text(text: &str, rng: &mut StdRng) -> String {
    let chars: Vec<char> = text.chars().collect();
    let at = rng.random_range(0..=chars.len());
    let mut out: Vec<char> = chars[..at].to_vec();
    match rng.random_range(0..4) {
        0 => out.extend(&chars[(at + rng.random_range(0..20)).min(chars.len())..]),
        1 => {
            let extra =
                [":", "- ", "{", "}", "[", "]", "\n", "  ", "&a ", "*a", "!!str ", "'", "\"", "#", "|", "\t", "~"];
            out.extend(extra[rng.random_range(0..extra.len())].chars());
            out.extend(&chars[at..]);
        }
        2 => {}
        _ => {
            out.extend("999999999999999999999".chars());
            out.extend(&chars[at..]);
        }
    }
    out.into_iter().collect()
}

#[derive(Default)]
struct Tally {
    texts: usize,
    trees: usize,
    valid: usize,
    searches: usize,
    bodies: usize,
    panics: Vec<String>,
}

impl Tally {
    fn guard(&mut self, what: &str, input: &str, f: impl FnOnce()) {
        if catch_unwind(AssertUnwindSafe(f)).is_err() {
            self.panics.push(format!("{what} panicked on:\n{input}"));
        }
    }
}

fn check_tree(value: &Value, rng: &mut StdRng, tally: &mut Tally) {
    tally.trees += 1;
    let shown = value.to_string();
    let mut valid = None;
    tally.guard("check_document", &shown, || valid = tuna::search::check_document(value.clone()).ok());
    let Some(experiment) = valid else { return };
    tally.valid += 1;
    tally.searches += 1;
    tally.guard("search::build/suggest", &shown, || {
        if let Ok(mut search) = tuna::search::build(&experiment.spec, rng.random()) {
            let _ = search.suggest(&[], 2);
        }
    });
}

async fn post(router: &axum::Router, uri: &str, body: String, tally: &mut Tally) {
    tally.bodies += 1;
    let request = Request::builder().method("POST").uri(uri).header("content-type", "application/json");
    let request = request.body(Body::from(body.clone())).unwrap();
    match tokio::spawn(router.clone().oneshot(request)).await {
        Err(e) if e.is_panic() => tally.panics.push(format!("POST {uri} panicked on:\n{body}")),
        Ok(Ok(response)) if response.status().is_server_error() => {
            tally.panics.push(format!("POST {uri} answered {} to:\n{body}", response.status()));
        }
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_mutated_document_or_body_panics_the_parser_the_validator_or_the_api() {
    let cases = std::env::var("TUNA_FUZZ_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(DEFAULT_CASES);
    let seed = std::env::var("TUNA_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let mut rng = StdRng::seed_from_u64(seed);
    let seeds = seeds();
    let dir = tempfile::tempdir().unwrap();
    let store = tuna::store::Store::open(dir.path()).unwrap();
    let secret = tuna::token::TrialSecret::from_bytes([7; 32]);
    let router = tuna::api::router(Arc::new(tuna::api::ApiState::new(store, None, secret, 0)));
    let external = json!({
        "apiVersion": "tuna.dev/v1alpha1", "kind": "Experiment", "metadata": {"name": "ext"},
        "spec": {"objective": {"metric": "v", "goal": "minimize"}, "executor": "external", "maxTrials": 1000,
                 "parameters": [{"name": "x", "type": "double", "min": 0, "max": 1}]}});
    post(&router, "/api/v1/experiments", external.to_string(), &mut Tally::default()).await;
    let mut tally = Tally::default();
    for case in 0..cases {
        let (text, tree) = &seeds[case % seeds.len()];
        let mutated_text = mutate_text(text, &mut rng);
        tally.texts += 1;
        tally.guard("parse_document", &mutated_text, || drop(tuna::search::parse_document(&mutated_text)));
        let mut value = tree.clone();
        for _ in 0..rng.random_range(1..=4) {
            mutate(&mut value, &mut rng);
        }
        check_tree(&value, &mut rng, &mut tally);
        if case % 4 == 0 {
            if let Some(meta) = value.pointer_mut("/metadata/name") {
                *meta = json!(format!("fuzz-{case}"));
            }
            post(&router, "/api/v1/experiments", value.to_string(), &mut tally).await;
            let mut body = json!({"trial": "ext-0000", "metrics": {"v": 0.5}, "value": 0.5, "count": 2});
            mutate(&mut body, &mut rng);
            for uri in [
                "/api/v1/experiments/ext/suggestions",
                "/api/v1/experiments/ext/trials/ext-0000/complete",
                "/api/v1/experiments/ext/trials/ext-0000/metrics",
                "/api/v1/experiments/ext/resume",
            ] {
                post(&router, uri, body.to_string(), &mut tally).await;
            }
        }
    }
    eprintln!(
        "fuzz (seed {seed}): {} texts, {} trees ({} valid, {} searches built), {} API bodies; {} panics",
        tally.texts,
        tally.trees,
        tally.valid,
        tally.searches,
        tally.bodies,
        tally.panics.len()
    );
    assert!(tally.texts >= cases && tally.bodies > 0, "the run tried nothing");
    assert!(tally.panics.is_empty(), "{} failures; the first:\n{}", tally.panics.len(), tally.panics[0]);
}
