//! What a local trial needs before it can start, checked when the spec is read (`tuna validate`,
//! `run`, `submit`): the working folder exists and the program resolves, as `spawn` will resolve
//! them. Otherwise every trial would fail the same way until the failure budget is spent.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::spec::{ExecutorKind, ExperimentSpec, Problem};

/// The problems a local experiment would meet at its first launch, with `trial.workingDir`
/// relative to `spec_dir` (the spec file's folder), as `tuna run` resolves it.
pub fn preflight(spec: &ExperimentSpec, spec_dir: &Path) -> Vec<Problem> {
    check(spec, spec_dir, "the spec's folder", "create it or fix the path")
}

/// The same, for an experiment submitted to a server: `trial.workingDir` is relative to the
/// server's folder (where `tuna serve` runs), which is not where the client's spec file is.
pub fn preflight_on_server(spec: &ExperimentSpec, server_dir: &Path) -> Vec<Problem> {
    let fix = "set spec.trial.workingDir to the trial's folder relative to the server's folder (as the \
               server sees it; a spec submitted from a subfolder usually needs that subfolder's name), \
               or start tuna serve where the trial's files are";
    check(spec, server_dir, "the server's folder", fix)
}

fn check(spec: &ExperimentSpec, base: &Path, base_is: &str, fix: &str) -> Vec<Problem> {
    if spec.executor != ExecutorKind::Local {
        return Vec::new();
    }
    let given = spec.trial.working_dir.as_deref().unwrap_or(".");
    let working_dir = base.join(given);
    if !working_dir.is_dir() {
        let what = if working_dir.exists() { "is not a folder" } else { "does not exist" };
        return vec![Problem::new(
            "spec.trial.workingDir",
            format!("{given:?} {what} ({} from {base_is} {}); {fix}", working_dir.display(), base.display()),
        )];
    }
    let Some(program) = spec.trial.command.first().filter(|p| !p.trim().is_empty() && !p.contains("${")) else {
        return Vec::new();
    };
    let path_var = spec.trial.env.get("PATH").cloned().or_else(|| std::env::var("PATH").ok()).unwrap_or_default();
    if let Err(message) = resolve(program, &working_dir, &path_var) {
        return vec![Problem::new("spec.trial.command[0]", message)];
    }
    script_problem(&spec.trial.command, &working_dir).into_iter().collect()
}

/// Interpreters whose first argument (when it is not an option) is a script file they open.
const INTERPRETERS: &[&str] = &["python", "python3", "bash", "sh", "node", "ruby", "perl", "Rscript", "julia"];

/// The script an interpreter is told to run (`python3 train.py`), when it is not in the working
/// folder: the interpreter starts, then every trial fails on "can't open file".
fn script_problem(command: &[String], working_dir: &Path) -> Option<Problem> {
    let program = Path::new(command.first()?).file_name()?.to_str()?;
    if !INTERPRETERS.contains(&program) {
        return None;
    }
    let script = command.get(1).filter(|a| !a.starts_with('-') && !a.contains("${"))?;
    let path = working_dir.join(script);
    (!path.is_file()).then(|| {
        Problem::new(
            "spec.trial.command[1]",
            format!("{script:?} is not a file in the trial's folder {}", working_dir.display()),
        )
    })
}

/// Where a program is found: a path with a `/` from the working folder, a bare name on `PATH`.
fn resolve(program: &str, working_dir: &Path, path_var: &str) -> Result<PathBuf, String> {
    if program.contains('/') {
        let path = working_dir.join(program);
        return match executable(&path) {
            Some(true) => Ok(path),
            Some(false) => {
                Err(format!("{program:?} is not an executable file (chmod +x it, or run it through its interpreter)"))
            }
            None => Err(format!("{program:?} does not exist (looked in {})", working_dir.display())),
        };
    }
    let dirs = std::env::split_paths(path_var).map(|d| if d.as_os_str().is_empty() { PathBuf::from(".") } else { d });
    for dir in dirs {
        let candidate = working_dir.join(dir).join(program);
        if executable(&candidate) == Some(true) {
            return Ok(candidate);
        }
    }
    Err(format!("{program:?} is not a program on PATH; install it, or give its path"))
}

/// Whether a path is an executable file; `None` when it does not exist.
fn executable(path: &Path) -> Option<bool> {
    let meta = std::fs::metadata(path).ok()?;
    Some(meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(command: &[&str], working_dir: Option<&str>) -> ExperimentSpec {
        let mut spec = ExperimentSpec::test();
        spec.trial.command = command.iter().map(ToString::to_string).collect();
        spec.trial.working_dir = working_dir.map(String::from);
        spec
    }

    #[test]
    fn a_missing_folder_and_an_unknown_program_are_problems_at_their_fields() {
        let dir = tempfile::tempdir().unwrap();
        let found = preflight(&spec(&["sh"], Some("nope")), dir.path());
        assert_eq!(found[0].field, "spec.trial.workingDir");
        assert!(found[0].message.starts_with("\"nope\" does not exist"), "{}", found[0].message);
        let found = preflight(&spec(&["no-such-program-tuna"], None), dir.path());
        assert_eq!(found[0].field, "spec.trial.command[0]");
        assert!(found[0].message.contains("is not a program on PATH"), "{}", found[0].message);
        assert!(preflight(&spec(&["sh", "-c", "true"], None), dir.path()).is_empty());
        std::fs::write(dir.path().join("run.sh"), "#!/bin/sh\n").unwrap();
        let found = preflight(&spec(&["./run.sh"], None), dir.path());
        assert!(found[0].message.contains("is not an executable file"), "{found:?}");
    }

    #[test]
    fn an_interpreters_missing_script_is_a_problem_and_its_options_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let found = preflight(&spec(&["python3", "train.py", "--lr", "${lr}"], None), dir.path());
        assert_eq!(found[0].field, "spec.trial.command[1]");
        assert!(found[0].message.starts_with("\"train.py\" is not a file in the trial's folder"), "{found:?}");
        std::fs::write(dir.path().join("train.py"), "").unwrap();
        assert!(preflight(&spec(&["python3", "train.py", "--lr", "${lr}"], None), dir.path()).is_empty());
        assert!(preflight(&spec(&["python3", "-c", "print(1)"], None), dir.path()).is_empty());
        assert!(preflight(&spec(&["sh", "-c", "echo score=1"], None), dir.path()).is_empty());
        let on_server = preflight_on_server(&spec(&["sh"], Some("experiments")), dir.path());
        assert!(on_server[0].message.contains("from the server's folder"), "{on_server:?}");
    }
}
