//! End to end: the dashboard in a real headless Chromium against a real `tuna serve` with real
//! local trials. The page must list the experiment, draw its history (one point per trial), its
//! parallel coordinates and its learning curves, fill the trial table and a trial's panel with its
//! log, show a new trial without a reload, show `<script>` in stored strings as text, promote and
//! roll back only with the token, and log no error (a CSP violation is one).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed step is a failed test

#[path = "support/chromium.rs"]
mod chromium;
#[path = "support/cli.rs"]
mod cli;
#[path = "support/server.rs"]
#[allow(dead_code)] // this suite uses a part
mod server;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use chromium::Browser;
use serde_json::Value;
use server::Server;

/// A label that would run if it were ever put into the page as markup.
const HOSTILE: &str = "<b>bold</b><script>window.injected=1</script>";

/// A grid over x ∈ {1, 2, 3} × two labels (one hostile), in grid order; the trials with x = 2
/// fail. Each prints the objective at steps 1 and 2 and a log line with a script tag.
fn spec(max_trials: u32) -> String {
    format!(
        r#"apiVersion: tuna.dev/v1alpha1
kind: Experiment
metadata: {{name: dash}}
spec:
  objective: {{metric: score, goal: maximize}}
  algorithm: {{name: grid}}
  parameters:
    - {{name: x, type: int, min: 1, max: 3}}
    - {{name: label, type: categorical, values: [plain, "{hostile}"]}}
  maxTrials: {max_trials}
  maxFailedTrials: 5
  promotion: {{policy: manual, gate: {{min: 5}}}}
  trial:
    command: [sh, -c, "if [ ${{x}} = 2 ]; then echo nope >&2; exit 3; fi; echo step=1 score=$((${{x}} * 10)); echo '<script>window.logged=1</script>'; echo step=2 score=$((${{x}} * 20)); mkdir -p \"$TUNA_OUTPUT_DIR\" && touch \"$TUNA_OUTPUT_DIR/model\""]
"#,
        hostile = HOSTILE.replace('"', "\\\"")
    )
}

fn tuna(server: &Server, token: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tuna"));
    command.args(args).env("TUNA_SERVER", &server.url).env_remove("TUNA_TOKEN");
    if let Some(t) = token {
        command.env("TUNA_TOKEN", t);
    }
    command.output().unwrap()
}

