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

/// `tuna run SPEC` started in `cwd` (its data dir ./.tuna), left running.
fn spawn_run(cwd: &Path, spec: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_tuna"))
        .args(["run", spec.to_str().unwrap(), "--gpus", "none"])
        .current_dir(cwd)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
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
    let mut run = spawn_run(dir.path(), &spec);
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
    assert!(stderr.contains(&format!("held by `tuna run` (pid {}) running experiment busy", run.id())), "{stderr}");
    run.kill().unwrap();
    run.wait().unwrap();
}

/// Waits until `tuna get NAME` (answered from ./.tuna) says `phase`.
fn wait_for_phase(dir: &Path, name: &str, phase: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = tuna_in(dir, &["get", name]);
        let said = text(&out.stdout);
        if said.contains(&format!("experiment {name}: {phase}")) {
            return said;
        }
        assert!(Instant::now() < deadline, "{name} never became {phase}: {said} {}", text(&out.stderr));
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_running_run_is_stopped_and_followed_from_a_second_terminal_through_its_published_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path(), "busy", r#"[sh, -c, "echo epoch=1 score=0.5; sleep 30"]"#, 2);
    let mut run = spawn_run(dir.path(), &spec);
    let endpoint = dir.path().join(".tuna/endpoint.json");
    wait_for_phase(dir.path(), "busy", "Running");
    // The run's API is published to its user alone, with a token of its own.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&endpoint).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "endpoint.json is private");
    let published: serde_json::Value = serde_json::from_slice(&std::fs::read(&endpoint).unwrap()).unwrap();
    assert_eq!(published["pid"], run.id(), "{published}");
    // `--follow` needs a store that changes: through the run's API it streams.
    let follow = Command::new(env!("CARGO_BIN_EXE_tuna"))
        .args(["logs", "busy", "busy-0000", "--follow"])
        .current_dir(dir.path())
        .env_remove("TUNA_DATA_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Promotions are refused by a run, which serves nothing, with what to do instead.
    let promote = tuna_in(dir.path(), &["promote", "busy"]);
    assert!(
        !promote.status.success() && text(&promote.stderr).contains("runs no promoter"),
        "{}",
        text(&promote.stderr)
    );
    let delete = tuna_in(dir.path(), &["delete", "busy"]);
    assert!(
        !delete.status.success() && text(&delete.stderr).contains("held by `tuna run`"),
        "{}",
        text(&delete.stderr)
    );
    // `tuna stop` from here ends the run there, and its trial with it.
    let stop = tuna_in(dir.path(), &["stop", "busy"]);
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = run.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "tuna run did not stop when asked from another terminal");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(130), "a stopped run exits 130");
    let followed = follow.wait_with_output().unwrap();
    assert!(text(&followed.stdout).contains("epoch=1"), "{}", text(&followed.stderr));
    assert!(!endpoint.exists(), "the endpoint goes with the run");
    let get = wait_for_phase(dir.path(), "busy", "Stopped");
    assert!(get.contains("StoppedByUser"), "{get}");
}

#[test]
fn writes_are_carried_out_on_a_data_dir_that_no_process_holds() {
    let dir = tempfile::tempdir().unwrap();
    let command = r#"[sh, -c, "echo model-${x} > $TUNA_OUTPUT_DIR/model; echo score=${x}"]"#;
    let spec = write_spec(dir.path(), "w", command, 3);
    succeeds(&tuna_in(dir.path(), &["run", spec.to_str().unwrap()]), "run");
    // promote and rollback are recorded here (no process serves the data dir).
    let promoted = tuna_in(dir.path(), &["promote", "w"]);
    assert!(promoted.status.success(), "{}", text(&promoted.stderr));
    assert!(text(&promoted.stdout).contains("v1"), "{}", text(&promoted.stdout));
    assert!(text(&promoted.stderr).contains("tuna serve --data-dir"), "{}", text(&promoted.stderr));
    succeeds(&tuna_in(dir.path(), &["promote", "w", "--trial", "w-0000"]), "promote --trial");
    succeeds(&tuna_in(dir.path(), &["rollback", "w"]), "rollback");
    let history = succeeds(&tuna_in(dir.path(), &["promotions", "w"]), "promotions");
    assert_eq!(history.matches(" *").count(), 1, "one served row: {history}");
    assert!(history.lines().any(|l| l.starts_with("v1 *") && l.contains("rollback")), "{history}");
    assert!(dir.path().join(".tuna/models/w/v2/model").is_file(), "the promoted model is kept");
    // resume runs the experiment here, with the budget raised.
    let resumed = tuna_in(dir.path(), &["resume", "w", "--max-trials", "5"]);
    assert!(resumed.status.success(), "{}", text(&resumed.stderr));
    assert!(text(&resumed.stdout).contains("best trial"), "the run's summary: {}", text(&resumed.stdout));
    let trials = succeeds(&tuna_in(dir.path(), &["trials", "w", "--format", "json"]), "trials");
    let trials: serde_json::Value = serde_json::from_str(&trials).unwrap();
    assert_eq!(trials.as_array().map(|t| t.iter().filter(|t| t["phase"] == "Succeeded").count()), Some(5));
    // A run killed with -9 leaves its experiment Running: stop settles it.
    let slow = write_spec(dir.path(), "slow", r#"[sh, -c, "sleep 30"]"#, 1);
    let mut run = spawn_run(dir.path(), &slow);
    wait_for_phase(dir.path(), "slow", "Running");
    run.kill().unwrap();
    run.wait().unwrap();
    assert!(dir.path().join(".tuna/endpoint.json").exists(), "kill -9 leaves the endpoint behind");
    succeeds(&tuna_in(dir.path(), &["stop", "slow"]), "stop");
    wait_for_phase(dir.path(), "slow", "Stopped");
    // delete removes the experiment and its files.
    succeeds(&tuna_in(dir.path(), &["delete", "slow"]), "delete");
    let list = succeeds(&tuna_in(dir.path(), &["list"]), "list");
    assert!(!list.contains("slow") && list.contains('w'), "{list}");
}
