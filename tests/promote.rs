//! End to end: promotion to serving over real HTTP. The quickstart's best model is promoted
//! automatically and answers predictions; a manual promotion switches versions while a client
//! keeps calling, without one failed request; rollback and the gate work.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed step is a failed test

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::server::Server;

const EXPERIMENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/experiments");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The quickstart with 12 trials, automatic promotion behind a 0.95 gate, on `port`.
fn spec(port: u16) -> String {
    let quickstart = std::fs::read_to_string(format!("{EXPERIMENTS}/quickstart.yaml")).unwrap();
    quickstart
        .replace("name: quickstart\n", "name: promoted\n")
        .replace("maxTrials: 24", "maxTrials: 12")
        .replace("policy: manual", "policy: auto")
        .replace("gate: {min: 0.9}", "gate: {min: 0.95}")
        .replace("port: 9000", &format!("port: {port}"))
}

/// The first row of the dataset, as features.
fn features() -> Vec<f64> {
    let csv = std::fs::read_to_string(format!("{EXPERIMENTS}/data/breast_cancer.csv")).unwrap();
    let row = csv.lines().nth(1).unwrap();
    let mut values: Vec<f64> = row.split(',').map(|v| v.parse().unwrap()).collect();
    values.pop(); // the target
    values
}

fn predict(url: &str) -> Result<Value, String> {
    http::post(url, &json!({"features": features()}))
}

mod http {
    //! A blocking JSON POST over a plain socket: a fresh connection per request, as a simple client
    //! would make, so a switch that drops connections would show.
    use std::io::{Read, Write};

    pub fn post(url: &str, body: &serde_json::Value) -> Result<serde_json::Value, String> {
        let rest = url.strip_prefix("http://").ok_or("http only")?;
        let (host, path) = rest.split_once('/').map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
        let mut stream = std::net::TcpStream::connect(host).map_err(|e| e.to_string())?;
        let body = body.to_string();
        write!(stream, "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
                .map_err(|e| e.to_string())?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).map_err(|e| e.to_string())?;
        let (head, payload) = answer.split_once("\r\n\r\n").ok_or("no HTTP answer")?;
        if !head.starts_with("HTTP/1.1 200") {
            return Err(head.lines().next().unwrap_or_default().to_string());
        }
        serde_json::from_str(payload.trim()).map_err(|e| format!("{e}: {payload}"))
    }
}

fn wait_serving(server: &Server, name: &str, version: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = server.cli(&["get", name, "--json"]);
        let experiment: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if experiment["status"]["serving"]["version"] == version {
            return experiment;
        }
        assert!(Instant::now() < deadline, "{name} never served {version}: {experiment}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_best_model_is_served_switched_without_a_failed_request_rolled_back_and_gated() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), Path::new(EXPERIMENTS));
    let port = free_port();
    let file = dir.path().join("promoted.yaml");
    std::fs::write(&file, spec(port)).unwrap();
    assert!(server.cli(&["submit", file.to_str().unwrap()]).status.success());
    server.wait_finished("promoted");

    // Auto-promotion of the best trial, answering predictions on the serving port.
    let experiment = wait_serving(&server, "promoted", "v1");
    let best = experiment["status"]["bestTrial"]["name"].as_str().unwrap().to_string();
    assert_eq!(experiment["status"]["serving"]["trial"], best.as_str());
    let url = format!("http://127.0.0.1:{port}/predict");
    let answer = predict(&url).unwrap();
    assert_eq!(answer["version"], "v1");
    let p = answer["predictions"][0]["probability"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&p));
    assert_eq!(answer["predictions"][0]["label"], 0, "the first sample is malignant (target 0)");

    // Candidates: another trial that passes the 0.95 gate, and one that does not.
    let board: Value =
        serde_json::from_slice(&server.cli(&["leaderboard", "promoted", "--format", "json"]).stdout).unwrap();
    let rows = board["trials"].as_array().unwrap();
    let passing = rows.iter().find(|r| r["name"] != best.as_str() && r["objective"].as_f64() >= Some(0.95)).unwrap();
    let failing = rows.iter().find(|r| r["objective"].as_f64().is_some_and(|v| v < 0.95)).unwrap();

    // A manual promotion while a client keeps calling: not one failed request.
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let (stop, url) = (Arc::clone(&stop), url.clone());
        std::thread::spawn(move || {
            let (mut ok, mut failed, mut versions) = (0, Vec::new(), Vec::new());
            while !stop.load(Ordering::Relaxed) {
                match predict(&url) {
                    Ok(answer) => {
                        ok += 1;
                        let v = answer["version"].as_str().unwrap().to_string();
                        if versions.last() != Some(&v) {
                            versions.push(v);
                        }
                    }
                    Err(e) => failed.push(e),
                }
            }
            (ok, failed, versions)
        })
    };
    let out = server.cli(&["promote", "promoted", "--trial", passing["name"].as_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    let (ok, failed, versions) = poller.join().unwrap();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed during the switch: {:?}",
        failed.len(),
        ok + failed.len(),
        &failed[..failed.len().min(3)]
    );
    assert_eq!(versions, ["v1", "v2"], "served v1, then v2 ({ok} requests)");

    // Rollback to the previous version.
    assert!(server.cli(&["rollback", "promoted"]).status.success());
    assert_eq!(predict(&url).unwrap()["version"], "v1");
    let history = String::from_utf8_lossy(&server.cli(&["promotions", "promoted"]).stdout).into_owned();
    assert!(history.contains("rollback") && history.contains("v1 *"), "{history}");
    let starred: Vec<&str> = history.lines().filter(|l| l.contains(" *")).collect();
    assert_eq!(starred.len(), 1, "exactly one row is the served one: {history}");
    assert!(starred[0].contains("rollback"), "the row that made v1 current again: {history}");

    // The gate refuses a trial below it, with the reason, and nothing changes.
    let out = server.cli(&["promote", "promoted", "--trial", failing["name"].as_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the gate refuses") && stderr.contains("below the gate's min 0.95"), "{stderr}");
    assert_eq!(predict(&url).unwrap()["version"], "v1");
}
