//! Early stopping end to end through the real binary: `tuna run` with `earlyStopping: asha` stops
//! the trials that fall behind (their whole process group ends), says why, and ranks a completed
//! trial best.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed step is a failed test

#[path = "support/cli.rs"]
mod cli;
use cli::tuna;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn leaderboard(data_dir: &Path, name: &str) -> Vec<Value> {
    let out = tuna(data_dir, &["leaderboard", name, "--format", "json"]);
    assert!(out.status.success(), "leaderboard failed: {}", text(&out.stderr));
    let board: Value = serde_json::from_slice(&out.stdout).expect("leaderboard prints JSON");
    board["trials"].as_array().expect("trials is a list").clone()
}

/// Whether a process is still running (a zombie waiting for its parent counts as gone).
fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')))
}

/// Grid over x = 1..4, one trial at a time, loss = x at every epoch: x = 1 leads rung 1 and runs
/// its 3 epochs; each later one is second or worse of those that reached rung 1, so it is stopped
/// there, while it waits (30 s) with a child process of its own that must die with it.
#[test]
fn asha_stops_each_trial_that_falls_behind_and_its_whole_process_group_ends() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let script = format!(
        "sleep 300 & echo $! >> {pids}; for e in 1 2 3; do echo epoch=$e loss=${{x}}; [ ${{x}} = 1 ] || sleep 30; done; kill $!",
        pids = pids.display()
    );
    let spec = dir.path().join("asha.yaml");
    std::fs::write(
        &spec,
        format!(
            "apiVersion: tuna.dev/v1alpha1\nkind: Experiment\nmetadata: {{name: asha}}\nspec:\n  \
             objective: {{metric: loss, goal: minimize}}\n  algorithm: {{name: grid}}\n  \
             parameters: [{{name: x, type: int, min: 1, max: 4}}]\n  maxTrials: 4\n  maxFailedTrials: 0\n  \
             earlyStopping: {{rule: asha, settings: {{minResource: 1, reductionFactor: 3, maxResource: 3}}}}\n  \
             trial:\n    command: [sh, -c, {script:?}]\n"
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let out = tuna(&data, &["run", spec.to_str().unwrap()]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "stderr: {stderr}");
    for (trial, n) in [("asha-0001", 2), ("asha-0002", 3), ("asha-0003", 4)] {
        let line = format!("{trial} EarlyStopped at step 1 (asha: rung 1, not in top 1/3 of {n})");
        assert!(stderr.contains(&line), "expected {line:?} in {stderr}");
    }
    assert!(stdout.contains("(1 succeeded, 0 failed, 3 stopped early)"), "{stdout}");
    assert!(stdout.contains("trial-seconds: "), "the time spent is reported: {stdout}");
    assert!(stdout.contains("early stopping saved about"), "{stdout}");
    assert!(stdout.contains("best trial: asha-0000"), "{stdout}");

    let rows = leaderboard(&data, "asha");
    assert_eq!(rows[0]["name"], "asha-0000");
    assert_eq!((&rows[0]["phase"], &rows[0]["rank"]), (&Value::from("Succeeded"), &Value::from(1)));
    for row in &rows[1..] {
        assert_eq!(row["phase"], "EarlyStopped", "{row}");
        assert!(row["rank"].is_null(), "an early-stopped trial is never ranked: {row}");
        assert_eq!(row["lastStep"], 1, "stopped during its wait after epoch 1: {row}");
        assert_eq!(row["reason"], "EarlyStopped");
        assert!(row["message"].as_str().unwrap().starts_with("at step 1: asha: rung 1"), "{row}");
    }
    let pids = std::fs::read_to_string(&pids).unwrap();
    assert_eq!(pids.lines().count(), 4, "every trial started its child: {pids}");
    for pid in pids.lines() {
        assert!(!alive(pid), "process {pid} outlived its trial");
    }
}

/// The shipped example: real learning curves, some trials stopped at a rung, the best completed.
#[test]
fn the_asha_quickstart_stops_losers_early_and_its_best_trial_completed() {
    let data = tempfile::tempdir().unwrap();
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/quickstart-asha.yaml");
    let out = tuna(data.path(), &["run", spec.to_str().unwrap()]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "stderr: {stderr}");
    assert!(stderr.contains("EarlyStopped at step "), "each stop is printed with its reason: {stderr}");
    let rows = leaderboard(data.path(), "quickstart-asha");
    assert_eq!(rows.len(), 24, "early stops count toward maxTrials");
    assert_eq!((&rows[0]["rank"], &rows[0]["phase"]), (&Value::from(1), &Value::from("Succeeded")));
    let stopped: Vec<&Value> = rows.iter().filter(|r| r["phase"] == "EarlyStopped").collect();
    assert!(!stopped.is_empty(), "random learning rates from 1e-4 to 1 leave losers at rung 1: {stdout}");
    for row in &stopped {
        assert!(row["message"].as_str().unwrap().contains(": asha: rung "), "{row}");
        assert!(row["lastStep"].as_i64().unwrap() < 27, "stopped before its last epoch: {row}");
    }
    let succeeded = rows.iter().filter(|r| r["phase"] == "Succeeded").count();
    assert_eq!(succeeded + stopped.len(), 24, "nothing failed: {stdout}");
    assert!(stdout.contains("trial-seconds: "), "{stdout}");
}

/// A push-collector run (`tuna run` opens a loopback API for pushes): x = 2 and x = 3 fall behind
/// x = 1 at rung 1, their push is answered `shouldStop`, and the trial exits on it by itself (it
/// shrugs off the SIGTERM that follows, so only the answer can have ended it).
#[test]
fn a_pushing_trial_is_told_should_stop_and_exits_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let experiments = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    let trial = format!(
        r#"import os, signal, sys, time
sys.path.insert(0, {experiments:?})
import tuna_push
signal.signal(signal.SIGTERM, lambda *_: None)
x = float(os.environ["TUNA_PARAM_X"])
for step in (1, 2, 3):
    if tuna_push.report(step=step, loss=x):
        with open(os.path.join(os.environ["TUNA_OUTPUT_DIR"], "told"), "w") as f:
            f.write(str(step))
        sys.exit(0)
    if x != 1:
        time.sleep(30)
"#,
        experiments = experiments.display().to_string()
    );
    std::fs::write(dir.path().join("trial.py"), trial).unwrap();
    let spec = dir.path().join("pushed.yaml");
    std::fs::write(
        &spec,
        "apiVersion: tuna.dev/v1alpha1\nkind: Experiment\nmetadata: {name: pushed}\nspec:\n  \
         objective: {metric: loss, goal: minimize}\n  algorithm: {name: grid}\n  \
         parameters: [{name: x, type: int, min: 1, max: 3}]\n  maxTrials: 3\n  \
         earlyStopping: {rule: asha, settings: {minResource: 1, maxResource: 3}}\n  \
         metrics: {collector: push}\n  trial:\n    command: [python3, trial.py]\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let out = tuna(&data, &["run", spec.to_str().unwrap()]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let rows = leaderboard(&data, "pushed");
    assert_eq!((&rows[0]["name"], &rows[0]["phase"]), (&Value::from("pushed-0000"), &Value::from("Succeeded")));
    for (row, n) in rows[1..].iter().zip([2, 3]) {
        assert_eq!(row["phase"], "EarlyStopped", "{row}");
        let expected = format!("at step 1: asha: rung 1, not in top 1/3 of {n}");
        assert_eq!(row["message"], Value::from(expected), "{row}");
        let told = Path::new(row["outputDir"].as_str().unwrap()).join("told");
        assert_eq!(std::fs::read_to_string(&told).unwrap(), "1", "the trial read shouldStop at step 1");
    }
}

/// `kill -9` of `tuna run` mid-experiment, then a resume: the stop decided before the crash
/// stands (that trial never runs again), and the rung's members from before the crash still count
/// (the re-run trial is the third at rung 1, so it is stopped; were they forgotten, it would be
/// alone there and go on).
#[test]
fn a_resumed_run_keeps_every_decision_and_rung_membership_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let (starts, held) = (dir.path().join("starts.log"), dir.path().join("held"));
    let script = format!(
        "echo $TUNA_TRIAL >> {starts}; if [ ${{x}} = 3 ] && [ ! -e {held} ]; then touch {held}; exec sleep 60; fi; \
         for e in 1 2 3; do echo epoch=$e loss=${{x}}; [ ${{x}} = 1 ] || sleep 30; done",
        starts = starts.display(),
        held = held.display()
    );
    let spec = dir.path().join("resumed.yaml");
    std::fs::write(
        &spec,
        format!(
            "apiVersion: tuna.dev/v1alpha1\nkind: Experiment\nmetadata: {{name: resumed}}\nspec:\n  \
             objective: {{metric: loss, goal: minimize}}\n  algorithm: {{name: grid}}\n  \
             parameters: [{{name: x, type: int, min: 1, max: 3}}]\n  maxTrials: 3\n  \
             earlyStopping: {{rule: asha, settings: {{minResource: 1, maxResource: 3}}}}\n  \
             trial:\n    command: [sh, -c, {script:?}]\n"
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let mut child = cli::run_command(&spec, &data).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !held.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(held.exists(), "the third trial never started");
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    let before = leaderboard(&data, "resumed");
    assert_eq!(before[1]["phase"], "EarlyStopped", "{before:?}");

    let out = tuna(&data, &["run", spec.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows = leaderboard(&data, "resumed");
    let phases: Vec<&str> = rows.iter().map(|r| r["phase"].as_str().unwrap()).collect();
    assert_eq!(phases, ["Succeeded", "EarlyStopped", "EarlyStopped"], "{rows:?}");
    assert_eq!(rows[1]["message"], "at step 1: asha: rung 1, not in top 1/3 of 2", "the decision before the crash");
    assert_eq!(rows[2]["message"], "at step 1: asha: rung 1, not in top 1/3 of 3", "members from before count");
    let starts = std::fs::read_to_string(&starts).unwrap();
    let count = |t: &str| starts.lines().filter(|l| *l == t).count();
    assert_eq!((count("resumed-0000"), count("resumed-0001"), count("resumed-0002")), (1, 1, 2), "{starts}");
}

/// The Hyperband example: one loop of its 4 brackets (69 trials), each trial's `epochs` set by its
/// rung, and each later rung the best of the rung before re-run with 3 times the epochs.
#[test]
fn the_hyperband_quickstart_runs_its_brackets_with_the_epochs_of_each_rung() {
    let data = tempfile::tempdir().unwrap();
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/quickstart-hyperband.yaml");
    let out = tuna(data.path(), &["run", spec.to_str().unwrap()]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let mut rows = leaderboard(data.path(), "quickstart-hyperband");
    assert_eq!(rows.len(), 69);
    rows.sort_by_key(|r| r["name"].as_str().unwrap().to_string());
    let epochs = |r: &Value| r["parameters"]["epochs"].as_i64().unwrap();
    let count = |e: i64| rows.iter().filter(|r| epochs(r) == e).count();
    assert_eq!([count(1), count(3), count(9), count(27)], [27, 9 + 12, 3 + 4 + 6, 1 + 1 + 2 + 4]);
    // Bracket 0, rung 1 (trials 27..36): rung 0's best 9 (trials 0..27), best first.
    let mut rung0: Vec<&Value> = rows[..27].iter().collect();
    rung0.sort_by(|a, b| b["objective"].as_f64().unwrap().total_cmp(&a["objective"].as_f64().unwrap()));
    for (promoted, from) in rows[27..36].iter().zip(&rung0) {
        assert_eq!(epochs(promoted), 3);
        assert_eq!(promoted["parameters"]["lr"], from["parameters"]["lr"], "{promoted} from {from}");
    }
}

/// One GPU, two trials wanted at a time, each asking for the GPU: they run one after another, and
/// a trial stopped early hands its GPU on at once. The trial that gets the GPU first (trials 0 and
/// 1 are launched together, and either may take it) reports the best loss and ends; each later one
/// falls behind it at rung 1 and would keep the GPU 30 s more after epoch 1. The next one starts
/// (on the same device) only once the stopped one's process has ended, as the processes' own
/// clocks say.
#[test]
fn a_trial_stopped_early_hands_its_gpu_to_the_next_trial() {
    let dir = tempfile::tempdir().unwrap();
    let seen = dir.path().join("devices");
    let first = dir.path().join("first");
    // `mkdir` succeeds for one process only: the first to hold the GPU.
    let script = format!(
        "trap 'echo end $(date +%s%N) ${{x}} >> {seen}; exit 143' TERM; \
         echo start $(date +%s%N) ${{x}} $CUDA_VISIBLE_DEVICES >> {seen}; \
         if mkdir {first} 2>/dev/null; then loss=1; else loss=$((10 + ${{x}})); fi; \
         for e in 1 2 3; do echo epoch=$e loss=$loss; [ $loss = 1 ] || {{ sleep 30 & wait $!; }}; done; \
         echo end $(date +%s%N) ${{x}} >> {seen}",
        seen = seen.display(),
        first = first.display()
    );
    let spec = dir.path().join("gpu.yaml");
    std::fs::write(
        &spec,
        format!(
            "apiVersion: tuna.dev/v1alpha1\nkind: Experiment\nmetadata: {{name: gpu}}\nspec:\n  \
             objective: {{metric: loss, goal: minimize}}\n  algorithm: {{name: grid}}\n  \
             parameters: [{{name: x, type: int, min: 1, max: 3}}]\n  maxTrials: 3\n  parallelTrials: 2\n  \
             earlyStopping: {{rule: asha, settings: {{minResource: 1, reductionFactor: 3, maxResource: 3}}}}\n  \
             trial:\n    resources: {{gpu: 1}}\n    command: [sh, -c, {script:?}]\n"
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let out = tuna(&data, &["run", spec.to_str().unwrap(), "--gpus", "0"]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    // (x, start ns, end ns, device) per trial, from what each process wrote.
    let lines = std::fs::read_to_string(&seen).unwrap();
    let mut runs: Vec<(String, u128, u128, String)> = Vec::new();
    for line in lines.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["start", at, x, device] => runs.push((x.to_string(), at.parse().unwrap(), 0, device.to_string())),
            ["end", at, x] => runs.iter_mut().find(|r| r.0 == *x).unwrap().2 = at.parse().unwrap(),
            _ => panic!("unexpected line {line:?} in {lines}"),
        }
    }
    let mut xs: Vec<&str> = runs.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(xs.len(), 3, "each trial ran once: {lines}");
    xs.sort_unstable();
    assert_eq!(xs, ["1", "2", "3"], "{lines}");
    for (x, start, end, device) in &runs {
        assert_eq!(device, "0", "trial x={x} had device 0: {lines}");
        assert!(end > start, "trial x={x} ended: {lines}");
    }
    for pair in runs.windows(2) {
        assert!(pair[1].1 >= pair[0].2, "one GPU, one process at a time: {lines}");
    }
    for (x, start, end, _) in &runs[1..] {
        // Stopped during its 30 s wait after epoch 1: it let go of the GPU long before it would have.
        assert!(end - start < 30_000_000_000, "trial x={x} held the GPU {} ns: {lines}", end - start);
    }
    let out = tuna(&data, &["trials", "gpu", "--format", "json"]);
    let trials: Vec<Value> = serde_json::from_slice(&out.stdout).expect("trials prints JSON");
    let phase_of = |x: &str| {
        let t = trials.iter().find(|t| t["parameters"]["x"].as_i64() == x.parse().ok()).expect("a trial per x");
        t["phase"].as_str().unwrap().to_string()
    };
    assert_eq!(phase_of(&runs[0].0), "Succeeded", "the first to hold the GPU led: {trials:?}");
    for (x, ..) in &runs[1..] {
        assert_eq!(phase_of(x), "EarlyStopped", "x={x} fell behind it at rung 1: {trials:?}");
    }
    assert!(trials.iter().all(|t| t["gpus"] == serde_json::json!([0])), "{trials:?}");
}