/// Submits the experiment and waits until its first four trials are back.
fn submit(server: &Server, dir: &Path, token: Option<&str>) {
    let file = dir.join("dash.yaml");
    std::fs::write(&file, spec(4)).unwrap();
    let out = tuna(server, token, &["submit", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_phase(server, token, |phase| phase == "Succeeded" || phase == "Failed");
}

fn wait_phase(server: &Server, token: Option<&str>, done: impl Fn(&str) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = tuna(server, token, &["get", "dash", "--json"]);
        let experiment: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if done(experiment["status"]["phase"].as_str().unwrap_or_default()) {
            return experiment;
        }
        assert!(Instant::now() < deadline, "dash did not finish: {experiment}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn count(browser: &mut Browser, selector: &str) -> u64 {
    browser.eval(&format!("document.querySelectorAll({selector:?}).length")).as_u64().unwrap()
}

fn text(browser: &mut Browser, selector: &str) -> String {
    let value = browser.eval(&format!("(document.querySelector({selector:?}) || {{}}).textContent || ''"));
    value.as_str().unwrap().to_string()
}

#[test]
fn the_dashboard_shows_the_experiment_its_plots_and_trials_and_follows_a_new_trial() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), dir.path());
    submit(&server, dir.path(), None);
    let mut browser = Browser::start();

    browser.open(&format!("{}/", server.url));
    browser.wait_for(r#"document.querySelector('#experiments tr[data-experiment="dash"]')"#, "the list shows dash");
    let row = text(&mut browser, r#"#experiments tr[data-experiment="dash"]"#);
    assert!(row.contains("Succeeded") && row.contains("grid") && row.contains("4 / 4"), "{row}");
    assert!(row.contains("20"), "the best objective (x = 1 scores 20 at step 2; x = 3 has not run): {row}");

    browser.open(&format!("{}/experiments/dash", server.url));
    browser.wait_for("document.querySelectorAll('#trials tbody tr').length === 4", "four trial rows");
    browser.wait_for("document.querySelector('#history-chart canvas')", "the history is drawn");
    assert_eq!(browser.eval("document.querySelector('#history-chart').dataset.points"), "4", "a point per trial");
    assert_eq!(count(&mut browser, "#trials tbody tr[data-phase=Failed]"), 2, "the x = 2 trials failed");
    browser.wait_for("document.querySelector('#parallel-chart svg')", "parallel coordinates are drawn");
    assert_eq!(count(&mut browser, "#parallel-chart polyline"), 2, "a line per trial with an objective");
    browser.wait_for("document.querySelector('#intermediate-chart canvas')", "learning curves are drawn");
    assert_eq!(browser.eval("document.querySelector('#intermediate-chart').dataset.curves"), "2");
    assert!(count(&mut browser, "#importance-chart rect") == 2, "a bar per parameter");
    assert!(count(&mut browser, "#slice-charts canvas") >= 2, "a slice plot per parameter");

    // While nothing changes, a poll reads the experiment and not its trials again.
    let fetched = |what: &str| format!("performance.getEntriesByType('resource').filter((e) => {what}).length");
    let polls = fetched("e.name.endsWith('/api/v1/experiments/dash')");
    browser.wait_for(&format!("{polls} >= 3"), "the page keeps polling");
    assert_eq!(browser.eval(&fetched("e.name.includes('/trials?limit=')")), 1, "the trials were read once");

    // Stored strings are text: the hostile label shows as written and never ran.
    let table = text(&mut browser, "#trials");
    assert!(table.contains(HOSTILE), "{table}");
    assert_eq!(count(&mut browser, "#trials b, #trials script"), 0, "no markup from the store");
    assert_eq!(browser.eval("typeof window.injected"), "undefined");

    // A trial's panel: its parameters, metrics and log (a script tag in it shown as text).
    browser.eval(r#"document.querySelector('#trials tr[data-trial="dash-0000"]').click()"#);
    browser.wait_for("document.querySelector('#trial-log')", "the trial's panel opens");
    let panel = text(&mut browser, "#trial-detail");
    assert!(panel.contains("dash-0000") && panel.contains("score") && panel.contains("20"), "{panel}");
    assert!(text(&mut browser, "#trial-log").contains("<script>window.logged=1</script>"), "{panel}");
    assert_eq!(browser.eval("typeof window.logged"), "undefined");
    let shown = browser.eval("document.body.innerText");
    assert!(!shown.as_str().unwrap().split_whitespace().any(|w| w == "null" || w == "undefined"), "{shown}");

    // A fifth trial, run after the page loaded, appears without a reload.
    browser.eval("window.sameDocument = 'yes'");
    let out = tuna(&server, None, &["resume", "dash", "--max-trials", "5"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    browser.wait_for(
        r#"document.querySelector('#trials tr[data-trial="dash-0004"][data-phase=Succeeded]')"#,
        "the new trial appears",
    );
    browser.wait_for("document.querySelector('#history-chart').dataset.points === '5'", "the history follows");
    browser.wait_for("document.querySelectorAll('#parallel-chart polyline').length === 3", "so do the lines");
    // The new trial's curve and line came as deltas (`?since=`), merged into those already drawn.
    browser.wait_for("document.querySelector('#intermediate-chart').dataset.curves === '3'", "the curves follow");
    for plot in ["intermediate", "parameters"] {
        let deltas = browser.eval(&fetched(&format!("e.name.includes('/plots/{plot}?since=')")));
        assert!(deltas.as_u64().unwrap_or(0) >= 1, "{plot} was asked since the last revision: {deltas}");
    }
    // So did the table's new row (`…/trials?since=`).
    let deltas = browser.eval(&fetched("e.name.includes('/trials?since=')"));
    assert!(deltas.as_u64().unwrap_or(0) >= 1, "the trials were asked since the last revision: {deltas}");
    assert_eq!(browser.eval("window.sameDocument"), "yes", "no reload");
    assert!(browser.errors.is_empty(), "the page logged errors: {:#?}", browser.errors);
}

#[test]
fn promote_and_rollback_from_the_page_need_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let token = "b36682f09c9266767eb662416bf59d519bdedbcf583a75f510d35f6d64c37a00";
    let server = Server::start_with(&dir.path().join("data"), dir.path(), &["--token", token], &[]);
    submit(&server, dir.path(), Some(token));
    let mut browser = Browser::start();

    browser.open(&format!("{}/experiments/dash", server.url));
    browser.wait_for("!document.querySelector('#error').hidden", "without the token the API's refusal shows");
    let refusal = text(&mut browser, "#error");
    assert!(refusal.contains("this server needs `Authorization: Bearer <token>`"), "{refusal}");
    browser.errors.clear(); // the 401 answers are logged as failed loads

    browser.eval(&format!(
        "document.querySelector('#token').value = {token:?}; document.querySelector('#token-form').requestSubmit()"
    ));
    browser.wait_for("document.querySelectorAll('#trials tbody tr').length === 4", "with it, the trials");
    browser.errors.clear(); // a poll that was on its way without the token has come back by now
    browser.wait_for("document.querySelector('#promote-best')", "the promotion buttons");
    let policy = text(&mut browser, "#promotion-policy");
    assert_eq!(policy, "promotion: manual; gate: the objective at least 5", "the gate shows");
    browser.eval("document.querySelector('#promote-best').click()");
    browser.wait_for("document.querySelector('#promotions tr.served[data-version=v1]')", "v1 is served");

    browser.eval(r#"document.querySelector('#trials tr[data-trial="dash-0001"]').click()"#);
    browser.wait_for("document.querySelector('#promote-trial')", "the trial's panel");
    browser.eval("document.querySelector('#promote-trial').click()");
    browser.wait_for("document.querySelector('#promotions tr.served[data-version=v2]')", "v2 is served");
    browser.eval("document.querySelector('#rollback').click()");
    browser.wait_for("document.querySelectorAll('#promotions tbody tr').length === 3", "the rollback is listed");
    browser.wait_for("document.querySelector('#promotions tr.served[data-version=v1]')", "v1 is served again");
    let out = tuna(&server, Some(token), &["promotions", "dash"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(listed.contains("rollback") && listed.contains("dash-0001"), "the server agrees: {listed}");
    assert!(browser.errors.is_empty(), "the page logged errors: {:#?}", browser.errors);

    // Without the token the page cannot write: the refusal shows and nothing changes.
    browser.eval("document.querySelector('#token').value = ''; document.querySelector('#token-form').requestSubmit()");
    browser.eval("document.querySelector('#promote-best').click()");
    browser.wait_for(
        "document.querySelector('#promotion-result').textContent.includes('needs `Authorization: Bearer')",
        "the write is refused with the API's sentence",
    );
    let after = tuna(&server, Some(token), &["promotions", "dash"]);
    assert_eq!(String::from_utf8_lossy(&after.stdout), listed, "no promotion without the token");
}

#[test]
fn tuna_run_with_ui_serves_the_dashboard_of_the_run_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dash.yaml");
    // Slower trials, so the page sees the run while it goes on.
    std::fs::write(&file, spec(3).replace("if [ ", "sleep 0.5; if [ ")).unwrap();
    let mut run = cli::run_command(&file, &dir.path().join("data"))
        .arg("--ui")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(run.stderr.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("tuna run prints the dashboard's URL").unwrap();
        if let Some(rest) = line.strip_prefix("dashboard: ") {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    assert!(url.starts_with("http://127.0.0.1:") && url.ends_with("/experiments/dash"), "{url}");
    let mut browser = Browser::start();
    browser.open(&url);
    browser.wait_for("document.querySelectorAll('#trials tbody tr').length >= 1", "the run's trials show");
    browser.wait_for(
        "document.querySelectorAll('#trials tbody tr[data-phase=Succeeded], #trials tbody tr[data-phase=Failed]').length === 3",
        "and follow it to its end",
    );
    assert!(lines.any(|l| l.unwrap().contains("the dashboard stays up until Ctrl-C")), "after the run it stays up");
    browser.wait_for("document.querySelector('#status').textContent.includes('Succeeded')", "the end shows");
    browser.eval("document.querySelector('#promote-best').click()");
    browser.wait_for(
        "document.querySelector('#promotion-result').textContent.includes('runs no promoter')",
        "a promotion is refused at once, saying where it can be made",
    );
    browser.errors.retain(|e| !e.contains("409")); // the refusal's answer is logged as a failed load
    assert!(browser.errors.is_empty(), "the page logged errors: {:#?}", browser.errors);
    let _ = Command::new("kill").args(["-TERM", &run.id().to_string()]).status();
    let status = run.wait().unwrap();
    assert!(status.success(), "Ctrl-C after the run ends it as the run ended: {status:?}");
}
