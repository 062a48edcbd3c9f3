//! Trials as local processes: no shell, one process group each, output kept on disk and streamed,
//! timeouts and stops ending the whole group (TERM, then KILL after a grace period), and GPUs
//! handed out so that no device serves two running trials.

mod gpu;
mod preflight;
pub mod process;

use std::collections::VecDeque;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tracing::{debug, instrument, warn};

pub use gpu::{GpuPool, detect_gpus};
pub use preflight::{preflight, preflight_on_server};

use super::{Executor, Exit, Finished, Launch, StopSignal, Stream, TrialEvent};

/// How long a trial may take to exit after SIGTERM before it gets SIGKILL.
pub const TERMINATION_GRACE: Duration = Duration::from_secs(5);
/// How many stderr lines a failure message quotes.
const STDERR_TAIL_LINES: usize = 8;
/// How long to wait for output pipes after the process group is gone (a daemonized grandchild
/// that left the group could hold them open forever).
const PIPE_DRAIN_LIMIT: Duration = Duration::from_secs(2);

pub struct LocalExecutor {
    gpus: Arc<GpuPool>,
    grace: Duration,
}

impl LocalExecutor {
    pub fn new(gpus: Vec<u32>) -> Self {
        Self { gpus: Arc::new(GpuPool::new(gpus)), grace: TERMINATION_GRACE }
    }
}

impl Executor for LocalExecutor {
    #[instrument(skip_all, fields(experiment = %launch.experiment, trial = %launch.trial))]
    async fn run(&self, launch: Launch, events: mpsc::UnboundedSender<TrialEvent>, mut stop: StopSignal) -> Finished {
        let stopped = || Finished { exit: Exit::Stopped, stderr_tail: Vec::new() };
        let lease = tokio::select! {
            lease = self.gpus.acquire(launch.gpus as usize) => lease,
            _ = stop.wait_for(Option::is_some) => return stopped(),
        };
        let mut child = match spawn(&launch, lease.devices()).await {
            Ok(child) => child,
            Err(message) => return Finished { exit: Exit::StartFailed(message), stderr_tail: Vec::new() },
        };
        let pid = child.id().unwrap_or_default();
        let pid_stamp = process::stamp(pid);
        let _ = events.send(TrialEvent::Started { pid, pid_stamp, gpus: lease.devices().to_vec() });
        let stdout = child
            .stdout
            .take()
            .map(|s| tokio::spawn(pump(s, Stream::Stdout, launch.trial_dir.join("stdout.log"), events.clone())));
        let stderr = child
            .stderr
            .take()
            .map(|s| tokio::spawn(pump(s, Stream::Stderr, launch.trial_dir.join("stderr.log"), events.clone())));

        let exit = supervise(&mut child, pid, launch.timeout, &mut stop, self.grace).await;
        let _ = tokio::time::timeout(PIPE_DRAIN_LIMIT, async {
            if let Some(out) = stdout {
                let _ = out.await;
            }
        })
        .await;
        let stderr_tail = match stderr {
            Some(task) => {
                tokio::time::timeout(PIPE_DRAIN_LIMIT, task).await.ok().and_then(Result::ok).unwrap_or_default()
            }
            None => VecDeque::new(),
        };
        drop(lease);
        Finished { exit, stderr_tail: stderr_tail.into() }
    }

    fn reap(&self, pid: u32, pid_stamp: Option<&str>) {
        if process::is_same(pid, pid_stamp) {
            signal_group(pid, Signal::SIGKILL);
        } else {
            debug!(pid, "not reaping: that PID is no longer the trial's process (it ended, or the machine restarted)");
        }
    }

    fn gpu_capacity(&self) -> Option<usize> {
        Some(self.gpus.capacity())
    }
}

/// Trial folders and logs are the user's alone (as the data dir is), whatever the umask.
const PRIVATE_DIR: u32 = 0o700;
const PRIVATE_FILE: u32 = 0o600;

async fn spawn(launch: &Launch, gpus: &[u32]) -> Result<Child, String> {
    let output_dir = launch.output_dir();
    // Private to the user running tuna whatever the umask: trials' logs and models may hold secrets.
    tokio::fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR)
        .create(&output_dir)
        .await
        .map_err(|e| format!("cannot create the trial's output directory {}: {e}", output_dir.display()))?;
    let (program, args) = launch.command.split_first().ok_or("the trial command is empty")?;
    let not_found =
        || format!("cannot start {program:?} in {}: No such file or directory", launch.working_dir.display());
    let trial_path = launch.env.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.as_str());
    let resolved = process::on_path(program, &launch.working_dir, trial_path).ok_or_else(not_found)?;
    let (program, args) = process::tied(&resolved, args);
    let devices = gpus.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
    Command::new(&program)
        .args(&args)
        .current_dir(&launch.working_dir)
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .env("CUDA_VISIBLE_DEVICES", devices)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {resolved:?} in {}: {e}", launch.working_dir.display()))
}

