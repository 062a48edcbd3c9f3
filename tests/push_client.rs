//! `experiments/tuna_push.py`, the push helper trials import, against a scripted server
//! (`tests/python/push_retry.py`): a push the server cannot take right now (503, or nobody
//! listening while the controller restarts) is retried until it lands; a refusal is not.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step is a failed test

use std::process::Command;

#[test]
fn a_push_during_a_restart_is_retried_until_it_lands_and_a_refusal_is_not() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("python3")
        .arg(format!("{root}/tests/python/push_retry.py"))
        .arg(format!("{root}/experiments"))
        .output()
        .unwrap_or_else(|e| panic!("this test needs python3 (apt-get install python3): {e}"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let busy = &seen["busy"];
    assert_eq!((busy["should_stop"].as_bool(), busy["attempts"].as_u64()), (Some(true), Some(3)), "{seen}");
    assert_eq!(busy["first"]["path"], "/api/v1/experiments/team-a%2Fmnist/trials/team-a%2Fmnist-0003/metrics");
    assert_eq!(busy["first"]["body"], serde_json::json!({"metrics": {"loss": 0.25}, "step": 3}));
    assert_eq!(busy["first"]["auth"], "Bearer t0ken");
    let late = &seen["late"];
    assert_eq!((late["should_stop"].as_bool(), late["attempts"].as_u64()), (Some(true), Some(1)), "{seen}");
    assert!(late["waited"].as_f64().unwrap() >= 1.0, "it waited for the server: {seen}");
    let refused = &seen["refused"];
    assert_eq!((refused["raised"].as_str(), refused["attempts"].as_u64()), (Some("HTTPError"), Some(1)), "{seen}");
}
