//! End to end through the real binary: what `tuna run` shows while it runs. Under a pseudo-terminal
//! (util-linux `script`) the live display redraws in place and shows a running trial's latest
//! step; through a pipe the lines are plain, with the real total; a second Ctrl-C kills at once.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed step is a failed test

#[path = "support/cli.rs"]
mod cli;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn write_spec(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    let doc = format!(
        "apiVersion: tuna.dev/v1alpha1\nkind: Experiment\nmetadata: {{name: {name}}}\nspec:\n  \
         objective: {{metric: score, goal: maximize}}\n{body}"
    );
    std::fs::write(&path, doc).unwrap();
    path
}

/// `script` gives the command a terminal and records everything it draws.
fn under_a_terminal(command: &str, record: &Path) -> String {
    let status = Command::new("script")
        .args(["-q", "-e", "-c", command])
        .arg(record)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("this test needs util-linux's `script` (apt-get install bsdutils): {e}"));
    assert!(status.success(), "{command} failed under script: {status}");
    String::from_utf8_lossy(&std::fs::read(record).unwrap()).into_owned()
}

#[test]
fn on_a_terminal_the_bar_redraws_while_a_trial_runs_and_shows_its_latest_step() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        dir.path(),
        "live",
        "  parameters: [{name: x, type: double, min: 0, max: 1}]\n  maxTrials: 1\n  trial:\n    command: \
         [sh, -c, \"for i in 1 2 3 4 5 6; do echo epoch=$i score=0.$i loss=0.0000012345678; sleep 0.4; done\"]\n",
    );
    let command = format!(
        "stty cols 80 rows 24; TUNA_GPUS=none {} run {} --data-dir {} --log info",
        env!("CARGO_BIN_EXE_tuna"),
        spec.display(),
        dir.path().join("data").display()
    );
    let screen = under_a_terminal(&command, &dir.path().join("typescript"));
    let (running, after) = screen.split_once("live-0000 Succeeded").expect("the trial's end is printed");
    assert!(running.contains("\x1b["), "the display redraws in place: {running:?}");
    let redraws = running.matches("0/1 trials").count();
    assert!(redraws >= 5, "the bar is redrawn while the trial runs ({redraws} times): {running:?}");
    for step in ["step 2  score=0.2", "step 5  score=0.5"] {
        assert!(running.contains(step), "the running trial's row shows {step:?}: {running:?}");
    }
    assert!(running.contains("loss=1.23457e-6"), "six significant digits, not six decimals: {running:?}");
    assert!(after.contains("rank  trial"), "the summary follows the display: {after:?}");
    // A log line is printed on a line of its own, never inside the bar.
    let log = screen.find("experiment loop ended").expect("--log info shows the controller's log line");
    let before = &screen[screen[..log].rfind(['\n', '\r']).unwrap_or(0)..log];
    assert!(!before.contains("trials ·"), "a log line interleaved with the bar: {before:?}");
}

#[test]
fn through_a_pipe_the_lines_are_plain_and_count_to_the_grid_s_size() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        dir.path(),
        "plain",
        "  algorithm: {name: grid}\n  parameters: [{name: x, type: int, min: 1, max: 3}, \
         {name: c, type: categorical, values: [a, b]}]\n  maxTrials: 100\n  parallelTrials: 2\n  trial:\n    \
         command: [sh, -c, \"echo score=${x}.123456789\"]\n",
    );
    let out = cli::run_command(&spec, &dir.path().join("data")).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains('\x1b'), "no escapes in a log: {stderr:?}");
    assert!(stderr.contains("[  6/6] "), "the total is the grid's 6 points, not maxTrials: {stderr}");
    assert!(!stderr.contains("/100]"), "{stderr}");
    assert!(stderr.contains("objective=3.12346 | "), "6 significant digits and a space before '|': {stderr}");
}

#[test]
fn a_second_ctrl_c_kills_running_trials_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        dir.path(),
        "stubborn",
        "  parameters: [{name: x, type: double, min: 0, max: 1}]\n  maxTrials: 1\n  trial:\n    command: \
         [sh, -c, \"trap '' TERM; echo $$ > $TUNA_OUTPUT_DIR/pid; echo epoch=1 score=1; sleep 60\"]\n",
    );
    let data = dir.path().join("data");
    let child = cli::run_command(&spec, &data).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid_file = data.join("experiments/stubborn/trials/stubborn-0000/output/pid");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(&pid_file).map_or(true, |p| p.trim().is_empty()) {
        assert!(Instant::now() < deadline, "the trial never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let trial_pid = std::fs::read_to_string(&pid_file).unwrap().trim().to_string();
    let interrupt = || Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    interrupt();
    std::thread::sleep(Duration::from_millis(500));
    let second = Instant::now();
    interrupt();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(second.elapsed() < Duration::from_secs(3), "killed at once, not after the grace period: {stderr}");
    assert!(stderr.contains("killed 1 running trial(s)"), "{stderr}");
    std::thread::sleep(Duration::from_millis(200));
    let state = std::fs::read_to_string(format!("/proc/{trial_pid}/stat")).unwrap_or_default();
    assert!(state.is_empty() || state.contains(") Z "), "the trial's process is gone: {state}");
}
