//! Trials as Kubernetes `batch/v1` Jobs: one Job per trial, labelled with its experiment, trial and
//! the experiment's identity, found again by name after a controller restart (re-attached when it
//! is this trial's, replaced when it is not: see `own`), followed until
//! its conditions say how it ended, and deleted (background propagation) when stopped.
//!
//! ```text
//! render_job ─▶ create (or find) ─▶ poll Job + pod ─▶ Waiting (unschedulable…) / Started / Line…
//!                                                   └▶ Complete | Failed (DeadlineExceeded → TimedOut)
//! ```

pub mod job;
mod own;

use std::collections::VecDeque;
use std::time::Duration;

use futures::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, LogParams, PropagationPolicy};
use kube::{Api, Client};
use tokio::sync::mpsc;
use tracing::{instrument, warn};

pub use job::{Owner, job_name, primary_name, render_job};
use own::{Created, ensure_job};

use super::{Executor, Exit, Finished, Launch, StopSignal, Stream, TrialEvent};

/// How often a running trial's Job and pod are looked at.
const POLL: Duration = Duration::from_millis(500);
/// How many log lines a failure message quotes.
const TAIL_LINES: usize = 8;

pub struct KubeExecutor {
    client: Client,
    /// Where Jobs go when the experiment does not come from a namespaced custom resource.
    namespace: String,
}

impl KubeExecutor {
    pub fn new(client: Client, namespace: String) -> Self {
        Self { client, namespace }
    }
}

impl Executor for KubeExecutor {
    #[instrument(skip_all, fields(experiment = %launch.experiment, trial = %launch.trial))]
    async fn run(&self, launch: Launch, events: mpsc::UnboundedSender<TrialEvent>, mut stop: StopSignal) -> Finished {
        let namespace = launch.namespace.clone().unwrap_or_else(|| self.namespace.clone());
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), &namespace);
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let name = job_name(&launch.experiment, &launch.trial);
        match ensure_job(&jobs, &launch, &namespace).await {
            Ok(Created::New) => {}
            Ok(Created::Existing) => drop(events.send(TrialEvent::Reattached)),
            Err(message) => return Finished { exit: Exit::StartFailed(message), stderr_tail: Vec::new() },
        }
        let mut watch = JobWatch { container: primary_name(&launch), started: false, waiting: None, logs: None };
        let exit = loop {
            let stopped = tokio::select! {
                _ = stop.wait_for(Option::is_some) => true,
                _ = tokio::time::sleep(POLL) => false,
            };
            if stopped {
                let background =
                    DeleteParams { propagation_policy: Some(PropagationPolicy::Background), ..Default::default() };
                if let Err(e) = jobs.delete(&name, &background).await {
                    warn!(error = %e, "failed to delete the trial's Job");
                }
                break Exit::Stopped;
            }
            match watch.step(&jobs, &pods, &name, &events).await {
                Ok(Some(exit)) => break exit,
                Ok(None) => {}
                Err(e) => warn!(error = %e, "failed to read the trial's Job; retrying"),
            }
        };
        let tail = match watch.logs.take() {
            Some(task) => {
                tokio::time::timeout(Duration::from_secs(2), task).await.ok().and_then(Result::ok).unwrap_or_default()
            }
            None => VecDeque::new(),
        };
        Finished { exit, stderr_tail: tail.into() }
    }

    /// Jobs outlive the controller and are re-attached by name; nothing to clean up.
    fn reap(&self, _pid: u32) {}

    /// The cluster's scheduler counts GPUs; a trial waits (with the reason shown) until one fits.
    fn gpu_capacity(&self) -> Option<usize> {
        None
    }
}

/// What has been seen of one trial's Job so far.
struct JobWatch {
    /// The trial's own container (others may be sidecars).
    container: String,
    started: bool,
    waiting: Option<String>,
    logs: Option<tokio::task::JoinHandle<VecDeque<String>>>,
}

