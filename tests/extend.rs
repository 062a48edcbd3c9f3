//! End to end through the real binary: `tuna run` on a finished experiment whose spec only raised
//! its budget runs the new trials on top of the old ones (as `tuna resume --max-trials` does).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed step is a failed test

#[path = "support/cli.rs"]
mod cli;
use cli::tuna;
use std::path::{Path, PathBuf};

fn write_spec(dir: &Path, budget: &str) -> PathBuf {
    let path = dir.join("growing.yaml");
    let doc = format!(
        "apiVersion: tuna.dev/v1alpha1\nkind: Experiment\nmetadata: {{name: growing}}\nspec:\n  \
         objective: {{metric: score, goal: maximize}}\n  algorithm: {{name: random, seed: 1}}\n  \
         parameters: [{{name: x, type: int, min: 1, max: 100}}]\n{budget}  trial:\n    \
         command: [sh, -c, \"echo score=${{x}}\"]\n"
    );
    std::fs::write(&path, doc).unwrap();
    path
}

fn trial_names(data: &Path) -> Vec<String> {
    let out = tuna(data, &["trials", "growing", "--format", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let trials: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    trials.iter().map(|t| t["name"].as_str().unwrap().to_string()).collect()
}

#[test]
fn a_raised_budget_extends_a_finished_experiment_without_losing_its_trials() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let spec = write_spec(dir.path(), "  maxTrials: 3\n");
    assert!(tuna(&data, &["run", spec.to_str().unwrap()]).status.success());
    let before = trial_names(&data);
    assert_eq!(before.len(), 3);

    let spec = write_spec(dir.path(), "  maxTrials: 5\n  maxFailedTrials: 4\n  parallelTrials: 2\n");
    let out = tuna(&data, &["run", spec.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("extended to maxTrials 5"), "{stderr}");
    let after = trial_names(&data);
    assert_eq!(after.len(), 5, "two more trials: {after:?}");
    assert_eq!(&after[..3], &before[..], "the first three are the same trials");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("5 of 5 trials ended"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let spec = write_spec(dir.path(), "  maxTrials: 4\n  maxFailedTrials: 4\n  parallelTrials: 2\n");
    let out = tuna(&data, &["run", spec.to_str().unwrap()]);
    assert!(!out.status.success(), "a lowered budget is a change, refused without --fresh");
    assert!(String::from_utf8_lossy(&out.stderr).contains("changed: spec.maxTrials"));
}
