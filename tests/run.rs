//! End to end through the real binary: `tuna run` with real trial processes and a real sled store
//! on disk, then `tuna leaderboard` reading what it left.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed step is a failed test

#[path = "support/cli.rs"]
mod cli;
use cli::tuna;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn leaderboard(data_dir: &Path, name: &str) -> Value {
    let out = tuna(data_dir, &["leaderboard", name, "--format", "json"]);
    assert!(out.status.success(), "leaderboard failed: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("leaderboard prints JSON")
}

fn trials(board: &Value) -> &Vec<Value> {
    board["trials"].as_array().expect("trials is a list")
}

/// A spec in its own folder, running `command` (a JSON list) over one int parameter `x` in 1..=100.
fn write_spec(dir: &Path, name: &str, command: &str, extra: &str) -> PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    let spec = format!(
        "apiVersion: tuna.dev/v1alpha1\nkind: Experiment\nmetadata: {{name: {name}}}\nspec:\n  \
         objective: {{metric: score, goal: maximize}}\n  algorithm: {{name: random, seed: 1}}\n  \
         parameters: [{{name: x, type: int, min: 1, max: 100}}]\n  trial:\n    command: {command}\n{extra}"
    );
    std::fs::write(&path, spec).unwrap();
    path
}

#[test]
fn quickstart_runs_real_trials_and_ranks_them() {
    let data = tempfile::tempdir().unwrap();
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/quickstart.yaml");
    let out = tuna(data.path(), &["run", spec.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(stdout.contains("rank  trial"), "a leaderboard table: {stdout}");
    assert!(stdout.contains("MaxTrialsReached"), "{stdout}");
    assert!(text(&out.stderr).contains("[ 24/24]"), "progress reaches the total");

    let board = leaderboard(data.path(), "quickstart");
    let rows = trials(&board);
    assert_eq!(rows.len(), 24);
    let values: Vec<f64> = rows.iter().map(|r| r["objective"].as_f64().unwrap()).collect();
    assert!(values.windows(2).all(|w| w[0] >= w[1]), "best first: {values:?}");
    assert!(values[0] > 0.95, "random search finds a good model: {}", values[0]);
    assert_eq!(rows[0]["rank"], 1);
    assert!(rows[0]["metrics"]["loss"].is_number());
    let model = Path::new(rows[0]["outputDir"].as_str().unwrap()).join("model.json");
    assert!(model.is_file(), "the best trial wrote its model to TUNA_OUTPUT_DIR");

    let again = tuna(data.path(), &["run", spec.to_str().unwrap()]);
    assert!(again.status.success());
    assert!(text(&again.stderr).contains("already finished"));
    assert_eq!(trials(&leaderboard(data.path(), "quickstart")).len(), 24, "nothing runs twice");
}

#[test]
fn grid_runs_every_point_once_and_ends_exhausted() {
    let data = tempfile::tempdir().unwrap();
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/grid.yaml");
    let out = tuna(data.path(), &["run", spec.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("GridExhausted"));
    let board = leaderboard(data.path(), "quickstart-grid");
    let mut points: Vec<String> = trials(&board).iter().map(|r| r["parameters"].to_string()).collect();
    assert_eq!(points.len(), 18);
    points.sort();
    points.dedup();
    assert_eq!(points.len(), 18, "no point twice");
}

#[test]
fn failing_trials_fail_the_experiment_with_their_exit_code_and_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        dir.path(),
        "failing",
        r#"[sh, -c, "echo starting; echo 'bad input ${x}' >&2; exit 3"]"#,
        "  maxTrials: 10\n  maxFailedTrials: 1\n",
    );
    let out = tuna(&dir.path().join("data"), &["run", spec.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "a failed experiment exits 1");
    let stdout = text(&out.stdout);
    assert!(stdout.contains("Failed (TooManyFailures)"), "{stdout}");
    let board = leaderboard(&dir.path().join("data"), "failing");
    let rows = trials(&board);
    assert_eq!(rows.len(), 2, "stops launching once failures exceed maxFailedTrials");
    let stderr = text(&out.stderr);
    for row in rows {
        assert_eq!(row["phase"], "Failed");
        assert_eq!(row["reason"], "NonZeroExit");
        assert!(row.get("rank").is_none());
        let message = row["message"].as_str().unwrap();
        assert!(message.contains("exit code 3") && message.contains("bad input"), "{message}");
        let line = ended_line(&stderr, row["name"].as_str().unwrap());
        assert!(line.contains("NonZeroExit: exit code 3: bad input"), "the cause is on screen: {line}");
    }
}

/// The progress line that says how trial `name` ended.
fn ended_line<'a>(stderr: &'a str, name: &str) -> &'a str {
    let ended = |l: &&str| l.contains(&format!(" {name} ")) && !l.contains(" started ");
    stderr.lines().find(ended).unwrap_or_else(|| panic!("no line says how {name} ended: {stderr}"))
}

