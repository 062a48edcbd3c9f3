//! Where `kubernetes-validate` is: the tests that need it skip without it, except under CI.

use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The validator's folder of tools: `TUNA_K8S_VENV`, or `.venv-k8s` (where .ci/run installs it).
pub fn validator_bin() -> Option<PathBuf> {
    let venv =
        std::env::var_os("TUNA_K8S_VENV").map(PathBuf::from).unwrap_or_else(|| Path::new(ROOT).join(".venv-k8s"));
    let bin = venv.join("bin");
    if bin.join("kubernetes-validate").is_file() {
        return Some(bin);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "kubernetes-validate is not installed in {}; .ci/run installs it",
        venv.display()
    );
    eprintln!("SKIPPED: kubernetes-validate is not installed in {} (bash .ci/run installs it)", venv.display());
    None
}

/// Runs `kubernetes-validate --strict` on files; the report, and whether every object passed.
pub fn validate(bin: &Path, files: &[PathBuf]) -> (bool, String) {
    let out = std::process::Command::new(bin.join("kubernetes-validate"))
        .args(["--strict", "-k", "1.33.0"])
        .args(files)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), report)
}
