//! Running one trial somewhere: the `Executor` trait and its local implementation.
//!
//! ```text
//! controller ──Launch──▶ Executor::run ──TrialEvent (Started, Line…)──▶ controller
//!            ◀──────────────── Finished (exit, stderr tail) ────────────┘
//! ```
//! An executor never decides a trial's outcome; it reports what happened to the process and the
//! controller reads the metrics and judges.

pub mod kube;
pub mod local;

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

pub use self::kube::KubeExecutor;
pub use local::LocalExecutor;

use crate::spec::{ExecutorKind, TrialTemplate};
use crate::trial::TrialReason;
pub use crate::trial::{Exit, Finished};

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
    /// Kubernetes: the longest a trial may wait to start (queued, unschedulable, pulling).
    pub start_timeout: Option<Duration>,
    /// GPUs the trial needs to itself.
    pub gpus: u32,
    /// Where the trial runs.
    pub executor: ExecutorKind,
    /// The spec's trial template (image, resources, node selection… for Kubernetes).
    pub template: TrialTemplate,
    /// The pod template with placeholders already substituted, when the spec gives one.
    pub pod_template: Option<serde_json::Value>,
    /// Kubernetes: the namespace and owner of a trial that came from a custom resource.
    pub namespace: Option<String>,
    pub owner: Option<self::kube::Owner>,
    /// Who the experiment is beyond its name (its incarnation, `ExperimentRecord::uid`): a Job of another
    /// experiment of the same name is never taken for this trial's.
    pub identity: String,
    /// The trial's attempt (from 1).
    pub attempt: u32,
    /// Whether this launch may follow what an earlier controller started for this trial (the first
    /// launch in a run, after a restart); a retry never does: it starts afresh.
    pub resume: bool,
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
    /// The process started, with these devices; `pid_stamp` tells this process from a later one
    /// given the same PID (see `local::process`), where the executor can say.
    Started { pid: u32, pid_stamp: Option<String>, gpus: Vec<u32> },
    /// One line of output.
    Line { stream: Stream, text: String },
    /// Not started yet, and why (e.g. `Unschedulable`: no node has a free `nvidia.com/gpu`).
    Waiting { reason: String, message: String },
    /// The trial was already running (started by a controller that has since restarted), and this
    /// run follows it: the same attempt, not a new one.
    Reattached,
    /// The trial's program runs again without a new launch (Kubernetes replaced a disrupted pod):
    /// a new attempt, whose output alone counts from here on. Every line of the earlier one came
    /// before this event.
    Restarted,
}

/// A stop request: `Some(cause)` once the trial should stop.
pub type StopSignal = watch::Receiver<Option<TrialReason>>;

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

    /// Ends whatever is left of a trial that a previous controller started and lost (after a crash),
    /// only if `pid` is still that trial's process (`pid_stamp` as its start reported it).
    fn reap(&self, pid: u32, pid_stamp: Option<&str>);

    /// How many GPUs trials can be given; `None` when the executor does not count them.
    fn gpu_capacity(&self) -> Option<usize>;
}

/// The executor a server uses: each trial goes where its experiment's spec says.
pub struct Dispatch {
    pub local: LocalExecutor,
    /// `None` when no cluster is configured: Kubernetes trials then fail to start, saying so.
    pub kube: Option<KubeExecutor>,
}

impl Executor for Dispatch {
    async fn run(&self, launch: Launch, events: mpsc::UnboundedSender<TrialEvent>, stop: StopSignal) -> Finished {
        match (launch.executor, &self.kube) {
            (ExecutorKind::Kubernetes, Some(kube)) => kube.run(launch, events, stop).await,
            (ExecutorKind::Kubernetes, None) => Finished {
                exit: Exit::StartFailed(
                    "executor kubernetes needs a cluster: run in a pod, or with a kubeconfig (KUBECONFIG or ~/.kube/config)".into(),
                ),
                stderr_tail: Vec::new(),
            },
            _ => self.local.run(launch, events, stop).await,
        }
    }

    fn reap(&self, pid: u32, pid_stamp: Option<&str>) {
        self.local.reap(pid, pid_stamp);
    }

    fn gpu_capacity(&self) -> Option<usize> {
        self.local.gpu_capacity()
    }
}
