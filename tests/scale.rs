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

fn address(server: &Server) -> String {
    server.url.trim_start_matches("http://").to_string()
}

/// Reads until the server closes the connection (or `within` passes); returns what it sent and
/// whether it closed.
fn read_until_closed(stream: &mut std::net::TcpStream, within: Duration) -> (String, bool) {
    use std::io::Read;
    stream.set_read_timeout(Some(within)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (String::from_utf8_lossy(&got).into_owned(), true);
            }
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), false),
        }
    }
}

#[test]
fn half_sent_headers_are_cut_off_and_connections_past_the_limit_are_closed() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let args = ["--header-timeout", "1", "--max-connections", "4"];
    let server = Server::start_with(&dir.path().join("data"), dir.path(), &args, &[]);
    let addr = address(&server);
    let mut stalled: Vec<std::net::TcpStream> = (0..4)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(&addr).unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap(); // and never the blank line
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut fifth = std::net::TcpStream::connect(&addr).unwrap();
    let _ = fifth.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    let (answer, closed) = read_until_closed(&mut fifth, Duration::from_secs(5));
    assert!(closed && answer.is_empty(), "past the limit a connection is closed unanswered: {answer:?}");
    for s in &mut stalled {
        let (_, closed) = read_until_closed(s, Duration::from_secs(5));
        assert!(closed, "a client that never finishes its headers is cut off after the header timeout");
    }
    let out = server.cli(&["list"]);
    assert!(
        out.status.success(),
        "the server answers again once they are gone: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_push_without_its_token_is_refused_before_its_body_is_read() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), dir.path());
    let mut s = std::net::TcpStream::connect(address(&server)).unwrap();
    let head = "POST /api/v1/experiments/e/trials/e-0000/metrics HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n{";
    s.write_all(head.as_bytes()).unwrap();
    let (answer, _) = read_until_closed(&mut s, Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 401"), "answered at once, the body never read: {answer:?}");
    assert!(answer.contains("\"error\""), "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn thousands_of_experiments_created_and_stopped_leave_the_server_answering() {
    // The server hung for good at 868 to 2,608 experiments (sled subscribers' full queues blocked
    // writers on the async workers). 10,000 here, while a reader takes the experiment list a byte
    // at a time.
    use std::io::{Read, Write};
    const N: usize = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), dir.path());
    let client = server.client();
    let http = reqwest::Client::new();
    let mut slow = std::net::TcpStream::connect(address(&server)).unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let slow_reader = {
        let done = std::sync::Arc::clone(&done);
        std::thread::spawn(move || {
            let mut read = 0usize;
            let mut byte = [0u8; 1];
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                slow.write_all(b"GET /api/v1/experiments HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
                for _ in 0..200 {
                    match slow.read(&mut byte) {
                        Ok(1) => read += 1,
                        _ => return read,
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            read
        })
    };
    for i in 0..N {
        let doc = json!({"apiVersion": "tuna.dev/v1alpha1", "kind": "Experiment", "metadata": {"name": format!("e{i}")},
            "spec": {"objective": {"metric": "value", "goal": "minimize"}, "maxTrials": 5, "executor": "external",
                     "parameters": [{"name": "x", "type": "double", "min": 0, "max": 1}]}});
        tokio::time::timeout(ANSWER_WITHIN, client.submit(doc.to_string())).await.expect("create answers").unwrap();
        if i % 500 == 0 {
            healthy(&http, &server.url).await;
        }
    }
    for i in (0..N).step_by(2) {
        tokio::time::timeout(ANSWER_WITHIN, client.stop(&format!("e{i}"))).await.expect("stop answers").unwrap();
    }
    healthy(&http, &server.url).await;
    let list = tokio::time::timeout(ANSWER_WITHIN, client.list()).await.expect("list answers").unwrap();
    assert_eq!(list.experiments.len(), N);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(slow_reader.join().unwrap() > 0, "the slow reader was answered");
}
