//! End to end through the real binary: every read command works on a data dir with no server,
//! while a `tuna run` holds it too; a missing data dir is an error, and open errors say why.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed step is a failed test
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn tuna_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tuna"))
        .args(args)
        .current_dir(cwd)
        .env("TUNA_GPUS", "none")
        .env_remove("TUNA_SERVER")
        .env_remove("TUNA_DATA_DIR")
        .output()
        .expect("tuna runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn write_spec(dir: &Path, name: &str, command: &str, max_trials: u32) -> PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    let doc = format!(
        "apiVersion: tuna.dev/v1alpha1\nkind: Experiment\nmetadata: {{name: {name}}}\nspec:\n  \
         objective: {{metric: score, goal: maximize}}\n  algorithm: {{name: random, seed: 1}}\n  \
         parameters: [{{name: x, type: double, min: 0, max: 1}}]\n  maxTrials: {max_trials}\n  trial:\n    \
         command: {command}\n"
    );
    std::fs::write(&path, doc).unwrap();
    path
}

fn succeeds(out: &Output, what: &str) -> String {
    assert!(out.status.success(), "{what} failed: {}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn every_read_command_reads_the_data_dir_without_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path(), "local", r#"[sh, -c, "echo hello; echo score=0.${x}"]"#, 3);
    succeeds(&tuna_in(dir.path(), &["run", spec.to_str().unwrap()]), "run");
    assert!(dir.path().join(".tuna/db").is_dir(), "run made ./.tuna");
    // No --data-dir and no --server: ./.tuna is read.
    let trials = succeeds(&tuna_in(dir.path(), &["trials", "local"]), "trials");
    assert!(trials.starts_with("trial") && trials.contains("local-0002") && trials.contains("Succeeded"), "{trials}");
    let json: serde_json::Value =
        serde_json::from_str(&succeeds(&tuna_in(dir.path(), &["trials", "local", "--format", "json"]), "json"))
            .unwrap();
    assert_eq!(json.as_array().map(Vec::len), Some(3), "{json}");
    let csv = succeeds(&tuna_in(dir.path(), &["trials", "local", "--format", "csv"]), "csv");
    assert_eq!(csv.lines().count(), 4, "a header and a row per trial: {csv}");
    let logs = succeeds(&tuna_in(dir.path(), &["logs", "local", "local-0001"]), "logs");
    assert!(logs.contains("hello"), "{logs}");
    let board = succeeds(&tuna_in(dir.path(), &["leaderboard", "local"]), "leaderboard");
    assert!(board.contains("rank  trial"), "{board}");
    succeeds(&tuna_in(dir.path(), &["promotions", "local"]), "promotions");
    let get = succeeds(&tuna_in(dir.path(), &["get", "local"]), "get");
    assert!(get.contains("experiment local: Succeeded"), "{get}");
    let list = succeeds(&tuna_in(dir.path(), &["list"]), "list");
    assert!(list.contains("local"), "{list}");
    // From elsewhere, with --data-dir.
    let elsewhere = tempfile::tempdir().unwrap();
    let data = dir.path().join(".tuna");
    succeeds(&tuna_in(elsewhere.path(), &["trials", "local", "--data-dir", data.to_str().unwrap()]), "--data-dir");
}

#[test]
fn a_missing_data_dir_is_an_error_and_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("tuan");
    let out = tuna_in(dir.path(), &["leaderboard", "x", "--data-dir", typo.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("is not a tuna data dir (it does not exist)"), "{}", text(&out.stderr));
    assert!(!typo.exists(), "no empty store is made");
}

#[test]
fn a_running_experiment_can_be_read_from_a_second_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path(), "busy", r#"[sh, -c, "echo epoch=1 score=0.5; sleep 10"]"#, 1);
    let mut run = Command::new(env!("CARGO_BIN_EXE_tuna"))
        .args(["run", spec.to_str().unwrap(), "--gpus", "none"])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let trials = loop {
        let out = tuna_in(dir.path(), &["trials", "busy"]);
        if out.status.success() && text(&out.stdout).contains("Running") {
            break text(&out.stdout);
        }
        assert!(Instant::now() < deadline, "never saw the running trial: {}", text(&out.stderr));
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(trials.contains("busy-0000"), "{trials}");
    let logs = tuna_in(dir.path(), &["logs", "busy", "busy-0000"]);
    assert!(text(&logs.stdout).contains("epoch=1"), "{}", text(&logs.stderr));
    let second = tuna_in(dir.path(), &["run", spec.to_str().unwrap()]);
    let stderr = text(&second.stderr);
    assert!(!second.status.success() && stderr.contains("another tuna process holds its lock"), "{stderr}");
    run.kill().unwrap();
    run.wait().unwrap();
}
