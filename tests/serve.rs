//! End to end over real HTTP on loopback: `tuna serve` as a real process, driven by the `tuna` CLI
//! and by the library's client, with real trial processes and a real sled store.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed step is a failed test

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::server::Server;
use tuna::api::types::ParamValue;

const EXPERIMENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/experiments");

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn spec(name: &str, command: &str, extra: &str) -> String {
    format!(
        "apiVersion: tuna.dev/v1alpha1\nkind: Experiment\nmetadata: {{name: {name}}}\nspec:\n  \
         objective: {{metric: score, goal: maximize}}\n  algorithm: {{name: random, seed: 1}}\n  \
         parameters: [{{name: x, type: int, min: 1, max: 1000}}]\n  trial:\n    command: {command}\n{extra}"
    )
}

#[test]
fn submitted_experiments_run_side_by_side_and_rank_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), Path::new(EXPERIMENTS));
    let out = server.cli(&["submit", &format!("{EXPERIMENTS}/grid.yaml")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let other = dir.path().join("other.yaml");
    std::fs::write(
        &other,
        spec("other", r#"[sh, -c, "sleep 0.2; echo score=${x}"]"#, "  maxTrials: 6\n  parallelTrials: 3\n"),
    )
    .unwrap();
    assert!(server.cli(&["submit", other.to_str().unwrap()]).status.success());

    let grid = server.wait_finished("quickstart-grid");
    assert_eq!(grid["status"]["reason"], "GridExhausted");
    assert_eq!(grid["status"]["trials"]["succeeded"], 18);
    let other = server.wait_finished("other");
    assert_eq!(other["status"]["trials"]["succeeded"], 6);

    let board = server.cli(&["leaderboard", "quickstart-grid", "--top", "3"]);
    let table = text(&board.stdout);
    assert!(table.starts_with("rank  trial"), "{table}");
    let rows = table.lines().filter(|l| !l.starts_with("@ step N of M")).count();
    assert_eq!(rows, 4, "a header and three rows (besides the footnote of a step mark): {table}");
    let list = text(&server.cli(&["list"]).stdout);
    assert!(list.contains("quickstart-grid") && list.contains("other"), "{list}");
    let csv = server.cli(&["leaderboard", "other", "--format", "csv"]);
    assert!(text(&csv.stdout).starts_with("rank,trial,phase,score,x,seconds,objective_step,last_step,cause\n1,"));
    let logs = server.cli(&["logs", "quickstart-grid", "quickstart-grid-0000"]);
    assert!(text(&logs.stdout).contains("epoch=1 loss="), "{}", text(&logs.stdout));
}

#[test]
fn a_bad_document_is_refused_with_its_fields_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), dir.path());
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, spec("bad", "[]", "  maxTrials: 0\n")).unwrap();
    let out = server.cli(&["submit", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("spec.maxTrials: must be at least 1") && stderr.contains("spec.trial.command"), "{stderr}");
    assert!(!text(&server.cli(&["list"]).stdout).contains("bad"));
    let out = server.cli(&["get", "missing"]);
    assert!(
        !out.status.success() && text(&out.stderr).contains("no experiment named missing"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ask_and_tell_run_an_external_experiment_to_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), dir.path());
    let client = server.client();
    let doc = json!({"apiVersion": "tuna.dev/v1alpha1", "kind": "Experiment", "metadata": {"name": "ext"},
        "spec": {"objective": {"metric": "value", "goal": "minimize"}, "algorithm": {"name": "random", "seed": 4},
                 "maxTrials": 5, "executor": "external",
                 "parameters": [{"name": "x", "type": "double", "min": -2, "max": 2},
                                {"name": "opt", "type": "categorical", "values": ["a", "b"]}]}});
    client.submit(doc.to_string()).await.unwrap();
    let mut told = 0;
    loop {
        let trials = client.suggest("ext", 2).await.unwrap().trials;
        if trials.is_empty() {
            break;
        }
        for t in trials {
            let x = match t.parameters["x"] {
                ParamValue::Float(x) => x,
                ParamValue::Int(x) => x as f64,
                ParamValue::Text(ref x) => panic!("x is a double, not {x:?}"),
            };
            assert!((-2.0..=2.0).contains(&x));
            client.complete("ext", &t.name, BTreeMap::from([("value".to_string(), x * x)])).await.unwrap();
            told += 1;
        }
    }
    assert_eq!(told, 5, "never more than maxTrials");
    let experiment = server.wait_finished("ext");
    assert_eq!(experiment["status"]["reason"], "MaxTrialsReached");
    let board = client.leaderboard("ext", None).await.unwrap();
    let values: Vec<f64> = board.trials.iter().map(|r| r.objective.unwrap()).collect();
    assert!(values.windows(2).all(|w| w[0] <= w[1]), "minimize: smallest first {values:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn trials_push_with_their_own_token_and_nobody_else_can() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, Path::new(EXPERIMENTS));
    assert!(server.cli(&["submit", &format!("{EXPERIMENTS}/quickstart-push.yaml")]).status.success());
    let experiment = server.wait_finished("quickstart-push");
    assert_eq!(experiment["status"]["trials"]["succeeded"], 6, "{experiment}");
    let board = server.client().leaderboard("quickstart-push", None).await.unwrap();
    assert!(board.trials[0].objective.unwrap() > 0.9);
    assert!(board.trials[0].metrics.contains_key("loss"));

    let secret = tuna::token::TrialSecret::load_or_create(&data.join("secret")).unwrap();
    // reqwest is built without a TLS provider of its own; ring is the one tuna installs.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let push = |trial: &str, token: Option<String>| {
        let url = format!("{}/api/v1/experiments/quickstart-push/trials/{trial}/metrics", server.url);
        let mut request = reqwest::Client::new().post(url).json(&json!({"metrics": {"accuracy": 1.0}}));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let uid = experiment["metadata"]["uid"].as_str().expect("an experiment has an incarnation").to_string();
    let holder = |trial| tuna::token::Holder { experiment: "quickstart-push", incarnation: &uid, trial, attempt: 1 };
    let own = secret.token(&holder("quickstart-push-0001"));
    assert_eq!(push("quickstart-push-0001", Some(own.clone())).await, 409, "the trial has finished");
    assert_eq!(push("quickstart-push-0002", Some(own)).await, 403, "another trial's token");
    assert_eq!(push("quickstart-push-0002", None).await, 401, "no token");
}

#[test]
fn a_killed_server_resumes_every_experiment_without_losing_or_repeating_trials() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let done = dir.path().join("done.log");
    let command = format!(r#"[sh, -c, "sleep 0.4; echo score=${{x}}; echo $TUNA_TRIAL >> {}"]"#, done.display());
    let file = dir.path().join("crashy.yaml");
    std::fs::write(&file, spec("crashy", &command, "  maxTrials: 8\n  parallelTrials: 2\n")).unwrap();
    let mut server = Server::start(&data, dir.path());
    assert!(server.cli(&["submit", file.to_str().unwrap()]).status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(&done).map_or(0, |s| s.lines().count()) < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    server.kill9();
    let finished_before: Vec<String> = std::fs::read_to_string(&done).unwrap().lines().map(String::from).collect();

    let server = Server::start(&server.data.clone(), dir.path());
    let experiment = server.wait_finished("crashy");
    assert_eq!(experiment["status"]["trials"]["succeeded"], 8, "{experiment}");
    let out = server.cli(&["trials", "crashy", "--format", "json"]);
    let trials: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(trials.len(), 8, "the total never exceeds maxTrials");
    let runs = std::fs::read_to_string(&done).unwrap();
    let mut kept = 0;
    for name in &finished_before {
        // A trial that finished but was not yet recorded when the server died runs again (its
        // second attempt); one recorded as finished must not.
        let record = trials.iter().find(|t| t["name"] == name.as_str()).unwrap();
        if record["attempts"] == 1 {
            kept += 1;
            assert_eq!(runs.lines().filter(|l| l == name).count(), 1, "{name} finished and ran again");
        }
    }
    assert!(kept > 0, "some trials finished before the crash and were kept");
}

#[test]
fn sigterm_interrupts_running_trials_and_the_next_start_finishes_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("long.yaml");
    std::fs::write(
        &file,
        spec("long", r#"[sh, -c, "sleep 1; echo score=${x}"]"#, "  maxTrials: 4\n  parallelTrials: 2\n"),
    )
    .unwrap();
    let mut server = Server::start(&data, dir.path());
    assert!(server.cli(&["submit", file.to_str().unwrap()]).status.success());
    // Shut down only once both trials run, however slow the machine.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let trials: Vec<Value> =
            serde_json::from_slice(&server.cli(&["trials", "long", "--format", "json"]).stdout).unwrap_or_default();
        if trials.iter().filter(|t| t["phase"] == "Running").count() == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the trials never started: {trials:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().unwrap();
    let status = server.child.wait().unwrap();
    assert!(status.success(), "a graceful shutdown exits 0: {status}");

    let out = Command::new(env!("CARGO_BIN_EXE_tuna"))
        .args(["leaderboard", "long", "--format", "json", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let board: Value = serde_json::from_slice(&out.stdout).unwrap();
    let phases: Vec<&str> = board["trials"].as_array().unwrap().iter().map(|t| t["phase"].as_str().unwrap()).collect();
    assert_eq!(phases.iter().filter(|p| **p == "Interrupted").count(), 2, "{phases:?}");

    let server = Server::start(&data, dir.path());
    let experiment = server.wait_finished("long");
    assert_eq!(experiment["status"]["trials"]["succeeded"], 4, "{experiment}");
}

#[test]
fn a_server_refuses_to_start_with_a_weak_or_placeholder_token() {
    let dir = tempfile::tempdir().unwrap();
    for token in ["s3cret", "change-me-before-applying", ""] {
        let out = Command::new(env!("CARGO_BIN_EXE_tuna"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .env("TUNA_TOKEN", token)
            .output()
            .unwrap();
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{token:?} was accepted");
        assert!(
            stderr.contains("refusing to start with --token") && stderr.contains("openssl rand -hex 32"),
            "{stderr}"
        );
    }
}

#[test]
fn leaderboard_watch_ends_on_one_frame_whose_header_and_table_agree() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), dir.path());
    let file = dir.path().join("watched.yaml");
    std::fs::write(&file, spec("watched", r#"[sh, -c, "sleep 0.7; echo score=${x}"]"#, "  maxTrials: 3\n")).unwrap();
    assert!(server.cli(&["submit", file.to_str().unwrap()]).status.success());
    let out = server.cli(&["leaderboard", "watched", "--watch"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let screen = text(&out.stdout);
    assert!(screen.matches("\x1b[2J").count() >= 2, "it redrew while the experiment ran: {screen:?}");
    let last = screen.rsplit("\x1b[2J\x1b[H").next().unwrap();
    assert_eq!(last.matches("rank  trial").count(), 1, "one table on screen at the end: {last:?}");
    assert!(last.contains("Succeeded") && last.contains("3 succeeded"), "{last}");
    let rows = last.lines().filter(|l| l.starts_with(|c: char| c.is_ascii_digit()) && l.contains("Succeeded"));
    assert_eq!(rows.count(), 3, "the table has the 3 trials the header counts: {last}");
}

#[test]
fn a_submitted_spec_whose_files_are_not_under_the_servers_folder_is_refused_saying_what_to_set() {
    // `tuna submit experiments/quickstart.yaml` from the repository root with the server started
    // elsewhere: accepted, and every trial then failed with "can't open file …/train.py".
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), dir.path());
    let out = server.cli(&["submit", &format!("{EXPERIMENTS}/quickstart.yaml")]);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    let said = text(&out.stderr);
    assert!(
        said.contains("spec.trial.command[1]") && said.contains("\"train.py\" is not a file in the trial's folder"),
        "{said}"
    );
    assert!(!text(&server.cli(&["list"]).stdout).contains("quickstart"), "nothing stored");
    // Pointed at the files (relative to the server's folder), it is taken.
    let spec = std::fs::read_to_string(format!("{EXPERIMENTS}/quickstart.yaml")).unwrap();
    std::fs::create_dir(dir.path().join("project")).unwrap();
    std::fs::copy(format!("{EXPERIMENTS}/train.py"), dir.path().join("project/train.py")).unwrap();
    let moved = dir.path().join("moved.yaml");
    std::fs::write(&moved, spec.replace("workingDir: .", "workingDir: project")).unwrap();
    let out = server.cli(&["submit", moved.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Early stopping under `tuna serve` with pushed metrics: x = 2 and x = 3 fall behind x = 1 at
/// rung 1, their push is answered `shouldStop` and the trial exits on it by itself (it ignores
/// the SIGTERM that follows); the status counts them.
#[test]
fn a_pushing_trial_under_serve_is_told_should_stop_and_exits_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let trial = format!(
        "import os, signal, sys, time\nsys.path.insert(0, {EXPERIMENTS:?})\nimport tuna_push\n\
         signal.signal(signal.SIGTERM, lambda *_: None)\nx = float(os.environ['TUNA_PARAM_X'])\n\
         for step in (1, 2, 3):\n    if tuna_push.report(step=step, loss=x):\n        \
         open(os.path.join(os.environ['TUNA_OUTPUT_DIR'], 'told'), 'w').write(str(step))\n        sys.exit(0)\n    \
         if x != 1:\n        time.sleep(30)\n"
    );
    std::fs::write(dir.path().join("trial.py"), trial).unwrap();
    // The server runs in `dir`, where trial.py is (workingDir defaults to the server's folder).
    let document = String::from(
        "apiVersion: tuna.dev/v1alpha1\nkind: Experiment\nmetadata: {name: pushed}\nspec:\n  \
         objective: {metric: loss, goal: minimize}\n  algorithm: {name: grid}\n  \
         parameters: [{name: x, type: int, min: 1, max: 3}]\n  maxTrials: 3\n  \
         earlyStopping: {rule: asha, settings: {minResource: 1, maxResource: 3}}\n  \
         metrics: {collector: push}\n  trial:\n    command: [python3, trial.py]\n",
    );
    let spec = dir.path().join("pushed.yaml");
    std::fs::write(&spec, document).unwrap();
    let server = Server::start(&dir.path().join("data"), dir.path());
    let submitted = server.cli(&["submit", spec.to_str().unwrap()]);
    assert!(submitted.status.success(), "{}", text(&submitted.stderr));
    let experiment = server.wait_finished("pushed");
    let counts = &experiment["status"]["trials"];
    assert_eq!((&counts["succeeded"], &counts["earlyStopped"]), (&json!(1), &json!(2)), "{experiment}");
    assert_eq!(experiment["status"]["bestTrial"]["name"], "pushed-0000");
    for trial in ["pushed-0001", "pushed-0002"] {
        let told = dir.path().join(format!("data/experiments/pushed/trials/{trial}/output/told"));
        assert_eq!(std::fs::read_to_string(&told).unwrap(), "1", "{trial} read shouldStop at step 1");
    }
}

/// Ask/tell with early stopping: a client reports each step of its own evaluation (Optuna's
/// report + should_prune in one call) and stops the trials it is told to; those end EarlyStopped
/// without a tell, count toward maxTrials, and the best is a completed one.
#[tokio::test(flavor = "multi_thread")]
async fn an_ask_tell_client_reports_steps_and_stops_the_trials_it_is_told_to() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), dir.path());
    let client = server.client();
    let doc = json!({"apiVersion": "tuna.dev/v1alpha1", "kind": "Experiment", "metadata": {"name": "pruned"},
        "spec": {"objective": {"metric": "value", "goal": "minimize"}, "algorithm": {"name": "random", "seed": 4},
                 "maxTrials": 6, "executor": "external",
                 "earlyStopping": {"rule": "asha", "settings": {"minResource": 1, "maxResource": 9}},
                 "parameters": [{"name": "x", "type": "double", "min": -2, "max": 2}]}});
    client.submit(doc.to_string()).await.unwrap();
    let (mut stopped, mut completed) = (0, 0);
    loop {
        let trials = client.suggest("pruned", 1).await.unwrap().trials;
        let Some(t) = trials.into_iter().next() else { break };
        let ParamValue::Float(x) = t.parameters["x"] else { panic!("x is a double") };
        // A curve that falls with the steps towards x², so trials keep their order at every rung.
        let value = |step: i64| x * x + 1.0 / step as f64;
        let mut told_to_stop = false;
        for step in 1..=9 {
            let metrics = BTreeMap::from([("value".to_string(), value(step))]);
            if client.report("pruned", &t.name, step, metrics).await.unwrap() {
                told_to_stop = true;
                break;
            }
        }
        if told_to_stop {
            stopped += 1;
            continue;
        }
        client.complete("pruned", &t.name, BTreeMap::from([("value".to_string(), value(9))])).await.unwrap();
        completed += 1;
    }
    assert_eq!(stopped + completed, 6, "early stops count toward maxTrials");
    assert!(stopped > 0 && completed > 0, "{stopped} stopped, {completed} completed");
    let experiment = server.wait_finished("pruned");
    assert_eq!(experiment["status"]["trials"]["earlyStopped"], stopped, "{experiment}");
    let board = client.leaderboard("pruned", None).await.unwrap();
    assert_eq!(board.trials[0].rank, Some(1));
    assert_eq!(format!("{:?}", board.trials[0].phase), "Succeeded");
    let early: Vec<_> = board.trials.iter().filter(|r| format!("{:?}", r.phase) == "EarlyStopped").collect();
    assert_eq!(early.len(), stopped);
    assert!(early.iter().all(|r| r.message.as_deref().is_some_and(|m| m.contains(": asha: rung "))));
}
