//! The real `tuna` binary, as the end-to-end suites run it (with no GPUs).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // each suite uses a part; a failed step is a failed test

use std::path::Path;
use std::process::{Command, Output};

/// `tuna ARGS --data-dir DATA`, run to its end.
pub fn tuna(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tuna"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env("TUNA_GPUS", "none")
        .output()
        .expect("tuna runs")
}

/// `tuna run SPEC --gpus none --data-dir DATA`, to be given its output and started.
pub fn run_command(spec: &Path, data: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tuna"));
    command.args(["run", spec.to_str().unwrap(), "--gpus", "none", "--data-dir"]).arg(data);
    command
}
