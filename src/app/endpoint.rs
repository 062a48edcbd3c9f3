//! How a second terminal finds a running `tuna run`: the run serves its API on a loopback port
//! (the same one its trials push to) and publishes where, with a token made for this run, in
//! `DATA_DIR/endpoint.json` (mode 0600, so only its user can read the token). sled's lock keeps
//! everyone else out of the store while the run holds it; every command that would read or write
//! that data dir asks the run's API instead.
//!
//! ```text
//! tuna run ──publish──▶ DATA_DIR/endpoint.json {url, token, pid} ◀──find── tuna trials / stop / logs -f …
//!    └── api::serve(127.0.0.1:port, token) ◀──────── Client(url, token) ─────────┘
//! ```
//!
//! The file goes when the run ends; one left by a run killed with `kill -9` names a process that
//! is gone (or a port nobody answers) and is ignored.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// The file a running `tuna run` publishes in its data dir.
pub const FILE: &str = "endpoint.json";

/// Where a running `tuna run` answers, and as whom.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Endpoint {
    pub url: String,
    pub token: String,
    pub pid: u32,
    /// The experiment the run runs.
    pub experiment: String,
}

/// The published file; removed when dropped (the run ends).
pub struct Published {
    path: PathBuf,
}

impl Drop for Published {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Writes `endpoint` to `data_dir` (readable by this user only), replacing whatever a dead run
/// left there.
pub fn publish(data_dir: &Path, endpoint: &Endpoint) -> anyhow::Result<Published> {
    let path = data_dir.join(FILE);
    let partial = data_dir.join(format!("{FILE}.{}", std::process::id()));
    let text = serde_json::to_vec_pretty(endpoint)?;
    let write = || -> std::io::Result<()> {
        let mut file =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&partial)?;
        file.write_all(&text)?;
        file.sync_all()?;
        std::fs::rename(&partial, &path)
    };
    write().with_context(|| format!("failed to write {}", path.display()))?;
    Ok(Published { path })
}

/// The running `tuna run` that holds `data_dir`, if one published itself and is still alive.
pub fn find(data_dir: &Path) -> Option<Endpoint> {
    let text = std::fs::read(data_dir.join(FILE)).ok()?;
    let endpoint: Endpoint = serde_json::from_slice(&text).ok()?;
    let pid = nix::unistd::Pid::from_raw(i32::try_from(endpoint.pid).ok()?);
    // Signal 0 asks only whether the process exists (EPERM: it does, as another user).
    match nix::sys::signal::kill(pid, None) {
        Ok(()) | Err(nix::errno::Errno::EPERM) => Some(endpoint),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_published_endpoint_is_private_found_while_its_process_lives_and_gone_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mine = Endpoint {
            url: "http://127.0.0.1:1".into(),
            token: "t".into(),
            pid: std::process::id(),
            experiment: "e".into(),
        };
        let published = publish(dir.path(), &mine).unwrap();
        let mode = std::fs::metadata(dir.path().join(FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(find(dir.path()).map(|e| e.pid), Some(std::process::id()));
        drop(published);
        assert!(find(dir.path()).is_none());
    }

    #[test]
    fn an_endpoint_left_by_a_dead_process_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let dead = Endpoint { url: "http://127.0.0.1:1".into(), token: "t".into(), pid, experiment: "e".into() };
        std::mem::forget(publish(dir.path(), &dead).unwrap());
        assert!(find(dir.path()).is_none());
    }
}
