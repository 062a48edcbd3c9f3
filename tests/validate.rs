//! End to end through the real binary: `tuna validate` on bad documents reports every problem in
//! one pass, in a user's words, and never panics.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed step is a failed test
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const QUICKSTART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/quickstart.yaml");

fn tuna(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tuna")).args(args).env("TUNA_GPUS", "none").output().expect("tuna runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The quickstart with `from` replaced by `to`, written next to the quickstart's train.py (so that
/// its workingDir and program resolve as they do for the original).
fn variant(dir: &Path, name: &str, edits: &[(&str, &str)]) -> PathBuf {
    let mut doc = std::fs::read_to_string(QUICKSTART).unwrap();
    for (from, to) in edits {
        assert!(doc.contains(from), "{from:?} is not in the quickstart");
        doc = doc.replacen(from, to, 1);
    }
    let experiments = Path::new(QUICKSTART).parent().unwrap();
    let doc = doc.replace("workingDir: .\n", &format!("workingDir: {}\n", experiments.display()));
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, doc).unwrap();
    path
}

/// Runs `tuna validate` on a file; it must fail as a refusal (exit 1), never as a panic (101).
fn refused(file: &Path) -> String {
    let out = tuna(&["validate", file.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "a refusal, not a panic: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn huge_timeouts_are_refused_with_the_field_and_the_accepted_forms_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    for timeout in ["\"1e30\"", "\"999999999999999999999d\"", "\"1e308s\"", "\"inf\""] {
        let file = variant(dir.path(), "huge", &[("timeout: 2m", &format!("timeout: {timeout}"))]);
        let stderr = refused(&file);
        assert!(stderr.contains("spec.trial.timeout: "), "{stderr}");
        assert!(stderr.contains("longer than 30 days") || stderr.contains("write it like 90s"), "{stderr}");
    }
    let file = variant(dir.path(), "soon", &[("timeout: 2m", "timeout: soon")]);
    assert!(refused(&file).contains("\"soon\" is not a duration; write it like 90s, 10m, 1h30m"));
    let file = variant(dir.path(), "iso", &[("timeout: 2m", "timeout: PT1H30M")]);
    assert!(tuna(&["validate", file.to_str().unwrap()]).status.success(), "ISO 8601 is accepted");
}

#[test]
fn type_enum_unknown_field_and_meaning_problems_come_out_in_one_report() {
    let dir = tempfile::tempdir().unwrap();
    let file = variant(
        dir.path(),
        "bad4",
        &[
            ("maxTrials: 24", "maxTrials: lots"),
            ("goal: maximize", "goal: maximise"),
            ("trial:\n", "trials: {}\n  trial:\n"),
            ("{name: epochs,   type: int, min: 1, max: 30}", "{name: epochs, type: int, min: 30, max: 1}"),
            ("name: random", "name: bayes"),
        ],
    );
    let stderr = refused(&file);
    for expected in [
        "spec.maxTrials: must be a whole number from 1 to 1000000, not the text \"lots\"",
        "spec.objective.goal: \"maximise\" is not one of maximize, minimize; did you mean maximize?",
        "spec.trials: is not a known field; did you mean trial?",
        "spec.parameters[1].min: (30) must be less than max (1)",
        "spec.algorithm.name: \"bayes\" is not one of random, grid, bayesian, hyperband; did you mean bayesian?",
    ] {
        assert!(stderr.contains(expected), "expected {expected:?} in {stderr}");
    }
    for rust in ["expected u32", "expected struct", "from_str_multiple", "unknown variant"] {
        assert!(!stderr.contains(rust), "no Rust internals ({rust}): {stderr}");
    }
}

#[test]
fn a_parameter_named_n_is_told_to_quote_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = variant(dir.path(), "n", &[("{name: epochs, ", "{name: n, "), ("\"${epochs}\"", "\"${n}\"")]);
    let stderr = refused(&file);
    assert!(stderr.contains("spec.parameters[1].name: must be text, not the boolean false"), "{stderr}");
    assert!(stderr.contains("put the word in quotes"), "{stderr}");
}

#[test]
fn a_missing_working_dir_or_program_is_refused_at_validate_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let file = variant(dir.path(), "nodir", &[]);
    let doc = std::fs::read_to_string(&file).unwrap();
    let workdir_line = doc.lines().find(|l| l.contains("workingDir:")).unwrap().to_string();
    std::fs::write(&file, doc.replace(&workdir_line, "    workingDir: nope")).unwrap();
    let stderr = refused(&file);
    assert!(stderr.contains("spec.trial.workingDir: \"nope\" does not exist"), "{stderr}");
    let run = tuna(&["run", file.to_str().unwrap(), "--data-dir", dir.path().join("data").to_str().unwrap()]);
    assert!(!run.status.success() && text(&run.stderr).contains("spec.trial.workingDir"), "{}", text(&run.stderr));
    assert!(!dir.path().join("data").exists(), "nothing is stored for a refused spec");
    // submit leaves the trial's files to the server, which runs the trials in its own folder
    // (tests/serve.rs checks its refusal); the document's own problems it reports before sending
    // anything (no server listens on port 1).
    let bad = variant(dir.path(), "badbudget", &[("maxTrials: ", "maxTrials: 0 #")]);
    let submit = tuna(&["submit", bad.to_str().unwrap(), "--server", "http://127.0.0.1:1"]);
    let stderr = text(&submit.stderr);
    assert!(!submit.status.success() && stderr.contains("spec.maxTrials"), "{stderr}");
    assert!(!stderr.contains("failed to reach"), "refused before any request: {stderr}");

    let file = variant(dir.path(), "noprog", &[("[python3, train.py", "[pythn3, train.py")]);
    let stderr = refused(&file);
    assert!(stderr.contains("spec.trial.command[0]: \"pythn3\" is not a program on PATH"), "{stderr}");
}

#[test]
fn a_step_that_makes_an_uncountable_grid_is_refused_before_any_search_is_built() {
    // Found by tests/fuzz.rs: `max: 18446744073709551615` with `step: 0.1` overflowed the grid's
    // count of levels (a panic in search::build, at `tuna run` or the API's first ask).
    let dir = tempfile::tempdir().unwrap();
    let file = variant(
        dir.path(),
        "steps",
        &[(
            "{name: momentum, type: double, min: 0.0, max: 0.9, step: 0.1}",
            "{name: momentum, type: double, min: 0.0, max: 18446744073709551615, step: 0.1}",
        )],
    );
    let stderr = refused(&file);
    assert!(stderr.contains("spec.parameters[4].step: (0.1) makes more than 10^15 values"), "{stderr}");
    let file = variant(
        dir.path(),
        "ints",
        &[("{name: epochs,   type: int, min: 1, max: 30}", "{name: epochs, type: int, min: -9e18, max: 9e18}")],
    );
    assert!(refused(&file).contains("spec.parameters[1].min: (-9000000000000000000) must be between -2^53 and 2^53"));
}
