//! Where `kubernetes-validate` is: the tests that need it skip without it, except under CI.

use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The validator's folder of tools: `TUNA_K8S_VENV`, or `.venv-k8s` (where scripts/test.sh installs it).
pub fn validator_bin() -> Option<PathBuf> {
    let venv =
        std::env::var_os("TUNA_K8S_VENV").map(PathBuf::from).unwrap_or_else(|| Path::new(ROOT).join(".venv-k8s"));
    let bin = venv.join("bin");
    // A check that cannot run fails: it never passes having checked nothing.
    assert!(
        bin.join("kubernetes-validate").is_file(),
        "kubernetes-validate is not installed in {}: run `bash scripts/test.sh` (it installs it), or \
         `python3 -m venv .venv-k8s && .venv-k8s/bin/pip install kubernetes-validate`",
        venv.display()
    );
    Some(bin)
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
