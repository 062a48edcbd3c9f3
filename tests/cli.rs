//! End to end through the real binary: `--version` names the commit, `completions` prints a
//! script for each shell, and `--help` has text for every argument.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed step is a failed test
use std::process::Command;

fn tuna(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tuna")).args(args).output().expect("tuna runs");
    assert!(out.status.success(), "tuna {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_version_names_the_commit_it_was_built_from() {
    let head = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(|| "unknown".to_string(), |o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let version = tuna(&["--version"]);
    assert_eq!(version.trim(), format!("tuna {} (commit {head})", env!("CARGO_PKG_VERSION")));
}

#[test]
fn completions_are_printed_for_each_shell() {
    assert!(tuna(&["completions", "bash"]).contains("_tuna()"));
    assert!(tuna(&["completions", "zsh"]).contains("#compdef tuna"));
    assert!(tuna(&["completions", "fish"]).contains("complete -c tuna"));
}

#[test]
fn every_positional_has_help_text() {
    for (command, positional) in [("logs", "<TRIAL>"), ("trials", "<NAME>"), ("validate", "<FILE>"), ("get", "<NAME>")]
    {
        let help = tuna(&[command, "--help"]);
        let line = help.lines().find(|l| l.trim_start().starts_with(positional)).unwrap_or_default();
        assert!(line.trim().len() > positional.len() + 5, "{command} {positional} has no help: {help}");
    }
}

#[test]
fn the_readme_cli_reference_is_the_binary_s_help() {
    let out = Command::new(env!("CARGO_BIN_EXE_tuna"))
        .arg("--help")
        .env_remove("TUNA_DATA_DIR")
        .env_remove("TUNA_GPUS")
        .env_remove("TUNA_SERVER")
        .env_remove("TUNA_TOKEN")
        .env_remove("TUNA_LOG")
        .output()
        .expect("tuna runs");
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let block = readme
        .split_once("<!-- tuna --help -->\n```text\n")
        .and_then(|(_, rest)| rest.split_once("```\n<!-- end tuna --help -->"))
        .map(|(block, _)| block)
        .expect("README.md has the tuna --help block");
    assert_eq!(block, help, "README.md's CLI reference is stale: paste `tuna --help` between the markers");
}

#[test]
fn render_warns_on_stderr_when_the_document_would_not_run_on_kubernetes_as_it_is() {
    let root = env!("CARGO_MANIFEST_DIR");
    let render = |file: &str| {
        let out =
            Command::new(env!("CARGO_BIN_EXE_tuna")).args(["render", &format!("{root}/{file}")]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    // The quickstart is a local experiment without an image: rendered, its Job could not run.
    let (yaml, said) = render("experiments/quickstart.yaml");
    assert!(yaml.starts_with("apiVersion: batch/v1"), "the YAML stays clean: {yaml}");
    assert!(said.contains("warning: spec.executor is local"), "{said}");
    assert!(said.contains("warning: spec.trial.image is not set"), "{said}");
    // A Kubernetes example renders without a word.
    let (_, said) = render("experiments/kubernetes/pytorch-gpu.yaml");
    assert!(!said.contains("warning"), "{said}");
}
