//! Running one trial somewhere: the `Executor` trait and its local implementation.
//!
//! ```text
//! controller ──Launch──▶ Executor::run ──TrialEvent (Started, Line…)──▶ controller
//!            ◀──────────────── Finished (exit, stderr tail) ────────────┘
//! ```
//! An executor never decides a trial's outcome; it reports what happened to the process and the
//! controller reads the metrics and judges.

pub mod local;

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

pub use local::LocalExecutor;

/// Everything needed to start one trial, with placeholders already substituted.
#[derive(Clone, Debug)]
pub struct Launch {
    pub experiment: String,
    pub trial: String,
    pub command: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: PathBuf,
    /// The trial's own folder: `stdout.log`, `stderr.log` and `output/` live here.
    pub trial_dir: PathBuf,
    pub timeout: Option<Duration>,
    /// GPUs the trial needs to itself.
    pub gpus: u32,
}

impl Launch {
    pub fn output_dir(&self) -> PathBuf {
        self.trial_dir.join("output")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// What happens while a trial runs.
#[derive(Clone, Debug, PartialEq)]
pub enum TrialEvent {
    /// The process started, with these devices.
    Started { pid: u32, gpus: Vec<u32> },
    /// One line of output.
    Line { stream: Stream, text: String },
}

/// How the trial's process ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Exit {
    Code(i32),
    /// Killed by a signal that tuna did not send.
    Signal(i32),
    TimedOut,
    /// Stopped on request (before or after it started).
    Stopped,
    /// The program could not be started.
    StartFailed(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Finished {
    pub exit: Exit,
    /// The last lines the trial wrote to stderr, for the failure message.
    pub stderr_tail: Vec<String>,
}

/// A stop request: `Some(reason)` once the trial should stop.
pub type StopSignal = watch::Receiver<Option<String>>;

/// Runs trials.
pub trait Executor: Send + Sync + 'static {
    /// Runs one trial to its end, reporting events as they happen; returns when the trial has ended
    /// and everything it started is gone.
    fn run(
        &self,
        launch: Launch,
        events: mpsc::UnboundedSender<TrialEvent>,
        stop: StopSignal,
    ) -> impl Future<Output = Finished> + Send;

    /// Ends whatever is left of a trial that a previous controller started and lost (after a crash).
    fn reap(&self, pid: u32);

    /// How many GPUs trials can be given; `None` when the executor does not count them.
    fn gpu_capacity(&self) -> Option<usize>;
}
