//! End to end: `tuna plot` over a real store left by `tuna run` writes SVG that parses (Python's
//! XML parser reads it) and holds one mark per trial, and PNG of the plot's size.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed step is a failed test

#[path = "support/cli.rs"]
mod cli;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use cli::{run_command, tuna};

/// A grid over x ∈ {1, 2, 3} × two labels: the first four trials, x = 1 succeeds (scores 10 then
/// 20 by step), x = 2 fails.
const SPEC: &str = r#"apiVersion: tuna.dev/v1alpha1
kind: Experiment
metadata: {name: plotted}
spec:
  objective: {metric: score, goal: maximize}
  algorithm: {name: grid}
  parameters:
    - {name: x, type: int, min: 1, max: 3}
    - {name: label, type: categorical, values: [a, b]}
  maxTrials: 4
  maxFailedTrials: 5
  trial:
    command: [sh, -c, "if [ ${x} = 2 ]; then exit 3; fi; echo step=1 score=$((${x} * 10)); echo step=2 score=$((${x} * 20))"]
"#;

/// How many elements of each kind the SVG file holds, as Python's XML parser reads it.
fn elements(file: &Path) -> BTreeMap<String, usize> {
    let script = "import sys, collections, xml.etree.ElementTree as E\n\
                  c = collections.Counter(e.tag.rsplit('}', 1)[-1] for e in E.parse(sys.argv[1]).iter())\n\
                  print('\\n'.join(f'{k} {v}' for k, v in c.items()))";
    let out = Command::new("python3").args(["-c", script]).arg(file).output().expect("python3 runs");
    assert!(
        out.status.success(),
        "{} is not well-formed XML: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.split_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

fn plot(data: &Path, kind: &str, file: &Path) -> String {
    let out = tuna(data, &["plot", "plotted", "--kind", kind, "-o", file.to_str().unwrap()]);
    assert!(out.status.success(), "tuna plot --kind {kind}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn tuna_plot_draws_each_kind_from_a_stored_run_with_a_mark_per_trial() {
    let dir = tempfile::tempdir().unwrap();
    let (spec, data) = (dir.path().join("plotted.yaml"), dir.path().join("data"));
    std::fs::write(&spec, SPEC).unwrap();
    let run = run_command(&spec, &data).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));

    let history = dir.path().join("history.svg");
    let said = plot(&data, "history", &history);
    assert!(said.contains("history of 4 trials (2 succeeded, 2 failed"), "{said}");
    assert_eq!(elements(&history)["circle"], 2, "a circle per succeeded trial (legends use squares)");

    let parallel = dir.path().join("parallel.svg");
    plot(&data, "parallel", &parallel);
    assert_eq!(elements(&parallel)["polyline"], 2 + 3, "a line per trial with a value, and three axes");

    let slice = dir.path().join("slice.svg");
    plot(&data, "slice", &slice);
    assert_eq!(elements(&slice)["circle"], 2 * 2, "each succeeded trial on each parameter's plot");

    let curves = plot(&data, "intermediate", &dir.path().join("curves.svg"));
    assert!(curves.contains("learning curves of 2 trials"), "the failed trials reported nothing: {curves}");
    let importance = plot(&data, "importance", &dir.path().join("importance.svg"));
    assert!(importance.contains("importance of 2 parameters over 2 trials"), "{importance}");

    let png = dir.path().join("history.png");
    plot(&data, "history", &png);
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG file");
    let (width, height) =
        (u32::from_be_bytes(bytes[16..20].try_into().unwrap()), u32::from_be_bytes(bytes[20..24].try_into().unwrap()));
    assert_eq!((width, height), (960, 540), "the plot's size");

    let other = tuna(&data, &["plot", "plotted", "-o", dir.path().join("h.pdf").to_str().unwrap()]);
    assert!(!other.status.success() && String::from_utf8_lossy(&other.stderr).contains("writes SVG or PNG"));
}