#[test]
fn an_experiment_whose_every_trial_fails_fails_with_no_trial_succeeded_and_shows_each_cause() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        dir.path(),
        "doomed",
        r#"[sh, -c, "echo boom >&2; exit 3"]"#,
        "  maxTrials: 3
",
    );
    let out = tuna(&dir.path().join("data"), &["run", spec.to_str().unwrap()]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    let board = leaderboard(&dir.path().join("data"), "doomed");
    assert_eq!(trials(&board).len(), 3, "three failures are within the default maxFailedTrials (3)");
    for row in trials(&board) {
        let line = ended_line(&stderr, row["name"].as_str().unwrap());
        assert!(line.contains("Failed") && line.contains("exit code 3") && line.contains("boom"), "{line}");
    }
    assert!(stdout.contains("boom"), "the leaderboard table shows the cause too: {stdout}");
    assert!(stdout.contains("NoTrialSucceeded") || stderr.contains("NoTrialSucceeded"), "{stdout}{stderr}");
    assert!(!out.status.success(), "an experiment without a single success is no success: {stdout}");
}

/// A free port on the loopback interface.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The status line of `GET path` on `port`.
fn get(port: u16, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer.lines().next().unwrap_or_default().to_string()
}

/// The saved model's epoch and value of `metric` (what train.py records in model.json).
fn saved(model_dir: &Path, metric: &str) -> (i64, f64) {
    let model: Value = serde_json::from_str(&std::fs::read_to_string(model_dir.join("model.json")).unwrap()).unwrap();
    (model["epoch"].as_i64().unwrap(), model[metric].as_f64().unwrap())
}

#[test]
fn the_bayesian_quickstart_promotes_and_serves_the_epoch_its_leaderboard_ranks_first() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The example as it is (budget, trainer, gate), but on a free port; its folder stays the
    // trainer's working directory.
    let experiments = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    let port = free_port();
    let example = std::fs::read_to_string(experiments.join("quickstart-bayesian.yaml")).unwrap();
    let copied = example
        .replace("workingDir: .\n", &format!("workingDir: {}\n", experiments.display()))
        .replace("port: 9000", &format!("port: {port}"));
    assert_ne!(copied, example);
    let spec = dir.path().join("quickstart-bayesian.yaml");
    std::fs::write(&spec, copied).unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_tuna"))
        .args(["run", spec.to_str().unwrap(), "--serve", "--gpus", "none", "--data-dir"])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || stderr.lines().map_while(Result::ok).for_each(|l| drop(tx.send(l))));
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !lines.iter().any(|l: &String| l.contains("serving until Ctrl-C")) {
        let wait = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(line) => lines.push(line),
            Err(_) => {
                let _ = child.kill();
                panic!("tuna run --serve never served: {}", lines.join("\n"));
            }
        }
    }
    assert!(get(port, "/healthz").contains("200"), "the promoted model answers on port {port}");
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let out = child.wait_with_output().unwrap();
    lines.extend(rx.try_iter());
    let (stdout, stderr) = (text(&out.stdout), lines.join("\n"));
    assert!(out.status.success(), "{stderr}");

    let board = leaderboard(&data, "quickstart-bayesian");
    let rows = trials(&board);
    let first = &rows[0];
    let name = first["name"].as_str().unwrap();
    assert_eq!(first["rank"], 1);
    assert!(stderr.contains(&format!("v1 is trial {name} (promote)")), "the #1 trial is the one served: {stderr}");
    let (step, last) = (first["objectiveStep"].as_i64().unwrap(), first["lastStep"].as_i64().unwrap());
    let served = data.join("models/quickstart-bayesian/v1");
    assert_eq!(
        saved(&served, "loss"),
        (step, first["objective"].as_f64().unwrap()),
        "the model served is the ranked epoch's"
    );
    let noted =
        |out: &str| out.lines().any(|l| l.contains("note: loss ") && l.contains(&format!("at step {step} of {last};")));
    assert_eq!(noted(&stdout), step < last, "the summary notes an earlier step: {stdout}");
    assert_eq!(noted(&stderr), step < last, "so does the promotion: {stderr}");

    let mut earlier = 0;
    for row in rows {
        let output = Path::new(row["outputDir"].as_str().unwrap());
        let (step, value) = (row["objectiveStep"].as_i64().unwrap(), row["objective"].as_f64().unwrap());
        assert_eq!(saved(output, "loss"), (step, value), "{} saved the epoch it is ranked by", row["name"]);
        earlier += usize::from(step < row["lastStep"].as_i64().unwrap());
    }
    assert!(earlier > 0, "some trial's lowest loss came before its last epoch, so the check above meant something");
}