impl JobWatch {
    /// One look at the Job and its pod: reports progress, returns the exit once the Job ended.
    async fn step(
        &mut self,
        jobs: &Api<Job>,
        pods: &Api<Pod>,
        name: &str,
        events: &mpsc::UnboundedSender<TrialEvent>,
    ) -> Result<Option<Exit>, kube::Error> {
        let Some(job) = jobs.get_opt(name).await? else {
            return Ok(Some(Exit::StartFailed(format!("Job {name} disappeared (deleted outside tuna?)"))));
        };
        let pod_list = pods.list(&ListParams::default().labels(&format!("job-name={name}"))).await?;
        let pod = pod_list.items.iter().max_by_key(|p| p.metadata.creation_timestamp.clone());
        if let Some(pod) = pod {
            self.observe_pod(pods, pod, events);
        }
        Ok(job_exit(&job, pod, &self.container))
    }

    fn observe_pod(&mut self, pods: &Api<Pod>, pod: &Pod, events: &mpsc::UnboundedSender<TrialEvent>) {
        let status = pod.status.clone().unwrap_or_default();
        let phase = status.phase.as_deref().unwrap_or("Pending");
        if phase == "Pending" {
            let unscheduled =
                status.conditions.iter().flatten().find(|c| c.type_ == "PodScheduled" && c.status == "False");
            if let Some(c) = unscheduled {
                let note = format!(
                    "{}: {}",
                    c.reason.as_deref().unwrap_or("Unschedulable"),
                    c.message.as_deref().unwrap_or("")
                );
                if self.waiting.as_deref() != Some(note.as_str()) {
                    let _ = events.send(TrialEvent::Waiting {
                        reason: c.reason.clone().unwrap_or_else(|| "Unschedulable".into()),
                        message: c.message.clone().unwrap_or_default(),
                    });
                    self.waiting = Some(note);
                }
            }
            return;
        }
        if !self.started {
            self.started = true;
            let _ = events.send(TrialEvent::Started { pid: 0, gpus: Vec::new() });
            let pod_name = pod.metadata.name.clone().unwrap_or_default();
            let follow = follow_log(pods.clone(), pod_name, self.container.clone(), events.clone());
            self.logs = Some(tokio::spawn(follow));
        }
    }
}

/// How the Job ended, if it has.
fn job_exit(job: &Job, pod: Option<&Pod>, container: &str) -> Option<Exit> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    let ended = conditions.iter().find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")?;
    if ended.type_ == "Complete" {
        return Some(Exit::Code(0));
    }
    if ended.reason.as_deref() == Some("DeadlineExceeded") {
        return Some(Exit::TimedOut);
    }
    let code = pod
        .and_then(|p| {
            p.status
                .as_ref()?
                .container_statuses
                .as_ref()?
                .iter()
                .find(|c| c.name == container)?
                .state
                .as_ref()?
                .terminated
                .as_ref()
                .map(|t| t.exit_code)
        })
        .unwrap_or(1);
    Some(Exit::Code(if code == 0 { 1 } else { code }))
}

/// Streams the pod's log as trial output lines until the container ends; returns the last lines.
async fn follow_log(
    pods: Api<Pod>,
    pod: String,
    container: String,
    events: mpsc::UnboundedSender<TrialEvent>,
) -> VecDeque<String> {
    let mut tail = VecDeque::with_capacity(TAIL_LINES);
    let params = LogParams { follow: true, container: Some(container.clone()), ..Default::default() };
    let stream = match pods.log_stream(&pod, &params).await {
        Ok(stream) => stream,
        Err(e) => {
            warn!(%pod, %container, error = %e, "failed to read the trial container's log; its metric lines are lost");
            return tail;
        }
    };
    let mut lines = stream.lines();
    while let Ok(Some(line)) = lines.try_next().await {
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line.clone());
        let _ = events.send(TrialEvent::Line { stream: Stream::Stdout, text: line });
    }
    tail
}

#[cfg(test)]
mod tests;
