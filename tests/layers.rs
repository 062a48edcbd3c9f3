//! The module rows of ARCHITECTURE.md, checked on the source: a module names only modules in rows
//! below its own (so there is no import loop), the experiment core stays pure, and the crates
//! that belong to one module are used only there. On failure it prints every offending line.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed step is a failed test
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The rows, bottom first; a module may name only modules of a lower row.
const ROWS: &[&[&str]] = &[
    &["spec"],
    &["space"],
    &["trial", "token", "instruments"],
    &["search", "stopping", "metrics", "leaderboard", "plots"],
    &["experiment", "store", "executor"],
    &["controller", "promote", "api"],
    &["client", "config", "telemetry"],
    &["cli"],
    &["app"],
];

/// Macros exported at the crate root (so named `crate::name`), and the module each belongs to.
const MACROS: &[(&str, &str)] = &[("wire_strings", "spec")];

/// What the pure core must not touch: the clock, tasks, files, processes, the network.
const IMPURE: &[&str] =
    &["tokio", "std::fs", "std::net", "std::process", "std::thread", "Timestamp::now", "Instant", "SystemTime", "sled"];

/// Crates that only some folders may use.
const CONFINED: &[(&str, &[&str])] = &[
    ("sled::", &["src/store"]),
    // Local serving runs the model server as a process of its own (promote::serving).
    ("tokio::process", &["src/executor/local", "src/promote/serving.rs"]),
    ("kube::runtime", &["src/controller/crd.rs", "src/executor/kube/watches.rs"]),
    ("axum::", &["src/api", "src/promote", "src/app"]),
];

fn row(module: &str) -> Option<usize> {
    ROWS.iter().position(|r| r.contains(&module))
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to: `src/api/asktell.rs` → `api`, `src/space_tests.rs` →
/// `space`; `None` for the crate root and the binary.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next()?.as_os_str().to_str()?.trim_end_matches(".rs");
    let module = first.trim_end_matches("_tests");
    (!matches!(module, "lib" | "main")).then(|| module.to_string())
}

/// Every `crate::name` a line names (`crate::{a, b::c}` names a and b), comments left out.
fn named_modules(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or("");
    let ident = |s: &str| s.trim_start().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    let mut names = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + 7..];
        match rest.strip_prefix('{') {
            Some(group) => {
                let (mut depth, mut start) = (0, 0);
                for (j, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => {
                            names.push(ident(&group[start..j]));
                            break;
                        }
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            names.push(ident(&group[start..j]));
                            start = j + 1;
                        }
                        _ => {}
                    }
                }
            }
            None => names.push(ident(rest)),
        }
    }
    names.retain(|n: &String| !n.is_empty());
    names
}

struct Source {
    path: PathBuf,
    module: Option<String>,
    text: String,
}

fn crate_sources() -> Vec<Source> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    files.sort();
    assert!(files.len() > 50, "found only {} source files under {}", files.len(), src.display());
    files
        .into_iter()
        .map(|path| Source { module: module_of(&src, &path), text: std::fs::read_to_string(&path).unwrap(), path })
        .collect()
}

/// The lines of `text` (in `module`) that name a module of the same or a higher row; every
/// module named goes into `edges`.
fn against_rows(module: &str, text: &str, edges: &mut BTreeSet<String>) -> Vec<String> {
    let Some(own) = row(module) else { return vec![format!("{module} is in no row of ROWS")] };
    let mut wrong = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let owners = named_modules(line).into_iter().map(|n| match MACROS.iter().find(|(m, _)| *m == n) {
            Some((_, owner)) => owner.to_string(),
            None => n,
        });
        for named in owners.filter(|m| m != module) {
            edges.insert(format!("{module} -> {named}"));
            if row(&named).is_none_or(|r| r >= own) {
                wrong.push(format!("line {}: {module} (row {own}) names {named}: {}", n + 1, line.trim()));
            }
        }
    }
    wrong
}

#[test]
fn every_module_names_only_modules_of_lower_rows() {
    let mut edges = BTreeSet::new();
    let mut wrong = Vec::new();
    for source in crate_sources() {
        let Some(module) = &source.module else { continue };
        let found = against_rows(module, &source.text, &mut edges);
        wrong.extend(found.into_iter().map(|w| format!("{}: {w}", source.path.display())));
    }
    println!("{} module edges, all downward:\n{}", edges.len(), edges.into_iter().collect::<Vec<_>>().join("\n"));
    assert!(wrong.is_empty(), "imports against the rows:\n{}", wrong.join("\n"));
}

#[test]
fn the_experiment_core_does_no_io() {
    let mut wrong = Vec::new();
    let core: Vec<Source> = crate_sources().into_iter().filter(|s| s.module.as_deref() == Some("experiment")).collect();
    assert!(core.len() >= 5, "the core's files were not found");
    for source in core {
        for (n, line) in source.text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in IMPURE.iter().filter(|w| code.contains(**w)) {
                wrong.push(format!("{}:{}: uses {word}: {}", source.path.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(wrong.is_empty(), "the core must stay pure:\n{}", wrong.join("\n"));
}

#[test]
fn confined_crates_are_used_only_where_they_belong() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut wrong = Vec::new();
    for source in crate_sources() {
        let relative = source.path.strip_prefix(root).unwrap().display().to_string();
        for (name, homes) in CONFINED {
            if homes.iter().any(|h| relative.starts_with(h)) {
                continue;
            }
            for (n, line) in
                source.text.lines().enumerate().filter(|(_, l)| l.split("//").next().unwrap_or("").contains(name))
            {
                wrong.push(format!("{relative}:{}: {name} outside {homes:?}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_check_refuses_an_import_sideways_or_up_and_accepts_one_down() {
    let mut edges = BTreeSet::new();
    let api = "use crate::controller::history; // crate::app in a comment is no import\nuse crate::store::Store;";
    let wrong = against_rows("api", api, &mut edges);
    assert_eq!(wrong.len(), 1, "{wrong:?}");
    assert!(wrong[0].contains("api (row 5) names controller"), "{wrong:?}");
    assert!(against_rows("spec", "let x = crate::trial::Trial::new;", &mut edges).len() == 1, "up is refused");
    assert!(against_rows("cli", "use crate::app;", &mut edges).len() == 1, "cli may not reach the root");
    assert_eq!(edges.len(), 4);
    assert_eq!(named_modules("use crate::{promote::{a, b}, search};"), ["promote", "search"]);
}