#[test]
fn a_trial_that_never_reports_the_objective_fails_with_metrics_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path(), "silent", r#"[sh, -c, "echo loss=0.5"]"#, "  maxTrials: 1\n");
    tuna(&dir.path().join("data"), &["run", spec.to_str().unwrap()]);
    let board = leaderboard(&dir.path().join("data"), "silent");
    let row = &trials(&board)[0];
    assert_eq!(row["reason"], "MetricsUnavailable");
    assert_eq!(row["metrics"]["loss"], 0.5, "other metrics are still recorded");
}

#[test]
fn a_timed_out_trial_loses_its_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let script =
        format!(r#"[sh, -c, "sleep 60 & echo $! >> {0}; echo $$ >> {0}; echo score=1; wait"]"#, pids.display());
    let spec = write_spec(dir.path(), "slow", &script, "    timeout: 1s\n  maxTrials: 1\n");
    let started = Instant::now();
    tuna(&dir.path().join("data"), &["run", spec.to_str().unwrap()]);
    assert!(started.elapsed() < Duration::from_secs(30), "the 60 s sleep did not hold tuna up");
    let board = leaderboard(&dir.path().join("data"), "slow");
    let row = &trials(&board)[0];
    assert_eq!(row["phase"], "Failed");
    assert_eq!(row["reason"], "TimedOut");
    let pids = std::fs::read_to_string(&pids).unwrap();
    for pid in pids.lines() {
        assert!(!Path::new(&format!("/proc/{pid}")).exists() || is_zombie(pid), "process {pid} outlived its trial");
    }
}

