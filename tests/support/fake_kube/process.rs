//! Running a pod's primary container as a local process group, with stdout+stderr captured
//! together into its log.

use std::io::Read;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::sync::Notify;

use super::logs::LogBuf;
use super::meta;

/// How a container run ended.
#[derive(Debug, Clone)]
pub struct Exit {
    pub code: i32,
    /// Completed, Error or StartError.
    pub reason: String,
    pub message: Option<String>,
    pub finished_at: String,
}

/// One run of a container.
pub struct Run {
    pub log: LogBuf,
    pub pid: Option<i32>,
    pub started_at: String,
    pub started: Instant,
    exit: Mutex<Option<Exit>>,
    kill_reason: Mutex<Option<String>>,
}

impl Run {
    pub fn exit(&self) -> Option<Exit> {
        self.exit.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn kill_reason(&self) -> Option<String> {
        self.kill_reason.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_exit(&self, exit: Exit) {
        self.exit.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(exit);
    }

    /// SIGTERM to the process group, then SIGKILL after `grace` if it is still running.
    pub fn kill(self: &Arc<Self>, reason: &str, grace: Duration) {
        if self.exit().is_some() {
            return;
        }
        self.kill_reason.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(|| reason.to_string());
        let Some(pid) = self.pid else { return };
        let _ = killpg(Pid::from_raw(pid), Signal::SIGTERM);
        let me = self.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                tokio::time::sleep(grace).await;
                if me.exit().is_none() {
                    let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
                }
            });
        }
    }

    /// SIGKILL to the process group at once.
    pub fn kill_now(&self) {
        if let (Some(pid), None) = (self.pid, self.exit()) {
            self.kill_reason.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(|| "Killed".into());
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().into_iter().flatten().filter_map(|s| s.as_str().map(String::from)).collect()
}

/// Kubernetes `$(VAR)` expansion: defined variables are replaced, `$$` escapes, others stay.
pub fn expand(s: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
            && let Some((_, v)) = env.iter().rev().find(|(k, _)| *k == inner[..end])
        {
            out.push_str(v);
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn failed_run(message: String) -> Arc<Run> {
    let log = LogBuf::new();
    log.close();
    let now = meta::now_ts();
    let exit = Exit { code: 128, reason: "StartError".into(), message: Some(message), finished_at: now.clone() };
    Arc::new(Run {
        log,
        pid: None,
        started_at: now,
        started: Instant::now(),
        exit: Mutex::new(Some(exit)),
        kill_reason: Mutex::new(None),
    })
}

/// Starts the pod's first container. A container that cannot start gets a Run that has already
/// ended with reason StartError (exit code 128).
pub fn start(pod: &Value, notify: Arc<Notify>) -> Arc<Run> {
    let c = &pod["spec"]["containers"][0];
    let cname = c["name"].as_str().unwrap_or_default();
    let command = strings(&c["command"]);
    if command.is_empty() {
        return failed_run(format!(
            "fake kubelet: container {cname:?} has no command, and the fake cannot run image {:?}'s entrypoint: \
             set command (and args)",
            c["image"].as_str().unwrap_or_default()
        ));
    }
    let mut env: Vec<(String, String)> = Vec::new();
    for key in ["PATH", "HOME"] {
        if let Ok(v) = std::env::var(key) {
            env.push((key.into(), v));
        }
    }
    env.push(("HOSTNAME".into(), meta::name_of(pod)));
    for e in c["env"].as_array().into_iter().flatten() {
        let Some(name) = e["name"].as_str() else { continue };
        let value = if let Some(v) = e["value"].as_str() {
            expand(v, &env)
        } else if let Some(path) = e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            path.split('.').fold(pod, |v, p| &v[p]).as_str().unwrap_or_default().to_string()
        } else if e["valueFrom"].is_object() {
            continue;
        } else {
            String::new()
        };
        env.push((name.into(), value));
    }
    let argv: Vec<String> = command.iter().chain(strings(&c["args"]).iter()).map(|a| expand(a, &env)).collect();
    let dir = match c["workingDir"].as_str() {
        Some(d) if !d.is_empty() => std::path::PathBuf::from(d),
        _ => std::env::temp_dir().join("fake-kube").join(meta::uid_of(pod)),
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return failed_run(format!("fake kubelet: cannot create working directory {}: {e}", dir.display()));
    }
    let (mut reader, writer) = match std::io::pipe() {
        Ok(p) => p,
        Err(e) => return failed_run(format!("fake kubelet: pipe: {e}")),
    };
    let writer2 = match writer.try_clone() {
        Ok(w) => w,
        Err(e) => return failed_run(format!("fake kubelet: pipe: {e}")),
    };
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env_clear()
        .envs(env)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(writer2)
        .process_group(0)
        .kill_on_drop(false);
    let spawned = cmd.spawn();
    drop(cmd); // closes our copies of the pipe's write end
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            return failed_run(format!(
                "failed to create containerd task: failed to start container {cname:?}: exec: {:?}: {e}",
                argv[0]
            ));
        }
    };
    let log = LogBuf::new();
    let run = Arc::new(Run {
        log: log.clone(),
        pid: child.id().and_then(|p| i32::try_from(p).ok()),
        started_at: meta::now_ts(),
        started: Instant::now(),
        exit: Mutex::new(None),
        kill_reason: Mutex::new(None),
    });
    let n = notify.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(k) = reader.read(&mut buf) {
            if k == 0 {
                break;
            }
            log.append(&buf[..k]);
        }
        log.close();
        n.notify_one();
    });
    let r = run.clone();
    tokio::spawn(async move {
        use std::os::unix::process::ExitStatusExt;
        let status = child.wait().await;
        let code = match &status {
            Ok(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(9)),
            Err(_) => 137,
        };
        // The container is gone: whatever it left running in its process group goes too.
        if let Some(pid) = r.pid {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
        // Report the exit only once its output is all in the log (bounded, in case a process
        // left the group and holds the pipe open).
        let _ = tokio::time::timeout(Duration::from_secs(2), r.log.closed()).await;
        let reason = if code == 0 { "Completed" } else { "Error" };
        r.set_exit(Exit { code, reason: reason.into(), message: None, finished_at: meta::now_ts() });
        notify.notify_one();
    });
    run
}
