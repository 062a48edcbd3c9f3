//! Every manifest tuna generates or ships, checked against the official Kubernetes schemas with
//! `kubernetes-validate --strict` (installed by `scripts/test.sh`), and every example Experiment checked
//! against the generated CRD schema. Without the validator these tests say so and pass, except
//! under CI (`CI` set), where its absence is a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed step is a failed test

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::validate::validator_bin;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The oldest Kubernetes version tuna supports (k8s-openapi feature v1_33).
const KUBERNETES_VERSION: &str = "1.33.0";
/// The scope components of `deploy/kustomization.yaml`.
const SCOPES: [&str; 2] = ["all-namespaces", "one-namespace"];

fn tuna(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tuna")).args(args).output().unwrap();
    assert!(out.status.success(), "tuna {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_committed_crd_is_what_the_types_generate() {
    let committed = std::fs::read_to_string(Path::new(ROOT).join("deploy/crd.yaml")).unwrap();
    assert!(committed == tuna(&["crd"]), "deploy/crd.yaml is stale: run `cargo run -- crd > deploy/crd.yaml`");
}

#[test]
fn deploy_and_rendered_jobs_pass_the_official_schemas_strictly() {
    let Some(bin) = validator_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    // The install as kubectl applies it, with each scope component (every manifest under deploy/).
    let mut files = Vec::new();
    for component in SCOPES {
        let install = dir.path().join(format!("deploy-{component}.yaml"));
        std::fs::write(&install, support::fake_kube::kustomize(component)).unwrap();
        files.push(install);
    }
    for example in kubernetes_examples() {
        let job = dir.path().join(format!("{}-job.yaml", example.file_stem().unwrap().to_string_lossy()));
        std::fs::write(&job, tuna(&["render", example.to_str().unwrap()])).unwrap();
        files.push(job);
    }
    assert!(files.len() > SCOPES.len(), "deploy/ and at least one rendered Job: {files:?}");
    let out = Command::new(bin.join("kubernetes-validate"))
        .args(["--strict", "-k", KUBERNETES_VERSION])
        .args(&files)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "kubernetes-validate failed:\n{report}");
    let objects: usize = files.iter().map(|f| std::fs::read_to_string(f).unwrap().split("\n---\n").count()).sum();
    assert_eq!(report.matches(" passed for resource ").count(), objects, "every object was checked:\n{report}");
    assert!(report.contains("deployment/pytorch-gpu-k8s") && report.contains("horizontalpodautoscaler/"), "{report}");
}

#[test]
fn a_broken_job_fails_the_validator_so_the_check_above_can_fail() {
    let Some(bin) = validator_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    let example = &kubernetes_examples()[0];
    let rendered = tuna(&["render", example.to_str().unwrap()]);
    assert!(rendered.contains("backoffLimit: 0"), "the field this test breaks is there:\n{rendered}");
    let broken = rendered.replace("backoffLimit: 0", "backoffLimit: zero");
    let file = dir.path().join("broken.yaml");
    std::fs::write(&file, broken).unwrap();
    let out = Command::new(bin.join("kubernetes-validate"))
        .args(["--strict", "-k", KUBERNETES_VERSION])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn every_example_experiment_fits_the_generated_crd_schema() {
    let Some(bin) = validator_bin() else { return };
    let mut examples = kubernetes_examples();
    examples.extend(yaml_files(&Path::new(ROOT).join("experiments")));
    let out = Command::new(bin.join("python3"))
        .arg(Path::new(ROOT).join("tests/validate_examples.py"))
        .arg(Path::new(ROOT).join("deploy/crd.yaml"))
        .args(&examples)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(report.matches("valid against").count(), examples.len(), "{report}");
}

fn kubernetes_examples() -> Vec<PathBuf> {
    yaml_files(&Path::new(ROOT).join("experiments/kubernetes"))
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}