fn is_zombie(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

#[test]
fn gpu_slots_are_never_shared_by_running_trials() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("gpu.log");
    let script = format!(
        r#"[sh, -c, "a=$(date +%s%N); sleep 0.3; echo $a $(date +%s%N) $CUDA_VISIBLE_DEVICES >> {}; echo score=${{x}}"]"#,
        log.display()
    );
    let spec =
        write_spec(dir.path(), "gpus", &script, "    resources: {gpu: 2}\n  maxTrials: 6\n  parallelTrials: 3\n");
    let out = Command::new(env!("CARGO_BIN_EXE_tuna"))
        .args(["run", spec.to_str().unwrap(), "--gpus", "0,1,2,3", "--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let runs: Vec<(u128, u128, Vec<String>)> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].parse().unwrap(), f[1].parse().unwrap(), f[2].split(',').map(String::from).collect())
        })
        .collect();
    assert_eq!(runs.len(), 6);
    let mut overlapping = 0;
    for (i, a) in runs.iter().enumerate() {
        assert_eq!(a.2.len(), 2, "each trial gets its two devices: {:?}", a.2);
        for b in &runs[i + 1..] {
            if a.0 < b.1 && b.0 < a.1 {
                overlapping += 1;
                assert!(a.2.iter().all(|d| !b.2.contains(d)), "running trials share a device: {a:?} {b:?}");
            }
        }
    }
    assert!(overlapping > 0, "two trials did run side by side on the four devices");

    let too_many = write_spec(dir.path(), "greedy", r#"["true"]"#, "    resources: {gpu: 5}\n");
    let out = Command::new(env!("CARGO_BIN_EXE_tuna"))
        .args(["run", too_many.to_str().unwrap(), "--gpus", "0,1", "--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("spec.trial.resources.gpu"), "{}", text(&out.stderr));
}

#[test]
fn a_killed_run_resumes_without_losing_or_repeating_finished_trials() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let done = dir.path().join("done.log");
    // Odd trials take longer, so the two running trials never finish together: when the third
    // trial is done, another is sure to be mid-run (with equal durations both of a pair could be
    // recorded done, and the next pair not yet started, at the moment of the kill).
    let script = format!(
        r#"[sh, -c, "case $TUNA_TRIAL in *[13579]) sleep 0.7;; *) sleep 0.3;; esac; echo score=${{x}}; echo $TUNA_TRIAL >> {}"]"#,
        done.display()
    );
    let spec = write_spec(dir.path(), "crashy", &script, "  maxTrials: 8\n  parallelTrials: 2\n");
    let mut child = cli::run_command(&spec, &data).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(&done).map_or(0, |s| s.lines().count()) < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();

    let before = leaderboard(&data, "crashy");
    let succeeded: Vec<String> = trials(&before)
        .iter()
        .filter(|r| r["phase"] == "Succeeded")
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    assert!(!succeeded.is_empty() && succeeded.len() < 8, "killed mid-way: {succeeded:?}");
    assert!(trials(&before).iter().any(|r| r["phase"] == "Running"), "some trials were running when it died");

    let out = tuna(&data, &["run", spec.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("resuming"), "{}", text(&out.stderr));
    let after = leaderboard(&data, "crashy");
    let rows = trials(&after);
    assert_eq!(rows.len(), 8, "the total never exceeds maxTrials");
    assert!(rows.iter().all(|r| r["phase"] == "Succeeded"));
    let mut names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 8, "no duplicate trial");
    let runs = std::fs::read_to_string(&done).unwrap();
    for name in &succeeded {
        assert_eq!(runs.lines().filter(|l| l == name).count(), 1, "{name} finished before the crash and ran again");
    }
}

#[test]
fn ctrl_c_stops_running_trials_and_the_next_run_finishes_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let spec = write_spec(
        dir.path(),
        "stoppable",
        r#"[sh, -c, "sleep 0.5; echo score=${x}"]"#,
        "  maxTrials: 4\n  parallelTrials: 2\n",
    );
    let child = cli::run_command(&spec, &data).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // Interrupt only once both trials run (their log files exist), however slow the machine.
    let trial_dirs = data.join("experiments/stoppable/trials");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_dir(&trial_dirs)
        .map_or(0, |d| d.flatten().filter(|e| e.path().join("stdout.log").exists()).count())
        < 2
    {
        assert!(Instant::now() < deadline, "the trials never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    let board = leaderboard(&data, "stoppable");
    let stopped: Vec<&Value> = trials(&board).iter().filter(|r| r["phase"] == "Stopped").collect();
    assert!(!stopped.is_empty(), "running trials were stopped: {board}");
    assert!(stopped.iter().all(|r| r["reason"] == "StoppedByUser"));

    let out = tuna(&data, &["run", spec.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows = trials(&leaderboard(&data, "stoppable")).clone();
    assert_eq!(rows.len(), 4);
    assert!(rows.iter().all(|r| r["phase"] == "Succeeded"));
}

#[test]
fn a_changed_spec_is_refused_unless_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let spec = write_spec(dir.path(), "changing", r#"[sh, -c, "echo score=${x}"]"#, "  maxTrials: 2\n");
    assert!(tuna(&data, &["run", spec.to_str().unwrap()]).status.success());
    // Not only the budget: the trial's command changed (a raised budget alone extends; tests/extend.rs).
    let spec = write_spec(dir.path(), "changing", r#"[sh, -c, "echo score=${x}; true"]"#, "  maxTrials: 3\n");
    let out = tuna(&data, &["run", spec.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("changed: spec.maxTrials, spec.trial") && stderr.contains("--fresh"), "{stderr}");
    assert_eq!(trials(&leaderboard(&data, "changing")).len(), 2, "nothing stored was lost");
    assert!(tuna(&data, &["run", spec.to_str().unwrap(), "--fresh"]).status.success());
    assert_eq!(trials(&leaderboard(&data, "changing")).len(), 3);
}

#[test]
fn a_runs_files_are_its_users_alone_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path(), "private", r#"[sh, -c, "echo score=${x}; echo oops >&2"]"#, "  maxTrials: 1\n");
    let data = dir.path().join("data");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask 022 && exec {} run {} --data-dir {}",
            env!("CARGO_BIN_EXE_tuna"),
            spec.display(),
            data.display()
        ))
        .env("TUNA_GPUS", "none")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let trial = data.join("experiments/private/trials/private-0000");
    for folder in [data.clone(), data.join("db"), data.join("experiments"), trial.clone(), trial.join("output")] {
        assert_eq!(mode(&folder), 0o700, "{}", folder.display());
    }
    for log in ["stdout.log", "stderr.log"] {
        assert_eq!(mode(&trial.join(log)), 0o600, "{log}");
    }
    assert_eq!(mode(&data.join("db/db")), 0o600);
}

/// Whether a process is still running (a zombie waiting for its parent counts as gone).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')))
}

fn wait_for_file(path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(text) = std::fs::read_to_string(path)
            && text.ends_with('\n')
        {
            return text;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{} never appeared", path.display());
}

/// A spec whose one trial writes its PID to `pidfile` and sleeps, unless `quick` exists.
fn sleeper(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let (pidfile, quick) = (dir.join("trial.pid"), dir.join("quick"));
    let script = format!(
        "if [ -e {q} ]; then echo score=1; else echo $$ > {p}; exec sleep 30; fi",
        q = quick.display(),
        p = pidfile.display()
    );
    let spec = write_spec(dir, name, &format!("[sh, -c, {script:?}]"), "  maxTrials: 1\n");
    (spec, pidfile, quick)
}

#[test]
fn a_trial_dies_with_the_tuna_run_that_started_it_even_by_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let (spec, pidfile, _) = sleeper(dir.path(), "orphan");
    let mut run =
        cli::run_command(&spec, &dir.path().join("data")).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let pid: u32 = wait_for_file(&pidfile).trim().parse().unwrap();
    assert!(alive(pid));
    run.kill().unwrap(); // SIGKILL: tuna gets no chance to stop anything
    run.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let survived = alive(pid);
    if survived {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
    assert!(!survived, "the trial (pid {pid}) outlived its tuna run");
}

#[test]
fn a_resumed_run_never_kills_a_stranger_that_got_the_recorded_pid() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (spec, pidfile, quick) = sleeper(dir.path(), "reuse");
    let mut run = cli::run_command(&spec, &data).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let trial_pid: u32 = wait_for_file(&pidfile).trim().parse().unwrap();
    run.kill().unwrap();
    run.wait().unwrap();
    // The trial dies with its run (see the test above); its PID is not killed by hand here, since
    // once reaped it may already be another process's.
    // A stranger in a process group of its own now holds the PID the store recorded.
    let mut stranger =
        std::os::unix::process::CommandExt::process_group(&mut Command::new("sleep"), 0).arg("30").spawn().unwrap();
    {
        let store = open_store(&data);
        let mut trial = store.trial("reuse", 0).unwrap().unwrap();
        assert_eq!(trial.pid, Some(trial_pid), "the crashed run recorded its trial's PID");
        trial.pid = Some(stranger.id());
        store.put_trial(&trial).unwrap();
    }
    std::fs::write(&quick, "").unwrap();
    let out = tuna(&data, &["run", spec.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stranger_alive = alive(stranger.id());
    let _ = stranger.kill();
    let _ = stranger.wait();
    assert!(stranger_alive, "the resumed run killed a process that was not its trial");
}

/// The store a finished (or killed) run left, opened by this test (sled may hold its lock a moment).
fn open_store(data: &Path) -> tuna::store::Store {
    for _ in 0..100 {
        if let Ok(store) = tuna::store::Store::open(data) {
            return store;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    tuna::store::Store::open(data).unwrap()
}