/// Waits until the trial's process has exited, without reaping it: while it is a zombie its PID,
/// and so its process group's id, cannot go to another process. Only then is it safe to kill
/// what the trial left in its group.
async fn exited(pid: u32) {
    let id = Id::Pid(Pid::from_raw(pid as i32));
    let _ = tokio::task::spawn_blocking(move || waitid(id, WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT)).await;
}

/// Kills whatever the trial left in its group (its process has exited and is not yet reaped),
/// then reaps it.
async fn reap_group(child: &mut Child, pid: u32) -> std::io::Result<std::process::ExitStatus> {
    exited(pid).await;
    signal_group(pid, Signal::SIGKILL);
    child.wait().await
}

/// Waits for the process, ending its group on timeout or stop.
async fn supervise(
    child: &mut Child,
    pid: u32,
    timeout: Option<Duration>,
    stop: &mut StopSignal,
    grace: Duration,
) -> Exit {
    let deadline = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let ending = tokio::select! {
        _ = exited(pid) => None,
        _ = deadline => Some(Exit::TimedOut),
        _ = stop.wait_for(Option::is_some) => Some(Exit::Stopped),
    };
    let Some(ending) = ending else { return exit_of(reap_group(child, pid).await) };
    debug!(pid, ?ending, "ending the trial's process group");
    signal_group(pid, Signal::SIGTERM);
    if tokio::time::timeout(grace, exited(pid)).await.is_err() {
        warn!(pid, "trial ignored SIGTERM for {grace:?}; killing it");
        signal_group(pid, Signal::SIGKILL);
    }
    let _ = reap_group(child, pid).await;
    ending
}

fn exit_of(status: std::io::Result<std::process::ExitStatus>) -> Exit {
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(code), _) => Exit::Code(code),
            (None, Some(signal)) => Exit::Signal(signal),
            (None, None) => Exit::Code(-1),
        },
        Err(e) => Exit::StartFailed(format!("lost the trial's process: {e}")),
    }
}

fn signal_group(pid: u32, signal: Signal) {
    if pid > 0 {
        let _ = killpg(Pid::from_raw(pid as i32), signal);
    }
}

/// The longest piece of output taken as one line: a longer line (or output with no newline at all)
/// is cut into pieces of this size, so memory stays bounded whatever a trial prints.
pub const MAX_LINE: usize = 64 * 1024;

/// Reads the next line into `line` (with its newline), or at most [`MAX_LINE`] bytes of it;
/// returns its length (0 at the end of the stream).
async fn next_line(reader: &mut BufReader<impl AsyncRead + Unpin>, line: &mut Vec<u8>) -> std::io::Result<usize> {
    line.clear();
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(line.len());
        }
        let window = &buf[..buf.len().min(MAX_LINE - line.len())];
        let (taken, ended) = match window.iter().position(|&b| b == b'\n') {
            Some(at) => (at + 1, true),
            None => (window.len(), false),
        };
        line.extend_from_slice(&window[..taken]);
        reader.consume(taken);
        if ended || line.len() >= MAX_LINE {
            return Ok(line.len());
        }
    }
}

/// Copies one output stream to its log file and to the controller, line by line; returns the last
/// lines (for stderr's failure message).
async fn pump(
    stream: impl AsyncRead + Unpin,
    kind: Stream,
    log: std::path::PathBuf,
    events: mpsc::UnboundedSender<TrialEvent>,
) -> VecDeque<String> {
    let mut file = tokio::fs::OpenOptions::new().create(true).append(true).mode(PRIVATE_FILE).open(&log).await.ok();
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    let mut tail = VecDeque::with_capacity(STDERR_TAIL_LINES);
    loop {
        match next_line(&mut reader, &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if let Some(f) = file.as_mut() {
            let _ = f.write_all(&line).await;
        }
        let text = String::from_utf8_lossy(&line).trim_end_matches(['\n', '\r']).to_string();
        if tail.len() == STDERR_TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(text.clone());
        let _ = events.send(TrialEvent::Line { stream: kind, text });
    }
    if let Some(f) = file.as_mut() {
        let _ = f.flush().await;
    }
    tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_line_without_end_is_cut_into_bounded_pieces() {
        let mut text = vec![b'x'; MAX_LINE * 3 + 10];
        text.extend_from_slice(b"\nshort\n");
        let mut reader = BufReader::new(&text[..]);
        let mut line = Vec::new();
        let mut lengths = Vec::new();
        while next_line(&mut reader, &mut line).await.unwrap() > 0 {
            lengths.push(line.len());
        }
        assert_eq!(lengths, [MAX_LINE, MAX_LINE, MAX_LINE, 11, 6]);
    }
}
